// Reads one node population of an extracted SONATA circuit (circuit_config.json + a nodes HDF5
// file) into columns, as bluepysnap's `circuit.nodes.get()` did for the original (reference §1.2
// step 4). Pure file reading with h5wasm: must not import DuckDB, the network or the handlers.
// Every problem with the archive's content is a TaskFailedError (bad_archive / population_not_found).
import { open, readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { TaskFailedError } from '@neuroagent/platform';
import type h5wasmNode from 'h5wasm/node';
import type { Dataset, Group, File as H5File } from 'h5wasm/node';
import type { NodePopulation, PopulationColumn } from './types.ts';

export const CIRCUIT_CONFIG_NAME = 'circuit_config.json';

const LIBRARY_GROUP = '@library';
const ID_COLUMNS = ['node_id', 'node_type_id'];
/** HDF5 type classes as h5wasm reports them in `metadata.type`. */
const H5T = { integer: 0, float: 1, string: 3, enum: 8 } as const;

function badArchive(message: string, cause?: unknown): TaskFailedError {
  return new TaskFailedError('bad_archive', message, cause === undefined ? {} : { cause });
}

function populationNotFound(population: string, available: string[]): TaskFailedError {
  const list =
    available.length === 0 ? 'the circuit has no node populations' : `available: ${available.join(', ')}`;
  return new TaskFailedError('population_not_found', `Population "${population}" not found (${list})`);
}

// ---------------------------------------------------------------------------------------------
// h5wasm: loaded on first use, so importing this module costs nothing to tasks that never read HDF5

type H5 = typeof h5wasmNode;
let h5wasmLoading: Promise<H5> | undefined;

/**
 * The Node build of h5wasm (`h5wasm/node`, NODERAWFS: real paths open directly, no virtual FS).
 * One wasm instance per thread. Its calls are synchronous and block the event loop while they run.
 */
export function loadH5wasm(): Promise<H5> {
  h5wasmLoading ??= import('h5wasm/node').then(async (m) => {
    await m.default.ready;
    return m.default;
  });
  return h5wasmLoading;
}

// ---------------------------------------------------------------------------------------------
// circuit_config.json → nodes file

/**
 * Finds the nodes HDF5 file that holds `population`. The config is at `circuitDir` or one folder
 * below it (archives usually have a root folder). `populations` lists every node population the
 * circuit declares, in config order.
 */
export async function findNodesFile(
  circuitDir: string,
  population: string,
): Promise<{ nodesFile: string; populations: string[] }> {
  const root = await realpath(circuitDir).catch((err: unknown) => {
    throw badArchive('The circuit folder cannot be read', err);
  });
  const configFile = await locateConfig(root);
  const configDir = path.dirname(configFile);
  const config = await readConfig(configFile, root);
  const vars = manifestVariables(config.manifest, configDir);
  const shown = (p: string) => path.relative(root, p) || '.';

  if (!isRecord(config.networks) || !Array.isArray(config.networks.nodes)) {
    throw badArchive(`${shown(configFile)} has no networks.nodes list`);
  }
  const populations: string[] = [];
  let nodesFile: string | undefined;
  for (const [i, entry] of config.networks.nodes.entries()) {
    const where = `networks.nodes[${i}]`;
    if (!isRecord(entry) || typeof entry.nodes_file !== 'string' || entry.nodes_file === '') {
      throw badArchive(`${shown(configFile)}: ${where} has no nodes_file`);
    }
    const file = path.resolve(configDir, expandVariables(entry.nodes_file, vars, `${where}.nodes_file`));
    let names: string[];
    if (entry.populations === undefined) {
      // No populations map: SONATA says the population names are the groups under /nodes.
      names = await withNodesFile(await confinedFile(root, file, shown(file)), shown(file), listPopulations);
    } else if (isRecord(entry.populations)) {
      names = Object.keys(entry.populations);
    } else {
      throw badArchive(`${shown(configFile)}: ${where}.populations is not an object`);
    }
    for (const name of names) {
      if (populations.includes(name)) {
        throw badArchive(`Population "${name}" is declared twice in the circuit`);
      }
      populations.push(name);
      if (name === population) nodesFile = file;
    }
  }
  if (nodesFile === undefined) throw populationNotFound(population, populations);
  return { nodesFile: await confinedFile(root, nodesFile, shown(nodesFile)), populations };
}

async function locateConfig(root: string): Promise<string> {
  const atRoot = path.join(root, CIRCUIT_CONFIG_NAME);
  if (await isFile(atRoot)) return atRoot;
  const entries = await readdir(root, { withFileTypes: true }).catch((err: unknown) => {
    throw badArchive('The circuit folder cannot be read', err);
  });
  const found: string[] = [];
  for (const e of entries.filter((d) => d.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const candidate = path.join(root, e.name, CIRCUIT_CONFIG_NAME);
    if (await isFile(candidate)) found.push(candidate);
  }
  const [only, ...more] = found;
  if (only === undefined) {
    throw badArchive(`The archive has no ${CIRCUIT_CONFIG_NAME} at its root or in a folder one level down`);
  }
  if (more.length > 0) {
    const folders = found.map((f) => `${path.basename(path.dirname(f))}/`).join(', ');
    throw badArchive(`The archive has several ${CIRCUIT_CONFIG_NAME} files (${folders}); expected one`);
  }
  return only;
}

async function readConfig(configFile: string, root: string): Promise<Record<string, unknown>> {
  const shown = path.relative(root, configFile);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(await confinedFile(root, configFile, shown), 'utf8'));
  } catch (err) {
    if (err instanceof TaskFailedError) throw err;
    throw badArchive(`${shown} is not valid JSON`, err);
  }
  if (!isRecord(parsed)) throw badArchive(`${shown} is not a JSON object`);
  return parsed;
}

