// Decides, for each backing server the gateway and the worker are configured to use, whether it
// already answers, whether `npm start` may run it locally, or what the developer must do. Every
// problem is collected first, so one run names all of them and nothing is started in vain.
import { findOnPath, type LocalServiceSpec } from './local-services.ts';
import { type HostPort, isPortOpen, parseHostPort } from './probe.ts';

export interface DependencyUse {
  variable: string;
  url: string;
}

export interface Dependency {
  spec: LocalServiceSpec;
  /** Every variable that points a service at this kind of server, e.g. NEUROAGENT_NATS__URL. */
  uses: DependencyUse[];
}

export interface StartPlan {
  spec: LocalServiceSpec;
  command: string;
  target: HostPort;
}

export interface DependencyCheck {
  start: StartPlan[];
  problems: string[];
}

// Only the default address is ours to start: any other address belongs to someone else's server.
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost']);

interface Target {
  url: string;
  variables: string[];
  endpoints: HostPort[];
}

/** Probes every distinct address once; `pathList` is the PATH to look for server binaries in. */
export async function checkDependencies(
  deps: Dependency[],
  pathList: string | undefined,
  probeTimeoutMs: number,
): Promise<DependencyCheck> {
  const result: DependencyCheck = { start: [], problems: [] };
  for (const dep of deps) {
    const { spec } = dep;
    for (const target of groupByAddress(dep)) {
      const probes = target.endpoints.map((e) => isPortOpen(e.host, e.port, probeTimeoutMs));
      // A NATS URL may list several servers; the client gets by with any one of them.
      if ((await Promise.all(probes)).some(Boolean)) continue;

      const only = target.endpoints.length === 1 ? target.endpoints[0] : undefined;
      const isDefault = only !== undefined && LOCAL_HOSTS.has(only.host) && only.port === spec.defaultPort;
      const command = findOnPath(spec.binary, pathList);
      if (isDefault && command !== undefined) {
        result.start.push({ spec, command, target: { host: '127.0.0.1', port: spec.defaultPort } });
      } else if (isDefault) {
        const all = dep.uses.map((u) => u.variable).join(' and ');
        result.problems.push(
          `${spec.label} does not answer at ${target.url} and ${spec.binary} is not on PATH: install it ` +
            `(Debian: apt-get install ${spec.debianPackage}) or run \`docker compose up -d nats redis\`, or set ${all}`,
        );
      } else {
        const vars = target.variables.join(' and ');
        result.problems.push(
          `${spec.label} does not answer at ${target.url} (${vars}): start it there or change ${vars}; ` +
            `npm start runs a local ${spec.binary} only for the default ${spec.defaultUrl}`,
        );
      }
    }
  }
  return result;
}

// The gateway and the worker usually share one server (even with different Redis databases):
// probe, report and start it once.
function groupByAddress(dep: Dependency): Target[] {
  const byAddress = new Map<string, Target>();
  for (const use of dep.uses) {
    const endpoints = use.url
      .split(',')
      .filter((part) => part.trim() !== '')
      .map((part) => parseHostPort(part, dep.spec.defaultPort));
    const key = endpoints.map((e) => `${e.host}:${e.port}`).join(',');
    const known = byAddress.get(key);
    if (known) known.variables.push(use.variable);
    else byAddress.set(key, { url: use.url, variables: [use.variable], endpoints });
  }
  return [...byAddress.values()];
}
