// Owner authority on the NATS path: a run_python task published straight to NATS, naming another
// user, without the gateway's Task-Signature (or signed under another key), is dead-lettered as
// bad_signature. Its script never runs, nothing is written under the forged user's S3 prefix, and
// no task state appears for its id. The same message signed with the deployment's key does run and
// store its file there, which shows what the signature check is keeping out. Real NATS, Redis,
// S3-compatible server and worker process.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { HEADERS } from '@neuroagent/contracts';
import { createLogger, createStorage, createTaskSigner, newTaskId } from '@neuroagent/platform';
import { signTaskHeaders, testNamespace, waitFor, workerEnv } from '@neuroagent/platform/testing';
import { startTestS3, type TestS3 } from '@neuroagent/platform/testing-s3';
import { artifactId } from '../services/worker/src/handlers/artifact-store.ts';
import { type TestClients, testClients } from './support/namespace.ts';
import { ROOT, type ServiceProcess, startWorker } from './support/processes.ts';
import { dlqCopy, dlqHeaders } from './support/reliability-helpers.ts';

const VICTIM = 'forged-user';
const SCRIPT =
  'import os\nos.makedirs("/output", exist_ok=True)\nopen("/output/planted.txt", "w").write("pwned")\n1';

function body(): string {
  return JSON.stringify({
    v: 1,
    queue: 'python_q',
    task: 'run_python',
    input: { python_script: SCRIPT },
    userId: VICTIM,
    submittedAt: new Date().toISOString(),
    startWithinS: 600,
  });
}

describe('forged task messages published straight to NATS', () => {
  const ns = testNamespace('forged');
  const bucket = `forged-${ns.id.replace(/_/g, '-').toLowerCase()}`.slice(0, 60);
  let s3: TestS3;
  let clients: TestClients;
  let worker: ServiceProcess;

  before(async () => {
    s3 = await startTestS3();
    clients = await testClients(ns);
    worker = await startWorker(
      {
        ...workerEnv(ns, { TASKS_PYTHON__THREADS: '1' }),
        ...s3.env('TASKS', { bucket }),
        TASKS_STORAGE__ENABLED: 'true',
      },
      240_000,
    );
  });
  after(async () => {
    await worker?.stop();
    await clients?.close();
    await s3?.stop();
  });

  const publish = async (id: string, data: string, signature: 'none' | 'wrong-key' | 'valid') => {
    const h = natsHeaders();
    h.set(HEADERS.msgId, id);
    h.set(HEADERS.taskName, 'run_python');
    if (signature === 'valid') signTaskHeaders(ns, id, data, h);
    if (signature === 'wrong-key')
      h.set(HEADERS.taskSignature, createTaskSigner('w'.repeat(32)).sign(id, data));
    await clients.js.publish(ns.names.taskSubject('python_q', id), data, { headers: h });
  };
  const stored = async (id: string) => {
    const storage = createStorage(s3.settings({ bucket }), createLogger('t', 'silent'));
    return storage.head(`${VICTIM}/${artifactId(id, 0)}`);
  };

  for (const signature of ['none', 'wrong-key'] as const) {
    it(`dead-letters it (${signature === 'none' ? 'no signature' : 'signed under another key'}) and writes nothing for the forged owner`, async () => {
      const id = newTaskId();
      const data = body();
      await publish(id, data, signature);
      const dead = await waitFor(() => dlqCopy(clients, ns, 'python_q', id), 30_000, 'the dead-letter copy');
      const dh = dlqHeaders(dead);
      assert.equal(dh.reason, 'bad_signature');
      assert.equal(dh.deliveries, 1, 'dead-lettered on its first delivery, never retried');
      assert.equal(dead.string(), data, 'kept byte for byte for the operator');
      assert.equal(await stored(id), null, `nothing under ${VICTIM}/`);
      assert.equal(await clients.store.readRecord(id), null, 'no task state for the forged id');
      assert.equal(worker.proc.exitCode, null, 'the worker lives on');
    });
  }

  it('runs the same message when it carries the deployment’s signature, and stores under its owner', async () => {
    const id = newTaskId();
    await publish(id, body(), 'valid');
    await waitFor(() => clients.store.hasOutcome(id), 60_000, 'the signed task to finish');
    const record = await clients.store.readRecord(id);
    assert.equal(record?.status, 'succeeded', JSON.stringify(record));
    assert.equal(record?.owner, VICTIM);
    assert.ok(await stored(id), 'the artifact is under the owner prefix');
  });

  it('runs a message published by hand with the signature `npm run sign` prints', async () => {
    const id = newTaskId();
    const data = body();
    const printed = execFileSync(process.execPath, ['scripts/sign.ts', id], {
      cwd: ROOT,
      input: data,
      env: { PATH: process.env.PATH ?? '', TASKS_NATS__SIGNING_KEY: ns.signingKey },
    })
      .toString()
      .trim();
    assert.match(printed, /^v1=[A-Za-z0-9_-]{43}$/);
    const h = natsHeaders();
    h.set(HEADERS.msgId, id);
    h.set(HEADERS.taskSignature, printed);
    await clients.js.publish(ns.names.taskSubject('python_q', id), data, { headers: h });
    await waitFor(() => clients.store.hasOutcome(id), 60_000, 'the hand-signed task to finish');
    assert.equal((await clients.store.readRecord(id))?.status, 'succeeded');
  });
});
