// The JS-side re-check of a Python run's report, cap by cap, and the worker's own check on what
// the sandbox process sends: a report the sandbox passes but the worker's caps refuse is refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PythonResult } from '@neuroagent/contracts';
import { createLogger } from '@neuroagent/platform';
import { loadWorkerConfig } from '../src/config.ts';
import {
  enforceOutputLimits,
  findOutputBreach,
  MAX_ERROR_TEXT_CHARS,
  OUTPUT_MARKER_BYTES,
  type OutputLimits,
  type RunOutput,
} from '../src/python/output-limits.ts';
import type { Artifact } from '../src/python/protocol.ts';
import { createPythonSandbox } from '../src/python/sandbox-client.ts';
import { buildSandboxConfig } from '../src/python/sandbox-config.ts';

const limits: OutputLimits = {
  maxOutputBytes: 100,
  maxReturnBytes: 50,
  artifacts: { maxFiles: 2, maxFileBytes: 10, maxTotalBytes: 15 },
};
const file = (over: Partial<Artifact> = {}): Artifact => ({
  kind: 'file',
  name: '/output/a.txt',
  contentType: 'text/plain',
  data: new Uint8Array(5),
  ...over,
});
const ok = (over: Partial<RunOutput> = {}): RunOutput => ({
  output: ['hello'],
  stderr: [],
  value: { a: 1 },
  artifacts: [file()],
  ...over,
});

describe('findOutputBreach', () => {
  it('passes a report within every cap, including the truncation marker line', () => {
    assert.equal(findOutputBreach(ok(), limits), null);
    const marker = `[output truncated: ${'9'.repeat(20)} bytes over the 100-byte limit dropped]`;
    assert.ok(marker.length < OUTPUT_MARKER_BYTES);
    assert.equal(findOutputBreach(ok({ output: ['x'.repeat(98), marker] }), limits), null);
  });

  const breaches: [string, Partial<RunOutput>, RegExp][] = [
    ['stdout bytes', { output: ['é'.repeat(200)] }, /stdout is \d+ bytes/],
    ['stderr bytes', { stderr: ['x'.repeat(400)] }, /stderr is \d+ bytes/],
    ['a line that is not text', { output: [{} as unknown as string] }, /not text/],
    ['return value bytes', { value: 'x'.repeat(60) }, /return value is \d+ bytes/],
    ['return value that cannot be measured', { value: 10n }, /cannot be measured/],
    [
      'error text',
      { value: undefined, error: { message: 'e'.repeat(MAX_ERROR_TEXT_CHARS + 1) } },
      /error text/,
    ],
    ['artifact count', { artifacts: [file(), file(), file()] }, /3 artifacts, over the limit of 2/],
    ['artifact size', { artifacts: [file({ data: new Uint8Array(11) })] }, /11 bytes, over the 10-byte/],
    [
      'artifact total',
      { artifacts: [file({ data: new Uint8Array(8) }), file({ data: new Uint8Array(8) })] },
      /16 bytes in all/,
    ],
    [
      'control characters in a name',
      { artifacts: [file({ name: '/output/a\r\n.txt' })] },
      /file name has control/,
    ],
    [
      'control characters in a content type',
      { artifacts: [file({ contentType: 'text/html\r\nX: y' })] },
      /content type has control/,
    ],
    ['an overlong name', { artifacts: [file({ name: `/output/${'n'.repeat(5000)}` })] }, /over 4096 bytes/],
    [
      'an overlong content type',
      { artifacts: [file({ contentType: `text/${'p'.repeat(300)}` })] },
      /over 255/,
    ],
    ['an unknown kind', { artifacts: [file({ kind: 'html' as Artifact['kind'] })] }, /unknown kind/],
    ['bytes that are not bytes', { artifacts: [file({ data: 'x' as unknown as Uint8Array })] }, /no bytes/],
  ];
  for (const [what, over, message] of breaches) {
    it(`refuses ${what}`, () => {
      const out = ok(over);
      if (over.value === undefined && 'error' in over) delete out.value;
      assert.match(String(findOutputBreach(out, limits)), message);
    });
  }
});

describe('enforceOutputLimits', () => {
  it('replaces a breaking result with output-limit and drops its artifacts and streams', () => {
    const result: PythonResult = {
      status: 'success',
      output: ['secret'],
      stderr: [],
      return_value: 'x'.repeat(99),
    };
    const checked = enforceOutputLimits(result, [file()], limits);
    assert.equal(checked.result.status, 'error');
    assert.equal(checked.result.status === 'error' && checked.result.error_type, 'output-limit');
    assert.deepEqual(checked.result.output, []);
    assert.deepEqual(checked.artifacts, []);
  });
  it('passes a sound result through unchanged', () => {
    const result: PythonResult = { status: 'success', output: [], stderr: [], return_value: 1 };
    const artifacts = [file()];
    assert.deepEqual(enforceOutputLimits(result, artifacts, limits), { result, artifacts });
  });
});

describe("worker-side check on the sandbox process's report (real sandbox)", () => {
  it('refuses what the sandbox passed when the worker’s caps are lower', async () => {
    const log = createLogger('test', 'silent');
    const config = await buildSandboxConfig(
      loadWorkerConfig({ TASKS_PYTHON__THREADS: '1', TASKS_PYTHON__MAX_RETURN_KB: '64' }),
      log,
    );
    const sandbox = createPythonSandbox({ config, restartDelayMs: 50, log });
    await sandbox.start();
    try {
      // The sandbox process was told 64 KiB at start; from here on the worker holds it to 1 KiB.
      config.maxReturnBytes = 1024;
      config.artifacts = { ...config.artifacts, maxFiles: 1 };
      const big = await sandbox.run('"x" * 5000');
      assert.equal(big.result.status === 'error' && big.result.error_type, 'output-limit');
      const files = await sandbox.run(
        'import os\nos.makedirs("/output", exist_ok=True)\nfor n in "ab":\n    open(f"/output/{n}.txt", "w").write(n)\n1',
      );
      assert.equal(files.result.status === 'error' && files.result.error_type, 'output-limit');
      assert.deepEqual(files.artifacts, []);
      const small = await sandbox.run('"x" * 10');
      assert.equal(small.result.status === 'success' && small.result.return_value, 'x'.repeat(10));
    } finally {
      await sandbox.close();
    }
  });
});
