import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import {
  ConfigError,
  configTable,
  describeConfig,
  isServiceLinkVariable,
  loadConfig,
  parseHostPorts,
  RedisSettings,
  redisTopology,
} from '../src/index.ts';

const Schema = Type.Object({
  http: Type.Object({
    host: Type.String({ default: '127.0.0.1', description: 'bind address' }),
    port: Type.Integer({ default: 8078, minimum: 0, maximum: 65535 }),
  }),
  queues: Type.Array(Type.String(), { default: ['python_q'] }),
  flag: Type.Boolean({ default: false }),
  ratio: Type.Number({ default: 0.5 }),
  secret: Type.String({ minLength: 1 }),
});

describe('loadConfig', () => {
  it('maps PREFIX_A__B variables onto nested keys, with defaults and coercion', () => {
    const cfg = loadConfig(Schema, 'APP', {
      APP_HTTP__PORT: '9000',
      APP_QUEUES: 'python_q, circuit_q',
      APP_FLAG: 'true',
      APP_RATIO: '0.25',
      APP_SECRET: 's',
    });
    assert.deepEqual(cfg, {
      http: { host: '127.0.0.1', port: 9000 },
      queues: ['python_q', 'circuit_q'],
      flag: true,
      ratio: 0.25,
      secret: 's',
    });
    assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.http));
  });

  it('reports every problem at once, each naming its variable', () => {
    let caught: unknown;
    try {
      loadConfig(Schema, 'APP', { APP_HTTP__PORT: 'eighty', APP_FLAG: 'maybe', APP_HTTP_HOST: 'x' });
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof ConfigError);
    assert.equal(caught.code, 'config_invalid');
    const paths = (caught.details ?? []).map((d) => d.path).sort();
    assert.deepEqual(paths, ['APP_FLAG', 'APP_HTTP_HOST', 'APP_HTTP__PORT', 'APP_SECRET']);
    assert.match(caught.message, /APP_HTTP__PORT: Expected integer \(got "eighty"\)/);
    assert.match(caught.message, /APP_HTTP_HOST: unknown variable/);
    assert.match(caught.message, /APP_SECRET: is required/);
  });

  it('rejects numbers out of range and non-decimal numerals', () => {
    assert.throws(
      () => loadConfig(Schema, 'APP', { APP_HTTP__PORT: '70000', APP_SECRET: 's' }),
      /APP_HTTP__PORT/,
    );
    assert.throws(
      () => loadConfig(Schema, 'APP', { APP_HTTP__PORT: '1e3', APP_SECRET: 's' }),
      /APP_HTTP__PORT/,
    );
  });

  it('ignores variables of other prefixes', () => {
    const cfg = loadConfig(Schema, 'APP', { APP_SECRET: 's', OTHER_X: '1', APPLE: '2' });
    assert.equal(cfg.http.port, 8078);
  });
});

describe('describeConfig', () => {
  it('lists every variable with its default, for the docs table', () => {
    const vars = describeConfig(Schema, 'APP');
    assert.deepEqual(
      vars.map((v) => [v.variable, v.default]),
      [
        ['APP_HTTP__HOST', '127.0.0.1'],
        ['APP_HTTP__PORT', '8078'],
        ['APP_QUEUES', 'python_q'],
        ['APP_FLAG', 'false'],
        ['APP_RATIO', '0.5'],
        ['APP_SECRET', ''],
      ],
    );
    assert.match(configTable(Schema, 'APP'), /\| `APP_HTTP__HOST` \| `127.0.0.1` \| bind address \|/);
  });
});

describe('loadConfig under Kubernetes service links', () => {
  // What the kubelet injects for a Service named `neuroagent-gateway` (and `tasks-nats`) in the namespace.
  const links = {
    NEUROAGENT_GATEWAY_SERVICE_HOST: '10.96.12.7',
    NEUROAGENT_GATEWAY_SERVICE_PORT: '8078',
    NEUROAGENT_GATEWAY_SERVICE_PORT_HTTP: '8078',
    NEUROAGENT_GATEWAY_PORT: 'tcp://10.96.12.7:8078',
    NEUROAGENT_GATEWAY_PORT_8078_TCP: 'tcp://10.96.12.7:8078',
    NEUROAGENT_GATEWAY_PORT_8078_TCP_PROTO: 'tcp',
    NEUROAGENT_GATEWAY_PORT_8078_TCP_PORT: '8078',
    NEUROAGENT_GATEWAY_PORT_8078_TCP_ADDR: '10.96.12.7',
    NEUROAGENT_NATS_SERVICE_HOST: 'fd00::a',
  };

  it('ignores the variables Kubernetes injects for Services', () => {
    const cfg = loadConfig(Schema, 'NEUROAGENT', { ...links, NEUROAGENT_SECRET: 's' });
    assert.equal(cfg.http.port, 8078);
    for (const [name, value] of Object.entries(links))
      assert.equal(isServiceLinkVariable(name, value), true, name);
  });

  it('still refuses typos, even those that look like service links', () => {
    const typos: Record<string, string> = {
      NEUROAGENT_HTTP_PORT: '9000', // one underscore for two, and a bare port, not tcp://…
      NEUROAGENT_HTTP__PROT: '9000',
      NEUROAGENT_GATEWAY_SERVICE_HOST: 'gateway.local', // a name, not an address
      NEUROAGENT_HTTP__SERVICE_PORT: '80', // has our `__` separator
    };
    for (const [name, value] of Object.entries(typos)) {
      assert.equal(isServiceLinkVariable(name, value), false, name);
      assert.throws(
        () => loadConfig(Schema, 'NEUROAGENT', { ...links, NEUROAGENT_SECRET: 's', [name]: value }),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.details?.some((d) => d.path === name && /unknown variable/.test(d.message)) === true,
        name,
      );
    }
  });
});

describe('RedisSettings topology', () => {
  const Redis = Type.Object({ redis: RedisSettings });
  const load = (env: Record<string, string>) => loadConfig(Redis, 'T', env).redis;

  it('takes sentinel and cluster node lists, IPv6 in brackets', () => {
    const r = load({ T_REDIS__SENTINELS: '10.0.0.1:26379,[::1]:26380', T_REDIS__SENTINEL_NAME: 'main' });
    assert.equal(redisTopology(r), 'sentinel');
    assert.deepEqual(parseHostPorts(r.sentinels), [
      { host: '10.0.0.1', port: 26379 },
      { host: '::1', port: 26380 },
    ]);
    assert.equal(redisTopology(load({ T_REDIS__CLUSTER_NODES: 'a:7000' })), 'cluster');
    assert.equal(redisTopology(load({})), 'single');
  });

  it('names the variable of a malformed list, a braced key prefix, or both topologies at once', () => {
    for (const [name, value] of [
      ['T_REDIS__SENTINELS', 'host-without-port'],
      ['T_REDIS__CLUSTER_NODES', 'a:1,'],
      ['T_REDIS__KEY_PREFIX', 'x{y}'],
      ['T_REDIS__EVENTS_SHARDS', '0'],
    ] as const) {
      assert.throws(
        () => load({ [name]: value }),
        (err: unknown) => err instanceof ConfigError && err.message.includes(name),
        name,
      );
    }
    const both = load({ T_REDIS__SENTINELS: 'a:1', T_REDIS__CLUSTER_NODES: 'b:2' });
    assert.throws(
      () => redisTopology(both),
      (err: unknown) => err instanceof ConfigError && /SENTINELS.*CLUSTER_NODES/.test(err.message),
    );
  });
});
