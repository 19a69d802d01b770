// Test support (also used by the circuit benchmark): writes a synthetic SONATA circuit
// (circuit_config.json + nodes.h5) with h5wasm and packs it as the circuit.gz a pre-signed URL
// serves. Every value is a pure function of (seed, node id), so tests can recompute any row, and
// the writer fills typed arrays column by column: a million neurons take a few seconds.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { create as createTar } from 'tar';
import { loadH5wasm } from '../src/circuit/hdf5-columns.ts';

export const FIXTURE_POPULATION = 'S1nonbarrel_neurons';
/** Nodes in the extra population (written to its own file, listed without a populations map). */
export const EXTRA_POPULATION_COUNT = 50;
export const EXTRA_NODES_FILE = 'networks/extra_nodes.h5';

// @library enumerations, sorted as pandas categories would be.
export const LAYERS = ['1', '2', '3', '4', '5', '6'];
export const MTYPES = [
  'L1_DAC',
  'L1_HAC',
  'L1_LAC',
  'L1_NGC-DA',
  'L1_SAC',
  'L23_BP',
  'L23_LBC',
  'L23_MC',
  'L2_IPC',
  'L2_TPC:A',
  'L3_TPC:A',
  'L3_TPC:C',
  'L4_LBC',
  'L4_SSC',
  'L4_TPC',
  'L4_UPC',
  'L5_LBC',
  'L5_MC',
  'L5_TPC:A',
  'L5_TPC:B',
  'L5_UPC',
  'L6_BPC',
  'L6_IPC',
  'L6_MC',
  'L6_TPC:A',
  'L6_UPC',
];
export const ETYPES = [
  'bAC',
  'bIR',
  'bNAC',
  'bSTUT',
  'cAC',
  'cADpyr',
  'cIR',
  'cNAC',
  'cSTUT',
  'dNAC',
  'dSTUT',
];
export const REGIONS = ['S1DZ', 'S1DZO', 'S1FL', 'S1HL', 'S1J', 'S1Sh', 'S1Tr', 'S1ULp'];
export const SYNAPSE_CLASSES = ['EXC', 'INH'];
export const MODEL_TYPES = ['biophysical'];

export interface SonataFixtureOptions {
  population?: string;
  count: number;
  seed?: number;
  /** Name of a second, small population in its own nodes file. */
  extraPopulation?: string;
}

/** One neuron as the reader must return it (x, y, z rounded to float32 as stored). */
export interface FixtureNode {
  node_type_id: bigint;
  layer: string;
  mtype: string;
  etype: string;
  region: string;
  synapse_class: string;
  model_type: string;
  morphology: string;
  morph_class_id: number;
  x: number;
  y: number;
  z: number;
}

// ---------------------------------------------------------------------------------------------
// Deterministic values: a counter-based hash, so row i never depends on rows before it

function hash(seed: number, i: number, field: number): number {
  let h =
    Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35) ^ Math.imul(field, 0x27d4eb2f);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

const unit = (seed: number, i: number, field: number) => hash(seed, i, field) / 2 ** 32;

// Per mtype: the layers it may sit in (L23 → 2 or 3), and excitatory or not.
const MTYPE_LAYERS = MTYPES.map((m) => {
  const digits = /^L(\d+)_/.exec(m)![1]!;
  return [...digits].map((d) => LAYERS.indexOf(d));
});
const MTYPE_EXCITATORY = MTYPES.map((m) => /(PC|SSC)(:|$)/.test(m));
const EXC_ETYPE = ETYPES.indexOf('cADpyr');
const INH_ETYPES = ETYPES.map((_, k) => k).filter((k) => k !== EXC_ETYPE);

const mtypeCode = (seed: number, i: number) => hash(seed, i, 1) % MTYPES.length;
function layerCode(seed: number, i: number, mtype: number): number {
  const options = MTYPE_LAYERS[mtype]!;
  return options[hash(seed, i, 2) % options.length]!;
}
const synapseCode = (mtype: number) => (MTYPE_EXCITATORY[mtype] ? 0 : 1);
const etypeCode = (seed: number, i: number, mtype: number) =>
  MTYPE_EXCITATORY[mtype] ? EXC_ETYPE : INH_ETYPES[hash(seed, i, 3) % INH_ETYPES.length]!;
const regionCode = (seed: number, i: number) => hash(seed, i, 4) % REGIONS.length;
const morphology = (seed: number, i: number) =>
  `morph_${String(hash(seed, i, 9) % 1_000_000).padStart(6, '0')}`;
const morphClassId = (seed: number, i: number) => hash(seed, i, 8) % 40;
const ORIGIN = [4000, -1800, 2000];
const coordinate = (seed: number, i: number, axis: number) => ORIGIN[axis]! + unit(seed, i, 5 + axis) * 3000;

