import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TaskFailedError } from '@neuroagent/platform';
import type { Group } from 'h5wasm/node';
import { extract } from 'tar';
import { loadH5wasm } from '../src/circuit/hdf5-columns.ts';
import { findNodesFile, readNodePopulation } from '../src/circuit/sonata.ts';
import type { NodePopulation, PopulationColumn } from '../src/circuit/types.ts';
import {
  EXTRA_NODES_FILE,
  EXTRA_POPULATION_COUNT,
  FIXTURE_POPULATION,
  fixtureNode,
  packCircuit,
  writeSonataCircuit,
} from './sonata-fixture.ts';

const COUNT = 3000;
const SEED = 7;
const EXTRA = 'POm';

let tmp: string;
let circuit: string;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'circuit-sonata-'));
  circuit = path.join(tmp, 'circuit');
  await writeSonataCircuit(circuit, { count: COUNT, seed: SEED, extraPopulation: EXTRA });
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function failsWith(code: string, message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof TaskFailedError, `expected a TaskFailedError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.retryable, false);
    assert.match(err.message, message);
    return true;
  };
}

function column(pop: NodePopulation, name: string): PopulationColumn {
  const c = pop.columns.find((col) => col.name === name);
  assert.ok(c, `column ${name}`);
  return c;
}

/** A fresh circuit folder holding the standard fixture, to damage in one test. */
async function scratchCircuit(name: string, count = 20): Promise<string> {
  const dir = path.join(tmp, name);
  await writeSonataCircuit(dir, { count, seed: SEED, extraPopulation: EXTRA });
  return dir;
}

/** A circuit whose single population is built by `build` with raw h5wasm. */
async function customCircuit(name: string, build: (pop: Group) => void): Promise<string> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  const h5 = await loadH5wasm();
  const f = new h5.File(path.join(dir, 'nodes.h5'), 'w');
  try {
    build(f.create_group('nodes').create_group('pop'));
  } finally {
    f.close();
  }
  const config = { networks: { nodes: [{ nodes_file: '$BASE_DIR/nodes.h5', populations: { pop: {} } }] } };
  await writeFile(path.join(dir, 'circuit_config.json'), JSON.stringify(config));
  return dir;
}

describe('findNodesFile(circuitDir, population)', () => {
  it('resolves nodes_file through the manifest when the config is at the root', async () => {
    const found = await findNodesFile(circuit, FIXTURE_POPULATION);
    assert.equal(found.nodesFile, path.join(circuit, 'nodes.h5'));
    assert.deepEqual(found.populations, [FIXTURE_POPULATION, EXTRA]);
  });

  it('finds the config one folder down, as in an extracted circuit.gz', async () => {
    const archive = path.join(tmp, 'circuit.gz');
    await packCircuit(circuit, archive);
    const extracted = path.join(tmp, 'extracted');
    await mkdir(extracted);
    await extract({ file: archive, cwd: extracted });
    const found = await findNodesFile(extracted, FIXTURE_POPULATION);
    assert.equal(found.nodesFile, path.join(extracted, 'circuit', 'nodes.h5'));
  });

  it('finds a population named only by the groups of its file, through a nested manifest variable', async () => {
    const found = await findNodesFile(circuit, EXTRA);
    assert.equal(found.nodesFile, path.join(circuit, EXTRA_NODES_FILE));
  });

  it('rejects an unknown population with population_not_found listing the available ones', async () => {
    await assert.rejects(
      findNodesFile(circuit, 'nope'),
      failsWith('population_not_found', new RegExp(`"nope".*${FIXTURE_POPULATION}, ${EXTRA}`)),
    );
  });

  it('rejects a folder without circuit_config.json with bad_archive', async () => {
    const empty = path.join(tmp, 'empty', 'circuit');
    await mkdir(empty, { recursive: true });
    await assert.rejects(
      findNodesFile(path.dirname(empty), FIXTURE_POPULATION),
      failsWith('bad_archive', /no circuit_config\.json/),
    );
  });

  it('rejects a circuit_config.json that is not JSON, or lists no node networks, with bad_archive', async () => {
    const dir = await scratchCircuit('bad-config');
    await writeFile(path.join(dir, 'circuit_config.json'), '{ "networks": ');
    await assert.rejects(findNodesFile(dir, FIXTURE_POPULATION), failsWith('bad_archive', /not valid JSON/));
    await writeFile(path.join(dir, 'circuit_config.json'), '{ "manifest": {} }');
    await assert.rejects(findNodesFile(dir, FIXTURE_POPULATION), failsWith('bad_archive', /networks\.nodes/));
  });

  it('rejects a nodes_file that is missing, or outside the circuit folder by path or symlink, with bad_archive', async () => {
    const dir = await scratchCircuit('bad-paths');
    await rm(path.join(dir, 'nodes.h5'));
    await assert.rejects(
      findNodesFile(dir, FIXTURE_POPULATION),
      failsWith('bad_archive', /nodes\.h5 is missing/),
    );
    const config = { networks: { nodes: [{ nodes_file: '../circuit/nodes.h5', populations: { p: {} } }] } };
    await writeFile(path.join(dir, 'circuit_config.json'), JSON.stringify(config));
    await assert.rejects(findNodesFile(dir, 'p'), failsWith('bad_archive', /outside the circuit folder/));
    await writeSonataCircuit(dir, { count: 5 });
    await rm(path.join(dir, 'nodes.h5'));
    await symlink(path.join(circuit, 'nodes.h5'), path.join(dir, 'nodes.h5'));
    await assert.rejects(
      findNodesFile(dir, FIXTURE_POPULATION),
      failsWith('bad_archive', /outside the circuit folder/),
    );
  });

  it('rejects an unknown or self-referencing manifest variable with bad_archive', async () => {
    const dir = await scratchCircuit('bad-manifest');
    const write = (manifest: object, nodesFile: string) =>
      writeFile(
        path.join(dir, 'circuit_config.json'),
        JSON.stringify({
          manifest,
          networks: { nodes: [{ nodes_file: nodesFile, populations: { p: {} } }] },
        }),
      );
    await write({}, '$NOPE/nodes.h5');
    await assert.rejects(findNodesFile(dir, 'p'), failsWith('bad_archive', /Unknown variable \$NOPE/));
    await write({ $A: '$B/x', $B: '$A/y' }, '$A/nodes.h5');
    await assert.rejects(findNodesFile(dir, 'p'), failsWith('bad_archive', /refer to each other/));
  });
});

describe('readNodePopulation(nodesFile, population)', () => {
  let pop: NodePopulation;

  before(async () => {
    pop = await readNodePopulation(path.join(circuit, 'nodes.h5'), FIXTURE_POPULATION);
  });

  it('returns node_id, node_type_id, then every dataset of group 0 sorted by name, each of length N', () => {
    assert.equal(pop.name, FIXTURE_POPULATION);
    assert.equal(pop.count, COUNT);
    assert.deepEqual(
      pop.columns.map((c) => [c.name, c.type]),
      [
        ['node_id', 'integer'],
        ['node_type_id', 'integer'],
        ['etype', 'string'],
        ['layer', 'string'],
        ['model_type', 'string'],
        ['morph_class_id', 'integer'],
        ['morphology', 'string'],
        ['mtype', 'string'],
        ['orientation_w', 'float'],
        ['orientation_x', 'float'],
        ['orientation_y', 'float'],
        ['orientation_z', 'float'],
        ['region', 'string'],
        ['synapse_class', 'string'],
        ['x', 'float'],
        ['y', 'float'],
        ['z', 'float'],
      ],
    );
    for (const c of pop.columns) assert.equal(c.values.length, COUNT, c.name);
  });

  it('keeps numeric columns as typed arrays and node ids as 0..N-1', () => {
    const ids = column(pop, 'node_id').values;
    assert.ok(ids instanceof Int32Array);
    assert.ok(ids.every((v, i) => v === i));
    assert.ok(column(pop, 'node_type_id').values instanceof BigInt64Array);
    assert.ok(column(pop, 'morph_class_id').values instanceof Int32Array);
    assert.ok(column(pop, 'x').values instanceof Float32Array);
    assert.ok(column(pop, 'orientation_w').values instanceof Float64Array);
  });

  it('resolves @library enumerations to the strings the generator chose', () => {
    for (const i of [0, 1, 2, 1234, COUNT - 1]) {
      const expected = fixtureNode(SEED, i);
      for (const [name, value] of Object.entries(expected)) {
        assert.equal(column(pop, name).values[i], value, `${name}[${i}]`);
      }
    }
    const mtypes = new Set(column(pop, 'mtype').values as string[]);
    assert.ok(mtypes.size > 15, `a spread of mtypes, got ${mtypes.size}`);
  });

  it('reads a population whose names came from the file, with its @library column', async () => {
    const extra = await readNodePopulation(path.join(circuit, EXTRA_NODES_FILE), EXTRA);
    assert.equal(extra.count, EXTRA_POPULATION_COUNT);
    assert.deepEqual(column(extra, 'model_type').values, new Array(EXTRA_POPULATION_COUNT).fill('virtual'));
  });

  it('rejects an unknown population with population_not_found listing those in the file', async () => {
    await assert.rejects(
      readNodePopulation(path.join(circuit, 'nodes.h5'), 'nope'),
      failsWith('population_not_found', new RegExp(`available: ${FIXTURE_POPULATION}\\)`)),
    );
  });

  it('rejects a nodes file that is not HDF5 with bad_archive', async () => {
    const dir = await scratchCircuit('not-hdf5');
    await writeFile(path.join(dir, 'nodes.h5'), 'this is not an HDF5 file\n'.repeat(100));
    const { nodesFile } = await findNodesFile(dir, FIXTURE_POPULATION);
    await assert.rejects(
      readNodePopulation(nodesFile, FIXTURE_POPULATION),
      failsWith('bad_archive', /not an HDF5 file/),
    );
    // A network without a populations map needs its file opened just to list the names.
    await writeFile(path.join(dir, EXTRA_NODES_FILE), '');
    await assert.rejects(
      findNodesFile(dir, FIXTURE_POPULATION),
      failsWith('bad_archive', /not an HDF5 file/),
    );
  });

  it('rejects a column whose length differs from node_type_id with bad_archive', async () => {
    const dir = await customCircuit('short-column', (p) => {
      p.create_dataset({ name: 'node_type_id', data: new BigInt64Array(10) });
      const g = p.create_group('0');
      g.create_dataset({ name: 'x', data: new Float32Array(10) });
      g.create_dataset({ name: 'y', data: new Float32Array(9) });
    });
    await assert.rejects(
      readNodePopulation(path.join(dir, 'nodes.h5'), 'pop'),
      failsWith('bad_archive', /column y has 9 values for 10 nodes/),
    );
  });

  it('rejects an @library index out of range, and a missing group 0, with bad_archive', async () => {
    const badIndex = await customCircuit('bad-index', (p) => {
      p.create_dataset({ name: 'node_type_id', data: new BigInt64Array(3) });
      const g = p.create_group('0');
      g.create_dataset({ name: 'layer', data: new Int8Array([0, 1, 2]) });
      g.create_group('@library').create_dataset({ name: 'layer', data: ['1', '2'] });
    });
    await assert.rejects(
      readNodePopulation(path.join(badIndex, 'nodes.h5'), 'pop'),
      failsWith('bad_archive', /layer\[2\] = 2 is not an index/),
    );
    const int64Index = await customCircuit('int64-index', (p) => {
      p.create_dataset({ name: 'node_type_id', data: new BigInt64Array(4) });
      const g = p.create_group('0');
      g.create_dataset({ name: 'layer', data: new BigInt64Array([1n, 0n, -1n, 2n ** 40n]) });
      g.create_group('@library').create_dataset({ name: 'layer', data: ['1', '2'] });
    });
    await assert.rejects(
      readNodePopulation(path.join(int64Index, 'nodes.h5'), 'pop'),
      failsWith('bad_archive', /layer\[2\] = -1 is not an index/),
    );
    const noGroup = await customCircuit('no-group', (p) => {
      p.create_dataset({ name: 'node_type_id', data: new BigInt64Array(3) });
    });
    await assert.rejects(
      readNodePopulation(path.join(noGroup, 'nodes.h5'), 'pop'),
      failsWith('bad_archive', /"0"/),
    );
  });

  it('resolves int64 @library indices and refuses a node_group_index that reorders rows', async () => {
    const build = (groupIndex: bigint[]) => (p: Group) => {
      p.create_dataset({ name: 'node_type_id', data: new BigInt64Array(3) });
      p.create_dataset({ name: 'node_group_id', data: new BigInt64Array(3) });
      p.create_dataset({ name: 'node_group_index', data: new BigInt64Array(groupIndex) });
      const g = p.create_group('0');
      g.create_dataset({ name: 'layer', data: new BigInt64Array([1n, 0n, 1n]) });
      g.create_group('@library').create_dataset({ name: 'layer', data: ['L1', 'L2'] });
    };
    const ok = await customCircuit('group-index-ok', build([0n, 1n, 2n]));
    const read = await readNodePopulation(path.join(ok, 'nodes.h5'), 'pop');
    assert.deepEqual(column(read, 'layer').values, ['L2', 'L1', 'L2']);
    const shuffled = await customCircuit('group-index-shuffled', build([0n, 2n, 1n]));
    await assert.rejects(
      readNodePopulation(path.join(shuffled, 'nodes.h5'), 'pop'),
      failsWith('bad_archive', /node_group_index does not map node 1 to row 1/),
    );
  });

  it('writes and reads back 1,000,000 neurons', async () => {
    const n = 1_000_000;
    const dir = path.join(tmp, 'million');
    let t = performance.now();
    await writeSonataCircuit(dir, { count: n, seed: SEED });
    const writeMs = performance.now() - t;
    t = performance.now();
    const { nodesFile } = await findNodesFile(dir, FIXTURE_POPULATION);
    const big = await readNodePopulation(nodesFile, FIXTURE_POPULATION);
    const readMs = performance.now() - t;
    console.log(`1,000,000 neurons: write ${writeMs.toFixed(0)} ms, find + read ${readMs.toFixed(0)} ms`);
    assert.equal(big.count, n);
    for (const c of big.columns) assert.equal(c.values.length, n, c.name);
    assert.equal(column(big, 'mtype').values[n - 1], fixtureNode(SEED, n - 1).mtype);
    await rm(dir, { recursive: true });
  });
});
