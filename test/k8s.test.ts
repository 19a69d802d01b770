// infra/k8s, rendered with `kubectl kustomize` (base, the KEDA overlay, and KEDA with circuit-worker
// scaled to zero): every manifest is valid against the Kubernetes and KEDA schemas
// (kubernetes-models), and agrees with the code, as test/compose.test.ts checks compose: every env
// name is a declared variable and the config loaders accept what each container sees, ports and
// probe paths are the gateway's, consumer and stream names are contracts', grace periods outlast
// the drains, pods run non-root on a read-only root filesystem, and python-worker has no egress but
// DNS, NATS, Redis and S3. No cluster is needed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseEnv } from 'node:util';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { createNames, DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX } from '@neuroagent/contracts';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';
import { PUBLIC_PATHS } from '../services/gateway/src/app.ts';
import { GATEWAY_ENV_PREFIX, GatewayConfig, loadGatewayConfig } from '../services/gateway/src/config.ts';
import { describeConfig } from '../services/platform/src/config.ts';
import { loadWorkerConfig, WORKER_ENV_PREFIX, WorkerConfig } from '../services/worker/src/config.ts';
import { ROOT } from './support/processes.ts';

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML; each is schema-checked first
type Manifest = Record<string, any>;

const VALIDATORS: Record<string, (doc: Manifest) => void> = {
  'apps/v1/Deployment': (d) => new Deployment(d).validate(),
  'v1/Service': (d) => new Service(d).validate(),
  'v1/ConfigMap': (d) => new ConfigMap(d).validate(),
  'policy/v1/PodDisruptionBudget': (d) => new PodDisruptionBudget(d).validate(),
  'networking.k8s.io/v1/NetworkPolicy': (d) => new NetworkPolicy(d).validate(),
  'keda.sh/v1alpha1/ScaledObject': (d) => new ScaledObject({ spec: d.spec, ...d }).validate(),
};

function render(dir: string): Manifest[] {
  const text = execFileSync('kubectl', ['kustomize', join(ROOT, dir)], { encoding: 'utf8' });
  return parseAllDocuments(text).map((d) => d.toJS() as Manifest);
}

const OVERLAYS = ['infra/k8s/base', 'infra/k8s/overlays/keda', 'infra/k8s/overlays/keda-scale-to-zero'];
const rendered = Object.fromEntries(OVERLAYS.map((dir) => [dir, render(dir)]));
const base = rendered['infra/k8s/base'] as Manifest[];
const keda = rendered['infra/k8s/overlays/keda'] as Manifest[];
const find = (docs: Manifest[], kind: string, name: string): Manifest => {
  const m = docs.find((d) => d.kind === kind && d.metadata?.name === name);
  assert.ok(m, `${kind}/${name} is missing`);
  return m;
};

/** What a container sees: its ConfigMaps, then its own env; a secret reference becomes a placeholder. */
function containerEnv(docs: Manifest[], container: Manifest): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === from.configMapRef?.name);
    assert.ok(cm, `ConfigMap ${from.configMapRef?.name} is not rendered`);
    Object.assign(env, cm.data);
  }
  for (const e of container.env ?? []) {
    env[e.name] = e.valueFrom?.secretKeyRef ? secretPlaceholder(e.name) : String(e.value);
  }
  return env;
}

function secretPlaceholder(name: string): string {
  if (name.endsWith('DB__URL')) return 'postgresql://neuroagent@postgres:5432/neuroagent';
  if (name.endsWith('JWKS_URL')) return 'https://auth.example.org/realms/x/protocol/openid-connect/certs';
  if (name.endsWith('SIGNING_KEY')) return 'a'.repeat(64);
  return 'secret-value';
}

const WORKERS = ['neuroagent-python-worker', 'neuroagent-circuit-worker'];
const DEPLOYMENTS = ['neuroagent-gateway', ...WORKERS];

