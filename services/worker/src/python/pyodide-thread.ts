// One piscina worker thread: loads Pyodide once, then runs many scripts, each with fresh globals.
// It must load without top-level await: piscina loads it with require(), and falling back to its
// ESM loader would need `new Function`, which the hardened sandbox forbids.
import { readFileSync } from 'node:fs';
import { loadPyodide } from 'pyodide';
import { OutputCapture } from './output-capture.ts';
import { CONTROL_STARTED, type ThreadReply, type ThreadTask } from './protocol.ts';

const RUNNER_SOURCE = readFileSync(new URL('./runner.py', import.meta.url), 'utf8');

async function load(): Promise<(task: ThreadTask) => Promise<ThreadReply>> {
  const pyodide = await loadPyodide({
    env: { HOME: '/home/pyodide' },
    stdout: () => {},
    stderr: () => {},
  });
  // A filename of its own keeps the runner's frames apart from the user's `<exec>` frames.
  pyodide.runPython(RUNNER_SOURCE, { filename: '<sandbox-runner>' });
  const runScript = pyodide.globals.get('_neuro_run') as (
    code: string,
    maxReturnBytes: number,
  ) => Promise<string>;

  return async function runTask(task: ThreadTask): Promise<ThreadReply> {
    const stdout = new OutputCapture(task.maxOutputBytes);
    const stderr = new OutputCapture(task.maxOutputBytes);
    pyodide.setStdout({ batched: (line: string) => stdout.push(line) });
    pyodide.setStderr({ batched: (line: string) => stderr.push(line) });
    pyodide.setInterruptBuffer(new Int32Array(task.control, 0, 1));
    const control = new Int32Array(task.control);
    Atomics.store(control, CONTROL_STARTED, 1);
    Atomics.notify(control, CONTROL_STARTED);
    try {
      const raw = await runScript(task.code, task.maxReturnBytes);
      const parsed = JSON.parse(raw) as Omit<ThreadReply, 'output' | 'stderr' | 'outputTruncated'>;
      return {
        ...parsed,
        output: stdout.result(),
        stderr: stderr.result(),
        outputTruncated: stdout.truncated || stderr.truncated,
      };
    } finally {
      pyodide.setStdout({ batched: () => {} });
      pyodide.setStderr({ batched: () => {} });
    }
  };
}

export default load();
