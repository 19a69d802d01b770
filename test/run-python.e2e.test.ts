// One Python tool call from HTTP through JetStream, the worker's Pyodide pool and Redis Streams,
// with the real gateway and worker processes on the real NATS and Redis.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { HEADERS, type TaskRecord } from '@neuroagent/contracts';
import { newTaskId } from '@neuroagent/platform';
import { gatewayEnv, signTaskHeaders, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';

async function runPython(url: string, python_script: string) {
  const res = await fetch(`${url}/tools/run-python`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ python_script }),
  });
  return {
    status: res.status,
    taskId: res.headers.get('x-task-id'),
    body: (await res.json()) as Record<string, unknown>,
  };
}

function envelope(input: unknown) {
  const now = Date.now();
  return {
    v: 1,
    queue: 'python_q',
    task: 'run_python',
    input,
    // The owner the gateway (auth disabled in these tests) serves it to.
    userId: 'anonymous',
    submittedAt: new Date(now).toISOString(),
    startWithinS: 600,
  };
}

describe('POST /tools/run-python end to end', () => {
  const ns = testNamespace('e2e');
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };
  let clients: TestClients;

  before(async () => {
    clients = await testClients(ns);
    worker = await startWorker(
      workerEnv(ns, { TASKS_PYTHON__TIMEOUT_S: '1', TASKS_PYTHON__KILL_GRACE_MS: '300' }),
    );
    gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns) });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
  });

  it('runs print(1+1) and 6*7: output ["2"], return_value 42', async () => {
    const r = await runPython(gateway.url, 'print(1+1)\n6*7');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, {
      result: { status: 'success', output: ['2'], stderr: [], return_value: 42 },
      storage_id: [],
    });
    const record = (await (await fetch(`${gateway.url}/tasks/${r.taskId}`)).json()) as TaskRecord;
    assert.equal(record.status, 'succeeded');
    assert.equal(record.attempts, 1);
    assert.ok(record.started_at && record.finished_at);
  });

  it('drops /output files with a note on stderr when storage is disabled', async () => {
    const r = await runPython(gateway.url, 'open("/output/a.txt", "w").write("x")');
    assert.equal(r.status, 200);
    const result = r.body.result as { status: string; stderr: string[] };
    assert.equal(result.status, 'success');
    assert.deepEqual(r.body.storage_id, []);
    assert.ok(
      result.stderr.some((l) =>
        /1 artifact\(s\) not stored: storage is disabled \(TASKS_STORAGE__ENABLED\)/.test(l),
      ),
    );
  });

  it('returns at once a task that finished before anyone waited (published as with `nats pub`)', async () => {
    const id = newTaskId();
    const h = natsHeaders();
    h.set(HEADERS.msgId, id);
    h.set(HEADERS.taskName, 'run_python');
    const body = JSON.stringify(envelope({ python_script: '2+3' }));
    await clients.js.publish(ns.names.taskSubject('python_q', id), body, {
      headers: signTaskHeaders(ns, id, body, h),
    });
    await waitFor(() => clients.store.hasOutcome(id), 20_000, 'the worker to store the result');
    const t0 = performance.now();
    const res = await fetch(`${gateway.url}/tasks/${id}?wait=30`);
    const elapsed = performance.now() - t0;
    assert.equal(res.status, 200);
    const record = (await res.json()) as TaskRecord & { result: { result: { return_value: unknown } } };
    assert.equal(record.status, 'succeeded');
    assert.equal(record.result.result.return_value, 5);
    assert.ok(elapsed < 1000, `answered in ${elapsed} ms, not after the 30 s wait`);
  });

  it('reports a Python exception and a runaway loop as error results, then serves the next task', async () => {
    const pid = worker.proc.pid;
    const exc = await runPython(gateway.url, 'print("partial")\n1/0');
    assert.equal(exc.status, 200);
    const excResult = exc.body.result as Record<string, unknown>;
    assert.equal(excResult.status, 'error');
    assert.equal(excResult.error_type, 'python-error');
    assert.deepEqual(excResult.output, ['partial']);
    assert.equal((excResult.error as { name: string }).name, 'ZeroDivisionError');

    const loop = await runPython(gateway.url, 'while True:\n    pass');
    assert.equal(loop.status, 200);
    assert.equal((loop.body.result as Record<string, unknown>).error_type, 'timeout');

    const sleeper = await runPython(gateway.url, 'import time\ntime.sleep(60)');
    assert.equal((sleeper.body.result as Record<string, unknown>).error_type, 'timeout');

    const next = await runPython(gateway.url, '6*7');
    assert.equal((next.body.result as Record<string, unknown>).return_value, 42);
    assert.equal(worker.proc.exitCode, null);
    assert.equal(worker.proc.pid, pid, 'the same worker process served all of them');
  });

  it('dead-letters a poison message with its reason and reports the task as failed', async () => {
    const id = newTaskId();
    // Signed, as the gateway would sign it: an unsigned one would be bad_signature instead.
    await clients.js.publish(ns.names.taskSubject('python_q', id), 'not json at all', {
      headers: signTaskHeaders(ns, id, 'not json at all', natsHeaders()),
    });
    // A message with no readable body has no owner, so no user can read it through the API; the
    // failure is in Redis (and the dead-letter stream) for operators.
    const record = await waitFor(
      async () => {
        const r = await clients.store.readRecord(id);
        return r && r.status === 'failed' ? r : null;
      },
      20_000,
      'the poison task to fail',
    );
    assert.equal(
      (await fetch(`${gateway.url}/tasks/${id}`)).status,
      404,
      'not served to a user who does not own it',
    );
    assert.equal(record.status, 'failed');
    assert.equal(record.error?.code, 'invalid_message');
    const jsm = await jetstreamManager(clients.nc);
    const dead = await jsm.streams.getMessage(ns.names.dlqStream, {
      last_by_subj: ns.names.dlqSubject(ns.names.taskSubject('python_q', id)),
    });
    assert.ok(dead);
    assert.equal(dead.header.get(HEADERS.dlqReason), 'invalid_message');
    assert.equal(dead.string(), 'not json at all');
    assert.equal((await runPython(gateway.url, '1')).status, 200, 'the worker lives on');
  });
});
