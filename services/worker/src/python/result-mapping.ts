// Turns what a Pyodide thread (or the host's timers) reports into the run-python result contract.
import type { PythonFailure, PythonResult } from '@neuroagent/contracts';
import type { ThreadReply } from './protocol.ts';

export function failure(
  errorType: PythonFailure['error_type'],
  error: PythonFailure['error'],
  output: string[] = [],
  stderr: string[] = [],
): PythonFailure {
  return { status: 'error', error_type: errorType, error, output, stderr };
}

export function timeoutFailure(limitMs: number, output: string[] = [], stderr: string[] = []): PythonFailure {
  return failure(
    'timeout',
    { name: 'TimeoutError', message: `execution exceeded the ${limitMs / 1000} s time limit` },
    output,
    stderr,
  );
}

export function cancelledFailure(output: string[] = [], stderr: string[] = []): PythonFailure {
  return failure('cancelled', { name: 'CancelledError', message: 'the task was cancelled' }, output, stderr);
}

export function mapThreadReply(reply: ThreadReply, timedOut: boolean, limitMs: number): PythonResult {
  if (reply.ok) {
    return {
      status: 'success',
      output: reply.output,
      stderr: reply.stderr,
      return_value: reply.value ?? null,
    };
  }
  if (reply.installError !== undefined) {
    return failure(
      'install-error',
      { name: 'InstallError', message: reply.installError },
      reply.output,
      reply.stderr,
    );
  }
  // The soft interrupt surfaces as KeyboardInterrupt; user code that raised one itself is not a timeout.
  if (timedOut && reply.interrupted) return timeoutFailure(limitMs, reply.output, reply.stderr);
  if (reply.limit === 'return')
    return failure('output-limit', reply.error ?? null, reply.output, reply.stderr);
  // Nothing of a report that broke a cap is passed on, not even its streams.
  if (reply.limit === 'output') return failure('output-limit', reply.error ?? null, [], []);
  if (reply.limit === 'memory') {
    return failure(
      'memory-limit',
      {
        name: 'MemoryError',
        message: 'the script exceeded the sandbox memory limit (TASKS_PYTHON__MEMORY_MB)',
      },
      reply.output,
      reply.stderr,
    );
  }
  return failure('python-error', reply.error ?? null, reply.output, reply.stderr);
}
