// HTTP conventions against a real gateway (real NATS, Redis and ledger), with no worker: the
// Idempotency-Key contract (same key and body → same task, published once, also when two requests
// race; another body → 409; per user; within a window), Retry-After on every 503, and the access
// line per request, which names the route template and never a token or a query string.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { TEST_NATS_URL, testNamespace } from '@neuroagent/platform/testing';
import { pino } from 'pino';
import { signDevToken } from '../src/auth/dev-token.ts';
import { cleanupTestNamespace, postJson, startTestGateway, type TestGateway } from './support.ts';

const SECRET = 'http-conventions-test-secret-0123456789abcdef';

describe('HTTP conventions', () => {
  const ns = testNamespace('httpconv');
  const lines: Record<string, unknown>[] = [];
  let gw: TestGateway;
  let nc: NatsConnection;
  const tokens: Record<string, string> = {};

  before(async () => {
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
        done();
      },
    });
    gw = await startTestGateway(
      ns,
      {
        NEUROAGENT_AUTH__DISABLED: 'false',
        NEUROAGENT_AUTH__JWT_SECRET: SECRET,
        // A tool route that answers 202 at once: no worker is needed to see its task id.
        NEUROAGENT_TOOLS__CIRCUIT__TIMEOUT_S: '0',
        NEUROAGENT_IDEMPOTENCY__WINDOW_S: '2',
        NEUROAGENT_HTTP__RETRY_AFTER_S: '7',
        NEUROAGENT_NATS__PUBLISH_TIMEOUT_MS: '1500',
      },
      pino({ level: 'info' }, sink),
    );
    nc = await connect({ servers: TEST_NATS_URL });
    for (const sub of ['ida', 'ivan'])
      tokens[sub] = await signDevToken({ secret: SECRET, sub, expiresInS: 600 });
  });
  after(async () => {
    await nc?.close();
    await gw?.close();
    await cleanupTestNamespace(ns);
  });

  const published = async () => (await (await jetstreamManager(nc)).streams.info(ns.stream)).state.messages;
  const submit = (body: unknown, headers: Record<string, string> = {}, user = 'ida') =>
    postJson(`${gw.url}/tasks`, body, { authorization: `Bearer ${tokens[user]}`, ...headers });
  const echo = (payload: unknown) => ({ task: 'echo', input: { payload } });

  it('logs a submission once, in its request line, with the task id, queue and stream sequence', async () => {
    lines.length = 0;
    const res = await submit(echo('logged'));
    assert.equal(res.status, 202);
    await sleep(50);
    const access = lines.filter((l) => l.msg === 'request' && l.route === '/tasks');
    assert.equal(access.length, 1);
    const line = access[0] as Record<string, unknown>;
    assert.equal(line.taskId, res.body.task_id);
    assert.equal(line.task, 'echo');
    assert.equal(line.queue, 'echo_q');
    assert.ok(typeof line.seq === 'number' && line.seq > 0, `seq ${String(line.seq)}`);
    assert.equal(lines.filter((l) => l.msg === 'task submitted').length, 0, 'no second line at info');
  });

  it('gives a repeated key the same task and publishes it once', async () => {
    const before = await published();
    const first = await submit(echo('a'), { 'idempotency-key': 'key-a' });
    assert.equal(first.status, 202);
    assert.equal(first.headers.get('idempotent-replayed'), null);
    const again = await submit(echo('a'), { 'idempotency-key': 'key-a' });
    assert.equal(again.status, 202);
    assert.equal(again.body.task_id, first.body.task_id);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(await published(), before + 1, 'one message for two requests');
    const fresh = await submit(echo('a'));
    assert.notEqual(fresh.body.task_id, first.body.task_id, 'no key, a new task');
  });

  it('refuses the same key with a different body: 409 idempotency_key_reused', async () => {
    await submit(echo('b'), { 'idempotency-key': 'key-b' });
    const before = await published();
    const other = await submit(echo('something else'), { 'idempotency-key': 'key-b' });
    assert.equal(other.status, 409);
    assert.equal(other.body.code, 'idempotency_key_reused');
    assert.equal(await published(), before);
  });

  it('keeps keys per user', async () => {
    const ida = await submit(echo('c'), { 'idempotency-key': 'key-c' }, 'ida');
    const ivan = await submit(echo('c'), { 'idempotency-key': 'key-c' }, 'ivan');
    assert.equal(ivan.status, 202);
    assert.notEqual(ivan.body.task_id, ida.body.task_id);
  });

  it('publishes once when requests race on one key', async () => {
    const before = await published();
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => submit(echo('race'), { 'idempotency-key': 'key-race' })),
    );
    assert.deepEqual(
      answers.map((a) => a.status),
      Array(8).fill(202),
    );
    assert.equal(new Set(answers.map((a) => a.body.task_id)).size, 1, 'every racer got the same task');
    assert.equal(answers.filter((a) => a.headers.get('idempotent-replayed') === 'true').length, 7);
    assert.equal(await published(), before + 1);
  });

  it('applies to tool routes too', async () => {
    const body = { presigned_url: 'https://files.invalid/c.gz', sql: 'SELECT 1' };
    const headers = { authorization: `Bearer ${tokens.ida}`, 'idempotency-key': 'key-tool' };
    const first = await postJson(`${gw.url}/tools/circuit-population-analysis`, body, headers);
    assert.equal(first.status, 202);
    const again = await postJson(`${gw.url}/tools/circuit-population-analysis`, body, headers);
    assert.equal(again.body.task_id, first.body.task_id);
    const other = await postJson(
      `${gw.url}/tools/circuit-population-analysis`,
      { ...body, sql: 'SELECT 2' },
      headers,
    );
    assert.equal(other.status, 409);
  });

  it('forgets a key after its window', async () => {
    const first = await submit(echo('w'), { 'idempotency-key': 'key-window' });
    await sleep(2500);
    const later = await submit(echo('w'), { 'idempotency-key': 'key-window' });
    assert.equal(later.status, 202);
    assert.notEqual(later.body.task_id, first.body.task_id);
  });

  it('refuses a malformed key with 400 invalid_idempotency_key', async () => {
    for (const key of ['has space', 'x'.repeat(256)]) {
      const r = await submit(echo('k'), { 'idempotency-key': key });
      assert.equal(r.status, 400, key);
      assert.equal(r.body.code, 'invalid_idempotency_key');
    }
  });

  it('sends Retry-After with every 503', async () => {
    const storage = await fetch(`${gw.url}/storage/00000000-0000-4000-8000-000000000000/presigned-url`, {
      headers: { authorization: `Bearer ${tokens.ida}` },
    });
    assert.equal(storage.status, 503);
    assert.equal(storage.headers.get('retry-after'), '7');
    // The stream disappears: submissions cannot be queued, and the gateway is not ready.
    await (await jetstreamManager(nc)).streams.delete(ns.stream);
    const queued = await submit(echo('x'));
    assert.equal(queued.status, 503);
    assert.equal(queued.body.code, 'queue_unavailable');
    assert.equal(queued.headers.get('retry-after'), '7');
    const ready = await fetch(`${gw.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal(ready.headers.get('retry-after'), '7');
  });

  it('logs one access line per request at info, with the route template and no secrets', async () => {
    lines.length = 0;
    const res = await fetch(`${gw.url}/tasks/no-such-task?wait=0&X-Amz-Signature=deadbeefsig`, {
      headers: { authorization: `Bearer ${tokens.ida}`, 'x-request-id': 'req-access-1' },
    });
    assert.equal(res.status, 404);
    await sleep(50);
    const access = lines.filter((l) => l.msg === 'request');
    assert.equal(access.length, 1);
    const line = access[0] as Record<string, unknown>;
    assert.equal(line.level, 30, 'info');
    assert.equal(line.method, 'GET');
    assert.equal(line.route, '/tasks/:id');
    assert.equal(line.status, 404);
    assert.equal(line.requestId, 'req-access-1');
    assert.equal(typeof line.ms, 'number');
    const all = JSON.stringify(lines);
    assert.doesNotMatch(all, /deadbeefsig/, 'no query string');
    assert.ok(!all.includes(tokens.ida as string), 'no token');
    assert.doesNotMatch(all, /no-such-task/, 'the template, not the path');
  });
});
