// The HTTP surface against real NATS and Redis, with no worker running: error bodies, submission
// (the message as a NATS CLI user would see it), and GET /tasks/{id} for pending and unknown ids.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { ErrorBody, HEADERS } from '@neuroagent/contracts';
import { createValidator } from '@neuroagent/platform';
import { TEST_NATS_URL, testNamespace } from '@neuroagent/platform/testing';
import { cleanupTestNamespace, postJson, startTestGateway, type TestGateway } from './support.ts';

const errorBody = createValidator(ErrorBody);

describe('gateway HTTP API (no worker)', () => {
  const ns = testNamespace('http');
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway(ns, {
      NEUROAGENT_TOOLS__RUN_PYTHON__TIMEOUT_S: '1',
      NEUROAGENT_HTTP__MAX_BODY_KB: '4',
      NEUROAGENT_TOOLS__RUN_PYTHON__MAX_CODE_KB: '1',
    });
  });
  after(async () => {
    await gw.close();
    await cleanupTestNamespace(ns);
  });

  it('GET /healthz and /readyz answer 200 when NATS, Redis and the stream are there', async () => {
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
    const ready = await fetch(`${gw.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), {
      status: 'ready',
      checks: { nats: 'ok', redis: 'ok', stream: 'ok' },
    });
  });

  it('answers 400 naming the field for a bad body', async () => {
    const r = await postJson(`${gw.url}/tools/run-python`, { python_script: 42 });
    assert.equal(r.status, 400);
    assert.ok(errorBody.check(r.body));
    assert.equal(r.body.code, 'invalid_request');
    assert.match(String(r.body.message), /\/python_script/);
    assert.deepEqual(r.body.details, [{ path: '/python_script', message: 'Expected string' }]);
  });

  it('answers 400 for a missing field, an unknown field and malformed JSON', async () => {
    const missing = await postJson(`${gw.url}/tools/run-python`, {});
    assert.equal(missing.status, 400);
    assert.ok((missing.body.details as { path: string }[]).some((d) => d.path === '/python_script'));
    const extra = await postJson(`${gw.url}/tools/run-python`, { python_script: '1', bogus: 1 });
    assert.equal(extra.status, 400);
    assert.ok((extra.body.details as { path: string }[]).some((d) => d.path === '/bogus'));
    const bad = await postJson(`${gw.url}/tools/run-python`, '{"python_script":');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'invalid_json');
  });

  it('answers 413 with the error body for an oversized body', async () => {
    const r = await postJson(`${gw.url}/tools/run-python`, { python_script: 'x'.repeat(5000) });
    assert.equal(r.status, 413);
    assert.ok(errorBody.check(r.body));
    assert.equal(r.body.code, 'body_too_large');
  });

  it('answers 413 code_too_large for a script over the code cap, naming the variable', async () => {
    const r = await postJson(`${gw.url}/tools/run-python`, { python_script: `# ${'x'.repeat(2000)}` });
    assert.equal(r.status, 413);
    assert.equal(r.body.code, 'code_too_large');
    assert.match(JSON.stringify(r.body.details), /NEUROAGENT_TOOLS__RUN_PYTHON__MAX_CODE_KB/);
  });

  it('answers 503 storage_disabled for presigned URLs when storage is not configured', async () => {
    const res = await fetch(`${gw.url}/storage/01a20bb6-0000-7000-8000-000000000000/presigned-url`);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as ErrorBody).code, 'storage_disabled');
  });

  it('answers 415 for a body that is not JSON', async () => {
    const res = await fetch(`${gw.url}/tools/run-python`, { method: 'POST', body: 'print(1)' });
    assert.equal(res.status, 415);
    assert.equal(((await res.json()) as ErrorBody).code, 'unsupported_media_type');
  });

  it('answers 404 with the error body for an unknown route and an unknown task id', async () => {
    const route = await fetch(`${gw.url}/no/such/route`);
    assert.equal(route.status, 404);
    const rb = (await route.json()) as ErrorBody;
    assert.ok(errorBody.check(rb));
    assert.equal(rb.code, 'not_found');
    const task = await fetch(`${gw.url}/tasks/01a20bb6-0000-7000-8000-000000000000`);
    assert.equal(task.status, 404);
    assert.equal(((await task.json()) as ErrorBody).code, 'task_not_found');
    const weird = await fetch(`${gw.url}/tasks/a.b`);
    assert.equal(weird.status, 404);
  });

  it('answers 405 with the error body for a wrong method', async () => {
    const res = await fetch(`${gw.url}/tools/run-python`);
    assert.equal(res.status, 405);
    assert.equal(((await res.json()) as ErrorBody).code, 'method_not_allowed');
  });

  it('publishes the task as documented and answers 202 when no worker finishes it in time', async () => {
    const r = await postJson(
      `${gw.url}/tools/run-python`,
      { python_script: 'print(1)', thread_id: 't-1' },
      {
        'x-request-id': 'req-123',
      },
    );
    assert.equal(r.status, 202);
    const taskId = String(r.body.task_id);
    assert.deepEqual(r.body, { task_id: taskId, status: 'pending', status_url: `/tasks/${taskId}` });
    assert.equal(r.headers.get('x-request-id'), 'req-123');

    // What `nats stream get <stream> --last-for tasks.python_q.<id>` shows.
    const nc = await connect({ servers: TEST_NATS_URL });
    const jsm = await jetstreamManager(nc);
    const msg = await jsm.streams.getMessage(ns.names.stream, {
      last_by_subj: ns.names.taskSubject('python_q', taskId),
    });
    assert.ok(msg);
    assert.equal(msg.header.get(HEADERS.msgId), taskId);
    assert.equal(msg.header.get(HEADERS.taskName), 'run_python');
    assert.equal(msg.header.get(HEADERS.schemaVersion), '1');
    assert.equal(msg.header.get(HEADERS.requestId), 'req-123');
    const body = msg.json<Record<string, unknown>>();
    assert.equal(body.v, 1);
    assert.equal(body.queue, 'python_q');
    assert.equal(body.task, 'run_python');
    assert.deepEqual(body.input, { python_script: 'print(1)', thread_id: 't-1' });
    assert.equal(body.userId, 'anonymous');
    assert.equal(body.threadId, 't-1');
    assert.ok(!('id' in body) && !('taskId' in body), 'the body never carries the task id');
    assert.equal(body.startWithinS, 3600);
    await nc.close();

    const pending = await fetch(`${gw.url}/tasks/${taskId}`);
    assert.equal(pending.status, 202);
    const rec = (await pending.json()) as Record<string, unknown>;
    assert.equal(rec.status, 'pending');
    assert.equal(rec.task, 'run_python');
    assert.equal(rec.started_at, null);

    const t0 = Date.now();
    const waited = await fetch(`${gw.url}/tasks/${taskId}?wait=1`);
    assert.equal(waited.status, 202);
    assert.ok(Date.now() - t0 >= 900, 'wait=1 held the request for about a second');
  });

  it('rejects a wait above the maximum', async () => {
    const r = await fetch(`${gw.url}/tasks/01a20bb6-0000-7000-8000-000000000000?wait=61`);
    assert.equal(r.status, 400);
    const body = (await r.json()) as ErrorBody;
    assert.equal(body.details?.[0]?.path, '/wait');
  });
});

describe('gateway HTTP API when the queue is unavailable', () => {
  const ns = testNamespace('noqueue');
  let gw: TestGateway;
  before(async () => {
    // No stream is provisioned, so every publish fails: what a NATS outage looks like to a client.
    gw = await startTestGateway(ns, { NEUROAGENT_NATS__PROVISION: 'false' });
  });
  after(async () => {
    await gw.close();
    await cleanupTestNamespace(ns);
  });

  it('answers 503 queue_unavailable and records the task as failed, not pending, in the ledger', async () => {
    const r = await postJson(`${gw.url}/tasks`, { task: 'run_python', input: { python_script: '1' } });
    assert.equal(r.status, 503);
    assert.equal(r.body.code, 'queue_unavailable');
    const page = (await (await fetch(`${gw.url}/tasks`)).json()) as {
      items: { status: string; error_code: string | null }[];
    };
    assert.equal(page.items.length, 1);
    assert.equal(page.items[0]?.status, 'failed');
    assert.equal(page.items[0]?.error_code, 'queue_unavailable');
  });
});
