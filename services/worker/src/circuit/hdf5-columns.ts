// Reads one node population out of a SONATA nodes HDF5 file with h5wasm. Runs only inside the
// confined reader process (hdf5-reader-process.ts): libhdf5 parses attacker-written bytes here.
// Must not import @neuroagent/platform, config or anything holding a connection or a secret: the
// reader process can read nothing but the circuit folder and the code it needs.
// Every problem with the file's content is an Hdf5ContentError, which the parent maps to a task failure.
import type h5wasmNode from 'h5wasm/node';
import type { Dataset, Group, File as H5File } from 'h5wasm/node';
import type { NodePopulation, PopulationColumn } from './types.ts';

const LIBRARY_GROUP = '@library';
const ID_COLUMNS = ['node_id', 'node_type_id'];
/** HDF5 type classes as h5wasm reports them in `metadata.type`. */
const H5T = { integer: 0, float: 1, string: 3, enum: 8 } as const;

export type Hdf5ContentCode = 'bad_archive' | 'population_not_found';

export class Hdf5ContentError extends Error {
  override name = 'Hdf5ContentError';
  readonly code: Hdf5ContentCode;
  constructor(code: Hdf5ContentCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

function badArchive(message: string): Hdf5ContentError {
  return new Hdf5ContentError('bad_archive', message);
}

export interface ReadLimits {
  /** Most values one dataset may declare; checked on its shape before anything is read. */
  maxElements: number;
}

// ---------------------------------------------------------------------------------------------
// h5wasm: loaded on first use

type H5 = typeof h5wasmNode;
let h5wasmLoading: Promise<H5> | undefined;

/** The Node build of h5wasm (`h5wasm/node`, NODERAWFS: real paths open directly, no virtual FS). */
export function loadH5wasm(): Promise<H5> {
  h5wasmLoading ??= import('h5wasm/node').then(async (m) => {
    await m.default.ready;
    return m.default;
  });
  return h5wasmLoading;
}

/** Opens the file read-only, runs `fn`, and always closes it. h5wasm errors become bad_archive. */
export async function withNodesFile<T>(
  nodesFile: string,
  shown: string,
  fn: (h5: H5, file: H5File) => T,
): Promise<T> {
  const h5 = await loadH5wasm();
  const file = new h5.File(nodesFile, 'r');
  // h5wasm does not throw when opening fails: it hands back a negative id.
  if (file.file_id < 0n) throw badArchive(`${shown} cannot be opened as HDF5`);
  try {
    return fn(h5, file);
  } catch (err) {
    if (err instanceof Hdf5ContentError) throw err;
    const message = `${shown} cannot be read: ${err instanceof Error ? err.message : String(err)}`;
    throw new Hdf5ContentError('bad_archive', message, { cause: err });
  } finally {
    file.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Links and storage that would make libhdf5 open another file

/**
 * The object at `path` (relative to `group`), refused when it is reached through anything but a
 * hard link. A soft link can alias any object and an external link names another file: libhdf5
 * would open that file (any host path the process may read), so both are refused before `get()`
 * follows them. Names come from `keys()`, so a '/' in a name cannot walk the tree.
 */
function child(group: Group, name: string, at: string): ReturnType<Group['get']> {
  const full = `${group.path === '/' ? '' : group.path}/${name}`;
  if (group.get_link(full) !== null) throw badArchive(`${at} is a soft link; links are not allowed`);
  const ext = group.get_external_link(full) as { filename?: string } | null;
  if (ext?.filename !== undefined) {
    throw badArchive(`${at} is an external link to another file; links are not allowed`);
  }
  return group.get(name);
}

function childOf(group: Group, name: string, at: string): ReturnType<Group['get']> {
  return group.keys().includes(name) ? child(group, name, at) : null;
}

/**
 * A virtual dataset maps its values from other files, so it is refused from its creation property
 * list (h5wasm reports the layout's sources). External raw storage is not reported by h5wasm; the
 * reader process refuses every file open but the nodes file, and that is where it is caught.
 */
function assertPlainStorage(ds: Dataset, at: string, limits: ReadLimits): void {
  const meta = ds.metadata as Dataset['metadata'] & { virtual_sources?: unknown[] };
  if (meta.virtual_sources !== undefined) {
    throw badArchive(`${at} is a virtual dataset (values from other files); not allowed`);
  }
  if (meta.shape === null || meta.shape.length !== 1) {
    throw badArchive(`${at} is not one-dimensional (shape ${JSON.stringify(meta.shape)})`);
  }
  const length = meta.shape[0]!;
  if (!Number.isSafeInteger(length) || length > limits.maxElements) {
    throw badArchive(`${at} declares ${length} values; at most ${limits.maxElements} are allowed`);
  }
}

// ---------------------------------------------------------------------------------------------
// nodes HDF5 file → columns

export function listPopulations(h5: H5, file: H5File): string[] {
  const nodes = childOf(file, 'nodes', '/nodes');
  if (!(nodes instanceof h5.Group)) return [];
  return nodes.keys().filter((k) => child(nodes, k, `/nodes/${k}`) instanceof h5.Group);
}

/**
 * Reads `/nodes/<population>` whole: node_id (0..N-1), node_type_id, then every dataset of
 * group `0` sorted by name, with `@library` enumerations resolved to strings. Numeric columns stay
 * typed arrays (no per-row objects).
 */
export function readPopulation(
  h5: H5,
  file: H5File,
  population: string,
  shown: string,
  limits: ReadLimits,
): NodePopulation {
  const available = listPopulations(h5, file);
  if (!available.includes(population)) {
    const list =
      available.length === 0 ? 'the circuit has no node populations' : `available: ${available.join(', ')}`;
    throw new Hdf5ContentError('population_not_found', `Population "${population}" not found (${list})`);
  }
  const where = `${shown}:/nodes/${population}`;
  const pop = child(file.get('nodes') as Group, population, where) as Group;

  const typeIds = childOf(pop, 'node_type_id', `${where}/node_type_id`);
  if (!(typeIds instanceof h5.Dataset)) throw badArchive(`${where} has no node_type_id dataset`);
  const typeIdColumn = datasetColumn('node_type_id', typeIds, `${where}/node_type_id`, limits);
  if (typeIdColumn.type !== 'integer') throw badArchive(`${where}/node_type_id is not an integer dataset`);
  const count = typeIdColumn.values.length;
  assertSingleGroup(h5, pop, count, where, limits);

  const group = child(pop, '0', `${where}/0`) as Group;
  const library = childOf(group, LIBRARY_GROUP, `${where}/0/${LIBRARY_GROUP}`);
  const enums = library instanceof h5.Group ? library : null;

  const nodeIds = new Int32Array(count);
  for (let i = 0; i < count; i++) nodeIds[i] = i;
  const columns: PopulationColumn[] = [{ name: 'node_id', type: 'integer', values: nodeIds }, typeIdColumn];
  // Subgroups (@library, dynamics_params) are skipped: libsonata lists them apart from attributes.
  const names = group
    .keys()
    .filter((k) => child(group, k, `${where}/0/${k}`) instanceof h5.Dataset)
    .sort();
  for (const name of names) {
    const at = `${where}/0/${name}`;
    if (ID_COLUMNS.includes(name)) throw badArchive(`${at} clashes with the ${name} column`);
    const column = datasetColumn(name, group.get(name) as Dataset, at, limits);
    const values = enums === null ? null : childOf(enums, name, `${at} (@library)`);
    columns.push(values instanceof h5.Dataset ? resolveEnumeration(column, values, at, limits) : column);
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
function assertSingleGroup(h5: H5, pop: Group, count: number, where: string, limits: ReadLimits): void {
  const groups = pop
    .keys()
    .filter((k) => /^\d+$/.test(k) && child(pop, k, `${where}/${k}`) instanceof h5.Group);
  if (groups.length === 0) throw badArchive(`${where} has no node group "0"`);
  if (groups.length !== 1 || groups[0] !== '0') {
    throw badArchive(`${where} has node groups ${groups.join(', ')}; only a single group "0" is supported`);
  }
  const check = (name: string, expected: (i: number) => number) => {
    const ds = childOf(pop, name, `${where}/${name}`);
    if (ds === null) return;
    if (!(ds instanceof h5.Dataset)) throw badArchive(`${where}/${name} is not a dataset`);
    const column = datasetColumn(name, ds, `${where}/${name}`, limits);
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
function datasetColumn(name: string, ds: Dataset, at: string, limits: ReadLimits): PopulationColumn {
  assertPlainStorage(ds, at, limits);
  const meta = ds.metadata;
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
function resolveEnumeration(
  column: PopulationColumn,
  libraryDs: Dataset,
  at: string,
  limits: ReadLimits,
): PopulationColumn {
  if (column.type === 'string') return column;
  if (column.type !== 'integer') {
    throw badArchive(`${at} has an @library entry but holds floats, not indices`);
  }
  const library = datasetColumn(column.name, libraryDs, `@library/${column.name}`, limits);
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