const VARIABLE = /\$[A-Za-z0-9_]+/g;

/**
 * The manifest with every value expanded. `$BASE_DIR` defaults to the config's folder; values
 * may use other variables; relative results are resolved against the config's folder later,
 * as libsonata does.
 */
function manifestVariables(manifest: unknown, configDir: string): Map<string, string> {
  const raw = new Map<string, string>([['$BASE_DIR', configDir]]);
  if (manifest !== undefined) {
    if (!isRecord(manifest)) throw badArchive('The circuit config manifest is not an object');
    for (const [name, value] of Object.entries(manifest)) {
      if (!/^\$[A-Za-z0-9_]+$/.test(name) || typeof value !== 'string') {
        throw badArchive(`Invalid manifest entry "${name}" in the circuit config`);
      }
      raw.set(name, value);
    }
  }
  const expanded = new Map<string, string>();
  const expand = (name: string, chain: string[]): string => {
    const done = expanded.get(name);
    if (done !== undefined) return done;
    if (chain.includes(name)) {
      throw badArchive(`Manifest variables refer to each other: ${[...chain, name].join(' → ')}`);
    }
    const value = raw.get(name)!.replace(VARIABLE, (token) => {
      if (!raw.has(token)) throw badArchive(`Unknown variable ${token} in manifest entry ${name}`);
      return expand(token, [...chain, name]);
    });
    expanded.set(name, value);
    return value;
  };
  for (const name of raw.keys()) expand(name, []);
  return expanded;
}

function expandVariables(value: string, vars: Map<string, string>, where: string): string {
  return value.replace(VARIABLE, (token) => {
    const v = vars.get(token);
    if (v === undefined) throw badArchive(`Unknown variable ${token} in ${where}`);
    return v;
  });
}

/**
 * The real path of `file`, which must be a regular file inside the circuit folder: the archive is
 * untrusted, and a config path or symlink MUST NOT make the worker read files outside it.
 */
async function confinedFile(root: string, file: string, shown: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(file);
  } catch (err) {
    throw badArchive(`${shown} is missing from the archive`, err);
  }
  if (real !== root && !real.startsWith(root + path.sep)) {
    throw badArchive(`${shown} points outside the circuit folder`);
  }
  if (!(await isFile(real))) throw badArchive(`${shown} is not a file`);
  return real;
}

// ---------------------------------------------------------------------------------------------
// nodes HDF5 file → columns

/**
 * Reads `/nodes/<population>` whole: node_id (0..N-1), node_type_id, then every dataset of
 * group `0` sorted by name, with `@library` enumerations resolved to strings. Numeric columns stay
 * typed arrays (no per-row objects).
 */
export async function readNodePopulation(nodesFile: string, population: string): Promise<NodePopulation> {
  const shown = path.basename(nodesFile);
  return withNodesFile(path.resolve(nodesFile), shown, (h5, file) =>
    readPopulation(h5, file, population, shown),
  );
}