/** Row `i` of the population written with `seed`, recomputed (for assertions). */
export function fixtureNode(seed: number, i: number): FixtureNode {
  const mtype = mtypeCode(seed, i);
  return {
    node_type_id: -1n,
    layer: LAYERS[layerCode(seed, i, mtype)]!,
    mtype: MTYPES[mtype]!,
    etype: ETYPES[etypeCode(seed, i, mtype)]!,
    region: REGIONS[regionCode(seed, i)]!,
    synapse_class: SYNAPSE_CLASSES[synapseCode(mtype)]!,
    model_type: MODEL_TYPES[0]!,
    morphology: morphology(seed, i),
    morph_class_id: morphClassId(seed, i),
    x: Math.fround(coordinate(seed, i, 0)),
    y: Math.fround(coordinate(seed, i, 1)),
    z: Math.fround(coordinate(seed, i, 2)),
  };
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * Writes `circuit_config.json` and `nodes.h5` into `dir` (created if missing). With
 * `extraPopulation`, also `networks/extra_nodes.h5`, found through a nested manifest variable.
 */
export async function writeSonataCircuit(dir: string, opts: SonataFixtureOptions): Promise<void> {
  const population = opts.population ?? FIXTURE_POPULATION;
  const seed = opts.seed ?? 1;
  await mkdir(dir, { recursive: true });
  const h5 = await loadH5wasm();

  const networks: Record<string, unknown>[] = [
    {
      nodes_file: '$BASE_DIR/nodes.h5',
      populations: { [population]: { type: 'biophysical', morphologies_dir: '$BASE_DIR/morphologies' } },
    },
  ];
  writeMainPopulation(h5, path.resolve(dir, 'nodes.h5'), population, opts.count, seed);
  if (opts.extraPopulation !== undefined) {
    await mkdir(path.join(dir, path.dirname(EXTRA_NODES_FILE)), { recursive: true });
    writeExtraPopulation(h5, path.resolve(dir, EXTRA_NODES_FILE), opts.extraPopulation);
    // No populations map: the reader must take the names from the file's /nodes groups.
    networks.push({ nodes_file: `$NETWORK_DIR/${path.basename(EXTRA_NODES_FILE)}` });
  }
  const config = {
    version: 2,
    manifest: { $BASE_DIR: './', $NETWORK_DIR: `$BASE_DIR/${path.dirname(EXTRA_NODES_FILE)}` },
    networks: { nodes: networks, edges: [] },
  };
  await writeFile(path.join(dir, 'circuit_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

type H5 = Awaited<ReturnType<typeof loadH5wasm>>;

function writeMainPopulation(h5: H5, file: string, population: string, n: number, seed: number): void {
  // @library indices are small ints, as pandas category codes written by voxcell are.
  const layer = new Int8Array(n);
  const mtype = new Int8Array(n);
  const etype = new Int8Array(n);
  const region = new Int8Array(n);
  const synapse = new Int8Array(n);
  const modelType = new Int8Array(n);
  const morphClass = new Int32Array(n);
  const xyz = { x: new Float32Array(n), y: new Float32Array(n), z: new Float32Array(n) };
  const orientation = {
    orientation_w: new Float64Array(n),
    orientation_x: new Float64Array(n),
    orientation_y: new Float64Array(n),
    orientation_z: new Float64Array(n),
  };
  const holding = new Float32Array(n);
  const morph: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const m = mtypeCode(seed, i);
    mtype[i] = m;
    layer[i] = layerCode(seed, i, m);
    etype[i] = etypeCode(seed, i, m);
    region[i] = regionCode(seed, i);
    synapse[i] = synapseCode(m);
    morphClass[i] = morphClassId(seed, i);
    xyz.x[i] = coordinate(seed, i, 0);
    xyz.y[i] = coordinate(seed, i, 1);
    xyz.z[i] = coordinate(seed, i, 2);
    orientation.orientation_w[i] = unit(seed, i, 20) * 2 - 1;
    orientation.orientation_x[i] = unit(seed, i, 21) * 2 - 1;
    orientation.orientation_y[i] = unit(seed, i, 22) * 2 - 1;
    orientation.orientation_z[i] = unit(seed, i, 23) * 2 - 1;
    holding[i] = -unit(seed, i, 30) * 0.2;
    morph[i] = morphology(seed, i);
  }
  const typeIds = new BigInt64Array(n).fill(-1n);
  const groupIndex = new BigInt64Array(n);
  for (let i = 0; i < n; i++) groupIndex[i] = BigInt(i);

  const f = new h5.File(file, 'w');
  try {
    const pop = f.create_group('nodes').create_group(population);
    pop.create_dataset({ name: 'node_type_id', data: typeIds });
    pop.create_dataset({ name: 'node_group_id', data: new BigInt64Array(n) });
    pop.create_dataset({ name: 'node_group_index', data: groupIndex });
    const g = pop.create_group('0');
    const lib = g.create_group('@library');
    const enumeration = (name: string, codes: Int8Array, values: string[]) => {
      g.create_dataset({ name, data: codes });
      lib.create_dataset({ name, data: values });
    };
    enumeration('layer', layer, LAYERS);
    enumeration('mtype', mtype, MTYPES);
    enumeration('etype', etype, ETYPES);
    enumeration('region', region, REGIONS);
    enumeration('synapse_class', synapse, SYNAPSE_CLASSES);
    enumeration('model_type', modelType, MODEL_TYPES);
    g.create_dataset({ name: 'morphology', data: morph });
    g.create_dataset({ name: 'morph_class_id', data: morphClass });
    for (const [name, data] of Object.entries({ ...xyz, ...orientation })) g.create_dataset({ name, data });
    // A subgroup the reader must skip, as libsonata does.
    g.create_group('dynamics_params').create_dataset({ name: 'holding_current', data: holding });
  } finally {
    f.close();
  }
}

function writeExtraPopulation(h5: H5, file: string, population: string): void {
  const n = EXTRA_POPULATION_COUNT;
  const f = new h5.File(file, 'w');
  try {
    const pop = f.create_group('nodes').create_group(population);
    pop.create_dataset({ name: 'node_type_id', data: new BigInt64Array(n).fill(-1n) });
    const g = pop.create_group('0');
    g.create_dataset({ name: 'model_type', data: new Int8Array(n) });
    g.create_group('@library').create_dataset({ name: 'model_type', data: ['virtual'] });
  } finally {
    f.close();
  }
}

/** Packs `dir` as a gzip'd tar whose single root folder is `circuit/` (the circuit.gz asset). */
export async function packCircuit(dir: string, outFile: string): Promise<void> {
  await createTar({ gzip: true, file: outFile, cwd: dir, portable: true, prefix: 'circuit' }, ['.']);
}
