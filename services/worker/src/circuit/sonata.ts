// Reads one node population of an extracted SONATA circuit (circuit_config.json + a nodes HDF5
// file) into columns, as bluepysnap's `circuit.nodes.get()` did for the original Python tool. The
// HDF5 file itself is parsed in a confined reader process (hdf5-confined.ts); this module reads
// the JSON config and checks paths. Must not import DuckDB, the network or the handlers.
// Every problem with the archive's content is a TaskFailedError (bad_archive / population_not_found).
import { open, readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { TaskFailedError } from '@neuroagent/platform';
import { DEFAULT_HDF5_READER_LIMITS, type Hdf5ReaderLimits, readConfined } from './hdf5-confined.ts';
import type { NodePopulation } from './types.ts';

export const CIRCUIT_CONFIG_NAME = 'circuit_config.json';

function badArchive(message: string, cause?: unknown): TaskFailedError {
  return new TaskFailedError('bad_archive', message, cause === undefined ? {} : { cause });
}

function populationNotFound(population: string, available: string[]): TaskFailedError {
  const list =
    available.length === 0 ? 'the circuit has no node populations' : `available: ${available.join(', ')}`;
  return new TaskFailedError('population_not_found', `Population "${population}" not found (${list})`);
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
  limits: Hdf5ReaderLimits = DEFAULT_HDF5_READER_LIMITS,
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
      const real = await confinedFile(root, file, shown(file));
      await assertHdf5(real, shown(file));
      names = await readConfined<string[]>(real, { op: 'list', nodesFile: real, shown: shown(file) }, limits);
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
 * Reads `/nodes/<population>` whole (see hdf5-columns.ts) in a reader process that may read the
 * nodes file and nothing else.
 */
export async function readNodePopulation(
  nodesFile: string,
  population: string,
  limits: Hdf5ReaderLimits = DEFAULT_HDF5_READER_LIMITS,
): Promise<NodePopulation> {
  const real = path.resolve(nodesFile);
  const shown = path.basename(nodesFile);
  await assertHdf5(real, shown);
  return readConfined<NodePopulation>(real, { op: 'read', nodesFile: real, shown, population }, limits);
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