function listPopulations(h5: H5, file: H5File): string[] {
  const nodes = file.get('nodes');
  if (!(nodes instanceof h5.Group)) return [];
  return nodes.keys().filter((k) => nodes.get(k) instanceof h5.Group);
}

/** Opens the file read-only, runs `fn`, and always closes it. h5wasm errors become bad_archive. */
async function withNodesFile<T>(
  nodesFile: string,
  shown: string,
  fn: (h5: H5, file: H5File) => T,
): Promise<T> {
  await assertHdf5(nodesFile, shown);
  const h5 = await loadH5wasm();
  const file = new h5.File(nodesFile, 'r');
  // h5wasm does not throw when opening fails: it hands back a negative id.
  if (file.file_id < 0n) throw badArchive(`${shown} cannot be opened as HDF5`);
  try {
    return fn(h5, file);
  } catch (err) {
    if (err instanceof TaskFailedError) throw err;
    throw badArchive(`${shown} cannot be read: ${err instanceof Error ? err.message : String(err)}`, err);
  } finally {
    file.close();
  }
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Checks the HDF5 signature (at 0, 512, 1024, 2048, … as the format allows a user block) before
 * h5wasm sees the file: HDF5 would otherwise print its error stack to stderr and return a bad id.
 */
async function assertHdf5(file: string, shown: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw badArchive(`${shown} is missing from the archive`, err);
  }
  try {
    const { size } = await handle.stat();
    const buf = Buffer.alloc(HDF5_SIGNATURE.length);
    for (let offset = 0; offset + buf.length <= size; offset = offset === 0 ? 512 : offset * 2) {
      await handle.read(buf, 0, buf.length, offset);
      if (buf.equals(HDF5_SIGNATURE)) return;
    }
  } finally {
    await handle.close();
  }
  throw badArchive(`${shown} is not an HDF5 file`);
}

function readPopulation(h5: H5, file: H5File, population: string, shown: string): NodePopulation {
  const available = listPopulations(h5, file);
  // Compare names rather than calling get(population): a name containing '/' would walk the tree.
  if (!available.includes(population)) throw populationNotFound(population, available);
  const pop = file.get(`nodes/${population}`) as Group;
  const where = `${shown}:/nodes/${population}`;

  const typeIds = pop.get('node_type_id');
  if (!(typeIds instanceof h5.Dataset)) throw badArchive(`${where} has no node_type_id dataset`);
  const typeIdColumn = datasetColumn('node_type_id', typeIds, `${where}/node_type_id`);
  if (typeIdColumn.type !== 'integer') throw badArchive(`${where}/node_type_id is not an integer dataset`);
  const count = typeIdColumn.values.length;
  assertSingleGroup(h5, pop, count, where);

  const group = pop.get('0') as Group;
  const library = group.get(LIBRARY_GROUP);
  const enums = library instanceof h5.Group ? library : null;

  const nodeIds = new Int32Array(count);
  for (let i = 0; i < count; i++) nodeIds[i] = i;
  const columns: PopulationColumn[] = [{ name: 'node_id', type: 'integer', values: nodeIds }, typeIdColumn];
  // Subgroups (@library, dynamics_params) are skipped: libsonata lists them apart from attributes.
  const names = group
    .keys()
    .filter((k) => group.get(k) instanceof h5.Dataset)
    .sort();
  for (const name of names) {
    const at = `${where}/0/${name}`;
    if (ID_COLUMNS.includes(name)) throw badArchive(`${at} clashes with the ${name} column`);
    const column = datasetColumn(name, group.get(name) as Dataset, at);
    const values = enums?.get(name);
    columns.push(values instanceof h5.Dataset ? resolveEnumeration(column, values, at) : column);
  }
  for (const c of columns) {
    if (c.values.length !== count) {
      throw badArchive(`${where}: column ${c.name} has ${c.values.length} values for ${count} nodes`);
    }
  }
  return { name: population, count, columns };
}

/**
 * Only one node group is supported, and it must map node i to row i: SONATA's node_group_id must
 * be all 0 and node_group_index the identity when they are present.
 */