describe('infra/k8s manifests', () => {
  for (const [dir, docs] of Object.entries(rendered)) {
    it(`${dir}: every manifest is valid against its schema`, () => {
      assert.ok(docs.length >= 10, `${docs.length} manifests`);
      for (const doc of docs) {
        const key = `${doc.apiVersion}/${doc.kind}`;
        const validate = VALIDATORS[key];
        assert.ok(validate, `no schema for ${key} (${doc.metadata?.name})`);
        validate(doc);
      }
    });
  }

  it('a schema check fails a broken manifest (the validation is real)', () => {
    const broken = structuredClone(find(base, 'Deployment', 'neuroagent-gateway'));
    broken.spec.replicas = 'two';
    assert.throws(() => new Deployment(broken).validate());
  });

  it('has a Deployment and a PodDisruptionBudget per service, a Service for the gateway', () => {
    for (const name of DEPLOYMENTS) {
      const d = find(base, 'Deployment', name);
      const pdb = find(base, 'PodDisruptionBudget', name);
      assert.deepEqual(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels);
    }
    const svc = find(base, 'Service', 'neuroagent-gateway');
    assert.deepEqual(
      svc.spec.selector,
      find(base, 'Deployment', 'neuroagent-gateway').spec.selector.matchLabels,
    );
  });

  it('sets only declared variables, and the config loaders accept what each container sees', () => {
    const gatewayVars = new Set(describeConfig(GatewayConfig, GATEWAY_ENV_PREFIX).map((v) => v.variable));
    const workerVars = new Set(describeConfig(WorkerConfig, WORKER_ENV_PREFIX).map((v) => v.variable));
    for (const name of DEPLOYMENTS) {
      const container = find(base, 'Deployment', name).spec.template.spec.containers[0];
      const env = containerEnv(base, container);
      const declared = name === 'neuroagent-gateway' ? gatewayVars : workerVars;
      for (const variable of Object.keys(env))
        assert.ok(declared.has(variable), `${name}: ${variable} is not declared`);
      if (name === 'neuroagent-gateway') loadGatewayConfig(env);
      else loadWorkerConfig(env);
    }
    for (const [file, vars] of [
      ['infra/k8s/base/gateway.env', gatewayVars],
      ['infra/k8s/base/tasks.env', workerVars],
    ] as const) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const variable of Object.keys(parseEnv(text)))
        assert.ok(vars.has(variable), `${file}: ${variable}`);
    }
  });

  it("serves the gateway's port and probes its public health routes", () => {
    const d = find(base, 'Deployment', 'neuroagent-gateway');
    const c = d.spec.template.spec.containers[0];
    const config = loadGatewayConfig(containerEnv(base, c));
    assert.equal(c.ports[0].containerPort, config.http.port);
    assert.equal(config.http.host, '0.0.0.0', 'reachable from the Service');
    const svc = find(base, 'Service', 'neuroagent-gateway');
    assert.equal(svc.spec.ports[0].targetPort, c.ports[0].name);
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
      assert.ok(PUBLIC_PATHS.includes(probe.httpGet.path), `${probe.httpGet.path} needs no token`);
      assert.equal(probe.httpGet.port, c.ports[0].name);
    }
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    // The preStop pause and the HTTP drain both fit in the grace period.
    const grace = d.spec.template.spec.terminationGracePeriodSeconds;
    assert.ok(grace > config.http.shutdown_grace_s + (c.lifecycle?.preStop?.sleep?.seconds ?? 0));
  });

  it('probes each worker on its heartbeat file, and lets it drain before it is killed', () => {
    for (const name of WORKERS) {
      const d = find(base, 'Deployment', name);
      const c = d.spec.template.spec.containers[0];
      const config = loadWorkerConfig(containerEnv(base, c));
      for (const probe of [c.livenessProbe, c.startupProbe]) {
        const [node, script, file] = probe.exec.command;
        assert.equal(node, 'node');
        assert.equal(script, '/app/infra/healthcheck-file.mjs', 'the script the image ships');
        assert.equal(file, config.health_file);
      }
      assert.ok(
        c.volumeMounts.some((v: Manifest) => config.health_file.startsWith(`${v.mountPath}/`)),
        'writable',
      );
      assert.ok(d.spec.template.spec.terminationGracePeriodSeconds > config.shutdown_grace_s + 10, name);
      const metricsPort = c.ports.find((p: Manifest) => p.name === 'metrics');
      assert.equal(metricsPort?.containerPort, config.metrics.port, `${name} exposes TASKS_METRICS__PORT`);
      assert.equal(config.metrics.host, '0.0.0.0', 'reachable by Prometheus');
    }
  });

  it('runs every pod non-root, read-only, without capabilities or service links, with resources', () => {
    for (const name of DEPLOYMENTS) {
      const pod = find(base, 'Deployment', name).spec.template.spec;
      assert.equal(pod.enableServiceLinks, false, name);
      assert.equal(pod.securityContext.runAsNonRoot, true, name);
      for (const c of pod.containers) {
        assert.equal(c.securityContext.readOnlyRootFilesystem, true, name);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false, name);
        assert.deepEqual(c.securityContext.capabilities.drop, ['ALL'], name);
        assert.ok(c.resources.requests.cpu && c.resources.limits.memory, name);
      }
    }
  });

  it('leaves python-worker no egress but DNS, NATS, Redis and S3', () => {
    const policy = find(base, 'NetworkPolicy', 'neuroagent-python-worker-egress');
    const pod = find(base, 'Deployment', 'neuroagent-python-worker').spec.template.metadata.labels;
    for (const [k, v] of Object.entries(policy.spec.podSelector.matchLabels)) assert.equal(pod[k], v);
    assert.ok(policy.spec.policyTypes.includes('Egress'));
    assert.deepEqual(
      policy.spec.ingress.flatMap((rule: Manifest) => rule.ports.map((p: Manifest) => p.port)),
      [9464],
      'nothing but its metrics port may be reached',
    );
    const allowed: number[] = policy.spec.egress.flatMap((rule: Manifest) => {
      assert.ok(rule.to?.length > 0, 'every egress rule names its destination');
      for (const to of rule.to)
        assert.equal(to.ipBlock, undefined, 'no address range: only the named services');
      return rule.ports.map((p: Manifest) => p.port);
    });
    assert.deepEqual(
      [...new Set(allowed)].sort((a, b) => a - b),
      [53, 4222, 6379, 9000],
    );
    const env = loadWorkerConfig(
      containerEnv(
        base,
        find(base, 'Deployment', 'neuroagent-python-worker').spec.template.spec.containers[0],
      ),
    );
    for (const url of [...env.nats.url.split(','), env.redis.url, env.storage.endpoint_url]) {
      assert.ok(allowed.includes(Number(new URL(url).port)), `${url} is reachable`);
    }
  });

  it("scales each worker with KEDA on its own queues' consumers in the TASKS stream", () => {
    const names = createNames({
      stream: DEFAULT_STREAM,
      subjectPrefix: DEFAULT_SUBJECT_PREFIX,
      keyPrefix: '',
    });
    for (const name of WORKERS) {
      const so = find(keda, 'ScaledObject', name);
      assert.equal(so.spec.scaleTargetRef.name, name);
      const c = find(keda, 'Deployment', name).spec.template.spec.containers[0];
      const config = loadWorkerConfig(containerEnv(keda, c));
      const triggers = so.spec.triggers as Manifest[];
      assert.deepEqual(
        triggers.map((t) => t.metadata.consumer).sort(),
        config.queues.map((q) => names.consumerName(q)).sort(),
        `${name}: one trigger per queue it consumes`,
      );
      for (const t of triggers) {
        assert.equal(t.type, 'nats-jetstream');
        assert.equal(t.metadata.stream, config.nats.stream);
        assert.ok(Number(t.metadata.lagThreshold) > 0);
      }
      assert.ok(so.spec.maxReplicaCount > so.spec.minReplicaCount && so.spec.cooldownPeriod > 0);
    }
    const zero = rendered['infra/k8s/overlays/keda-scale-to-zero'] as Manifest[];
    assert.equal(find(zero, 'ScaledObject', 'neuroagent-circuit-worker').spec.minReplicaCount, 0);
    assert.equal(find(zero, 'ScaledObject', 'neuroagent-python-worker').spec.minReplicaCount, 1);
  });
});
