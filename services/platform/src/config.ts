// Env-to-config loader shared by every service. A service declares one TypeBox schema of nested
// objects with snake_case keys; the variable of a leaf is PREFIX_A__B (README.md, Configuration). Values are
// coerced, defaulted and validated once at boot, and every problem is reported with its variable.
// Only a service's main.ts passes process.env in.
import { Kind, OptionalKind, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ConfigError } from './errors.ts';

export interface ConfigVariable {
  variable: string;
  path: string[];
  schema: TSchema;
  description: string;
  default: string;
}

function isObject(schema: TSchema): schema is TObject {
  return schema[Kind] === 'Object';
}

/** Every variable a schema reads, in declaration order: used for boot errors and the docs table. */
export function describeConfig(schema: TObject, prefix: string): ConfigVariable[] {
  const out: ConfigVariable[] = [];
  const walk = (node: TObject, path: string[]) => {
    for (const [key, child] of Object.entries(node.properties)) {
      const childPath = [...path, key];
      if (isObject(child)) {
        walk(child, childPath);
        continue;
      }
      out.push({
        variable: `${prefix}_${childPath.map((p) => p.toUpperCase()).join('__')}`,
        path: childPath,
        schema: child,
        description: String(child.description ?? ''),
        default: child.default === undefined ? '' : formatDefault(child.default),
      });
    }
  };
  walk(schema, []);
  return out;
}

function formatDefault(value: unknown): string {
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

function coerce(raw: string, schema: TSchema): unknown {
  switch (schema[Kind]) {
    case 'Integer':
    case 'Number': {
      const trimmed = raw.trim();
      // Number('') is 0 and Number('1e3') is 1000: accept plain decimals only, so typos fail loudly.
      if (!/^-?\d+(\.\d+)?$/.test(trimmed)) return raw;
      return Number(trimmed);
    }
    case 'Boolean': {
      const v = raw.trim().toLowerCase();
      if (v === 'true' || v === '1' || v === 'yes') return true;
      if (v === 'false' || v === '0' || v === 'no') return false;
      return raw;
    }
    case 'Array':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    default:
      return raw;
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}

// Kubernetes gives every pod variables for each Service of its namespace (unless the pod sets
// enableServiceLinks: false): a Service named `neuroagent-gateway` yields NEUROAGENT_GATEWAY_SERVICE_HOST,
// NEUROAGENT_GATEWAY_PORT=tcp://10.0.0.1:8078, NEUROAGENT_GATEWAY_PORT_8078_TCP_ADDR and so on. They
// share our prefix, so they would fail the unknown-variable check and stop every pod. They are told
// apart from a typo by name AND value: no `__` (ours separate sections with it), a service-link
// suffix, and the value Kubernetes writes there (an address, a port number, a tcp:// URL, a protocol).
const IP = '(\\d{1,3}(\\.\\d{1,3}){3}|\\[?[0-9a-fA-F:]+\\]?)';
const SERVICE_LINK_RULES: [suffix: RegExp, value: RegExp][] = [
  [/_SERVICE_HOST$/, new RegExp(`^${IP}$`)],
  [/_SERVICE_PORT(_[A-Z0-9_]+)?$/, /^\d{1,5}$/],
  [/_PORT$/, new RegExp(`^(tcp|udp|sctp)://${IP}:\\d{1,5}$`)],
  [/_PORT_\d{1,5}_(TCP|UDP|SCTP)$/, new RegExp(`^(tcp|udp|sctp)://${IP}:\\d{1,5}$`)],
  [/_PORT_\d{1,5}_(TCP|UDP|SCTP)_PROTO$/, /^(tcp|udp|sctp)$/],
  [/_PORT_\d{1,5}_(TCP|UDP|SCTP)_PORT$/, /^\d{1,5}$/],
  [/_PORT_\d{1,5}_(TCP|UDP|SCTP)_ADDR$/, new RegExp(`^${IP}$`)],
];

/** True for a variable Kubernetes injects for a Service (see above), never for one of ours. */
export function isServiceLinkVariable(name: string, value: string): boolean {
  if (name.includes('__') || !/^[A-Z0-9_]+$/.test(name)) return false;
  return SERVICE_LINK_RULES.some(([suffix, shape]) => suffix.test(name) && shape.test(value));
}

export function loadConfig<T extends TObject>(
  schema: T,
  prefix: string,
  env: Record<string, string | undefined>,
): Readonly<Static<T>> {
  const vars = describeConfig(schema, prefix);
  const known = new Set(vars.map((v) => v.variable));
  const problems: { path: string; message: string }[] = [];

  // A misspelt variable would otherwise be ignored in silence and its default used instead.
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith(`${prefix}_`) && !known.has(name) && !isServiceLinkVariable(name, value ?? '')) {
      problems.push({ path: name, message: 'unknown variable (check the spelling against the docs)' });
    }
  }

  const raw: Record<string, unknown> = {};
  for (const v of vars) {
    const value = env[v.variable];
    if (value === undefined || value === '') {
      if (v.schema.default !== undefined) setPath(raw, v.path, structuredClone(v.schema.default));
      else if (v.schema[OptionalKind] !== 'Optional')
        problems.push({ path: v.variable, message: 'is required' });
      continue;
    }
    const coerced = coerce(value, v.schema);
    if (!Value.Check(v.schema, coerced)) {
      const first = Value.Errors(v.schema, coerced).First();
      problems.push({
        path: v.variable,
        message: `${first?.message ?? 'invalid value'} (got ${JSON.stringify(value)})`,
      });
      continue;
    }
    setPath(raw, v.path, coerced);
  }

  if (problems.length === 0 && !Value.Check(schema, raw)) {
    for (const e of Value.Errors(schema, raw)) problems.push({ path: e.path, message: e.message });
  }
  if (problems.length > 0) {
    const lines = problems.map((p) => `  ${p.path}: ${p.message}`).join('\n');
    throw new ConfigError(`invalid configuration:\n${lines}`, problems);
  }
  return deepFreeze(raw) as Readonly<Static<T>>;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Renders the variables as a Markdown table for the README (`npm run config:doc`). */
export function configTable(schema: TObject, prefix: string): string {
  const rows = describeConfig(schema, prefix).map(
    (v) => `| \`${v.variable}\` | ${v.default === '' ? '—' : `\`${v.default}\``} | ${v.description} |`,
  );
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n');
}