function assertSingleGroup(h5: H5, pop: Group, count: number, where: string): void {
  const groups = pop.keys().filter((k) => /^\d+$/.test(k) && pop.get(k) instanceof h5.Group);
  if (groups.length === 0) throw badArchive(`${where} has no node group "0"`);
  if (groups.length !== 1 || groups[0] !== '0') {
    throw badArchive(`${where} has node groups ${groups.join(', ')}; only a single group "0" is supported`);
  }
  const check = (name: string, expected: (i: number) => number) => {
    const ds = pop.get(name);
    if (ds === null) return;
    if (!(ds instanceof h5.Dataset)) throw badArchive(`${where}/${name} is not a dataset`);
    const column = datasetColumn(name, ds, `${where}/${name}`);
    if (column.type !== 'integer' || column.values.length !== count) {
      throw badArchive(`${where}/${name} must be ${count} integers`);
    }
    const v = numbers(column.values);
    for (let i = 0; i < count; i++) {
      if (v[i] !== expected(i)) {
        throw badArchive(`${where}/${name} does not map node ${i} to row ${i} of group 0`);
      }
    }
  };
  check('node_group_id', () => 0);
  check('node_group_index', (i) => i);
}

/** A 1-D dataset as a column. Narrow integers widen to Int32Array; uint64 must fit in int64. */
function datasetColumn(name: string, ds: Dataset, at: string): PopulationColumn {
  const meta = ds.metadata;
  if (meta.shape === null || meta.shape.length !== 1) {
    throw badArchive(`${at} is not one-dimensional (shape ${JSON.stringify(meta.shape)})`);
  }
  if (meta.type === H5T.string) {
    const values = ds.value;
    if (!Array.isArray(values)) throw badArchive(`${at} could not be read as strings`);
    return { name, type: 'string', values: values as string[] };
  }
  if (meta.type !== H5T.integer && meta.type !== H5T.float && meta.type !== H5T.enum) {
    throw badArchive(`${at} has an unsupported HDF5 type (class ${meta.type})`);
  }
  const v = ds.value;
  if (v instanceof Float32Array || v instanceof Float64Array) return { name, type: 'float', values: v };
  if (v instanceof Int32Array || v instanceof Uint32Array || v instanceof BigInt64Array) {
    return { name, type: 'integer', values: v };
  }
  if (
    v instanceof Int8Array ||
    v instanceof Uint8Array ||
    v instanceof Int16Array ||
    v instanceof Uint16Array
  ) {
    return { name, type: 'integer', values: Int32Array.from(v) };
  }
  if (v instanceof BigUint64Array) {
    for (const x of v) {
      if (x > 0x7fff_ffff_ffff_ffffn) throw badArchive(`${at} has values beyond the int64 range`);
    }
    return { name, type: 'integer', values: new BigInt64Array(v.buffer, v.byteOffset, v.length) };
  }
  throw badArchive(`${at} could not be read as numbers`);
}

/** `@library/<attr>` holds the values; the attribute holds indices into it (libsonata's "enumeration"). */
function resolveEnumeration(column: PopulationColumn, libraryDs: Dataset, at: string): PopulationColumn {
  if (column.type === 'string') return column;
  if (column.type !== 'integer') {
    throw badArchive(`${at} has an @library entry but holds floats, not indices`);
  }
  const library = datasetColumn(column.name, libraryDs, `@library/${column.name}`);
  if (library.type !== 'string') throw badArchive(`${at}: @library/${column.name} is not a string dataset`);
  const lib = library.values;
  const idx = numbers(column.values);
  const out: string[] = new Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const s = lib[idx[i]!];
    if (s === undefined) {
      throw badArchive(`${at}[${i}] = ${idx[i]} is not an index into @library (${lib.length} values)`);
    }
    out[i] = s;
  }
  return { name: column.name, type: 'string', values: out };
}

// ---------------------------------------------------------------------------------------------

/**
 * Integer values as plain numbers (exact below 2^53), so hot loops stay monomorphic. int64 is read
 * through 32-bit words (little-endian, as on every platform Node runs on here): reading a
 * BigInt64Array element allocates a BigInt, which costs ~80 ms per million.
 */
function numbers(values: Int32Array | Uint32Array | BigInt64Array | number[]): ArrayLike<number> {
  if (!(values instanceof BigInt64Array)) return values;
  const words = new Int32Array(values.buffer, values.byteOffset, values.length * 2);
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const lo = words[2 * i]!;
    const hi = words[2 * i + 1]!;
    out[i] = (hi === 0 && lo >= 0) || (hi === -1 && lo < 0) ? lo : Number(values[i]);
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
