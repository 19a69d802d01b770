// Hostile nodes HDF5 files: external raw storage, external and soft links, virtual datasets and a
// huge declared shape must each give bad_archive without a byte of a host file in any answer, and
// the reader must go on reading good files. The files are written with h5py (Debian's
// python3-h5py, installed by .ci/run), which can write what h5wasm cannot.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TaskFailedError } from '@neuroagent/platform';
import { readerNodeFlags } from '../src/circuit/hdf5-confined.ts';
import { findNodesFile, readNodePopulation } from '../src/circuit/sonata.ts';

const PYTHON = '/usr/bin/python3';
const SECRET = 'TASKS_STORAGE__SECRET_KEY=s3cr3t-0f-the-w0rker-4242';
const POP = 'pop';

/** Writes /nodes/pop with 4 nodes; `column` is Python that adds dataset(s) to group g = /nodes/pop/0. */
function writeNodes(file: string, column: string, secretFile: string, goodFile: string): void {
  const script = `
import h5py, numpy as np, sys
secret, good = sys.argv[2], sys.argv[3]
f = h5py.File(sys.argv[1], 'w')
f['nodes/${POP}/node_type_id'] = np.zeros(4, dtype='i8')
g = f.create_group('nodes/${POP}/0')
${column}
f.close()
`;
  execFileSync(PYTHON, ['-c', script, file, secretFile, goodFile]);
}

function writeCircuit(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const config = { networks: { nodes: [{ nodes_file: './nodes.h5', populations: { [POP]: {} } }] } };
  writeFileSync(join(dir, 'circuit_config.json'), JSON.stringify(config));
}

const HOSTILE: { name: string; column: string; message: RegExp }[] = [
  {
    name: 'a dataset whose raw data is an external file (the secret)',
    column: "g.create_dataset('x', shape=(4,), dtype='i8', external=[(secret, 0, 32)])",
    message: /refers to another file/,
  },
  {
    name: 'a string dataset whose raw data is an external file',
    column: "g.create_dataset('s', shape=(8,), dtype='S4', external=[(secret, 0, 32)])",
    message: /refers to another file/,
  },
  {
    name: 'an external link to a dataset of another file',
    column: "g['x'] = h5py.ExternalLink(good, '/nodes/pop/0/x')",
    message: /external link/,
  },
  {
    name: 'a soft link',
    column: "g['y'] = np.arange(4.0)\ng['x'] = h5py.SoftLink('/nodes/pop/0/y')",
    message: /soft link/,
  },
  {
    name: 'a virtual dataset mapping another file',
    column:
      "lay = h5py.VirtualLayout(shape=(4,), dtype='f8')\nlay[:] = h5py.VirtualSource(good, '/nodes/pop/0/x', shape=(4,))\ng.create_virtual_dataset('x', lay)",
    message: /virtual dataset/,
  },
  {
    name: 'a dataset declaring 2^40 values',
    column: "g.create_dataset('x', shape=(2**40,), dtype='f8', chunks=(1024,))",
    message: /declares 1099511627776 values/,
  },
];

describe('readNodePopulation on hostile HDF5 files', () => {
  let dir = '';
  let secretFile = '';
  let goodFile = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'hdf5-hostile-'));
    secretFile = join(dir, 'secret.env');
    writeFileSync(secretFile, `${SECRET}\n`.repeat(4));
    goodFile = join(dir, 'good.h5');
    writeNodes(goodFile, "g['x'] = np.arange(4.0)", secretFile, goodFile);
  });
  after(() => execFileSync('rm', ['-rf', dir]));

  for (const [i, c] of HOSTILE.entries()) {
    it(`refuses ${c.name} with bad_archive, and the secret appears nowhere`, async () => {
      const circuit = join(dir, `circuit-${i}`);
      writeCircuit(circuit);
      writeNodes(join(circuit, 'nodes.h5'), c.column, secretFile, goodFile);
      const { nodesFile } = await findNodesFile(circuit, POP);
      const err = await readNodePopulation(nodesFile, POP).then(
        (pop) => assert.fail(`read ${JSON.stringify(pop.columns.map((col) => col.name))}`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TaskFailedError, String(err));
      assert.equal(err.code, 'bad_archive');
      assert.match(err.message, c.message);
      assert.doesNotMatch(JSON.stringify({ m: err.message, s: err.stack }), /s3cr3t|SECRET_KEY/);
      // The reader lives on: a good file still reads right after.
      const good = await readNodePopulation(goodFile, POP);
      assert.deepEqual(
        Array.from(good.columns.find((col) => col.name === 'x')!.values as Float64Array),
        [0, 1, 2, 3],
      );
    });
  }
});

describe('the HDF5 reader process confinement', () => {
  it('cannot read any file but the nodes file, and has an empty environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hdf5-perm-'));
    const nodes = join(dir, 'nodes.h5');
    const secret = join(dir, 'secret.env');
    writeFileSync(nodes, 'x');
    writeFileSync(secret, SECRET);
    const probe = `
const fs = require('node:fs');
const tryRead = (p) => { try { fs.readFileSync(p); return 'read'; } catch (e) { return e.code; } };
console.log(JSON.stringify({
  nodes: tryRead(${JSON.stringify(nodes)}),
  sibling: tryRead(${JSON.stringify(secret)}),
  environ: tryRead('/proc/self/environ'),
  passwd: tryRead('/etc/passwd'),
  env: Object.keys(process.env),
}));`;
    const out = execFileSync(process.execPath, [...readerNodeFlags(nodes, 256), '-e', probe], {
      env: {},
      encoding: 'utf8',
    });
    assert.deepEqual(JSON.parse(out), {
      nodes: 'read',
      sibling: 'ERR_ACCESS_DENIED',
      environ: 'ERR_ACCESS_DENIED',
      passwd: 'ERR_ACCESS_DENIED',
      env: [],
    });
    execFileSync('rm', ['-rf', dir]);
  });
});
