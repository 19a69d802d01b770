// `npm run replay`: list, show, replay one job, replay a time window and re-drive dead letters,
// against the real gateway and echo_q worker processes on the real NATS, Redis and SQLite, in a
// private namespace. The replayed tasks must run and be served to their original owner.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ConsumerInfo, type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { HEADERS, type TaskEnvelope, type TaskRecord } from '@neuroagent/contracts';
import { createLogger, createTaskSigner, newTaskId } from '@neuroagent/platform';
import {
  gatewayEnv,
  signTaskHeaders,
  TEST_NATS_URL,
  type TestNamespace,
  testNamespace,
  waitFor,
  workerEnv,
} from '@neuroagent/platform/testing';
import {
  createReplayContext,
  findTask,
  listJobs,
  parseTimeArg,
  type ReplayContext,
  ReplayError,
  redriveDlq,
  replayTask,
  replayWindow,
  showTask,
} from '../../services/platform/src/job-log.ts';
import { loadWorkerConfig } from '../../services/worker/src/config.ts';
import { provisionQueues } from '../../services/worker/src/provisioning.ts';
import { type TestClients, testClients } from '../../test/support/namespace.ts';
import { ROOT, type ServiceProcess, startGateway, startWorker } from '../../test/support/processes.ts';

const log = createLogger('replay-test', 'silent');
const OWNER = 'anonymous'; // the test gateway runs with auth disabled
const CLI = join(ROOT, 'scripts', 'replay.ts');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function runCli(args: string[], env: Record<string, string>): Promise<CliRun> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

function envelope(input: unknown, userId = OWNER): TaskEnvelope {
  return {
    v: 1,
    queue: 'echo_q',
    task: 'echo',
    input,
    userId,
    requestId: 'req-dlq-1',
    submittedAt: new Date(Date.now() - 3_600_000).toISOString(),
    startWithinS: 600,
  };
}

/** Provisions the namespace's streams and the echo_q durable consumer, as a worker would. */
async function provision(ns: TestNamespace, clients: TestClients): Promise<void> {
  const config = loadWorkerConfig(workerEnv(ns, { TASKS_QUEUES: 'echo_q' }));
  await provisionQueues(clients.nc, config, ['echo_q'], log);
}

/** A dead letter exactly as the worker's deadLetter() writes it: original headers plus Dlq-*. */
async function publishDeadLetter(
  ns: TestNamespace,
  clients: TestClients,
  id: string,
  body: string,
  reason: string,
): Promise<number> {
  const original = ns.names.taskSubject('echo_q', id);
  const h = natsHeaders();
  h.set(HEADERS.msgId, id);
  h.set(HEADERS.taskName, 'echo');
  h.set(HEADERS.schemaVersion, '1');
  h.set(HEADERS.requestId, 'req-dlq-1');
  h.set(HEADERS.dlqReason, reason);
  h.set(HEADERS.dlqDetail, 'redis unreachable');
  h.set(HEADERS.dlqOrigSubject, original);
  h.set(HEADERS.dlqOrigSeq, '1');
  h.set(HEADERS.dlqDeliveries, '5');
  signTaskHeaders(ns, id, body, h);
  const ack = await clients.js.publish(ns.names.dlqSubject(original), body, { headers: h });
  return ack.seq;
}

async function dlqHas(jsm: JetStreamManager, ns: TestNamespace, seq: number): Promise<boolean> {
  try {
    return (await jsm.streams.getMessage(ns.names.dlqStream, { seq })) !== null;
  } catch {
    return false;
  }
}

describe('npm run replay', () => {
  const ns = testNamespace('replay');
  let clients: TestClients;
  let jsm: JetStreamManager;
  let ctx: ReplayContext;
  let gateway: ServiceProcess & { url: string };
  let worker: ServiceProcess | undefined;
  let tmp = '';
  const submitted: string[] = [];

  const submit = async (payload: unknown): Promise<string> => {
    const res = await fetch(`${gateway.url}/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'echo', input: { payload } }),
    });
    assert.equal(res.status, 202);
    return ((await res.json()) as { task_id: string }).task_id;
  };
  const record = async (id: string): Promise<{ status: number; body: TaskRecord }> => {
    const res = await fetch(`${gateway.url}/tasks/${id}?wait=30`);
    return { status: res.status, body: (await res.json()) as TaskRecord };
  };
  /** A replay is unknown to Redis until the worker starts it (no gateway wrote its meta). */
  const replayedRecord = async (id: string) => {
    await waitFor(
      async () => (await fetch(`${gateway.url}/tasks/${id}`)).status !== 404,
      30_000,
      `the worker to start ${id}`,
    );
    return record(id);
  };
  const ledgerIds = async (): Promise<Map<string, string>> => {
    const res = await fetch(`${gateway.url}/tasks?limit=100`);
    const page = (await res.json()) as { items: { id: string; status: string }[] };
    return new Map(page.items.map((t) => [t.id, t.status]));
  };
  const durable = (): Promise<ConsumerInfo> => jsm.consumers.info(ns.names.stream, 'echo_q');
  const lastSeq = async () => (await jsm.streams.info(ns.names.stream)).state.last_seq;
  const ensureWorker = async () => {
    worker ??= await startWorker(workerEnv(ns, { TASKS_QUEUES: 'echo_q' }));
  };
  const cliEnv = (): Record<string, string> => ({
    PATH: process.env.PATH ?? '',
    TASKS_NATS__URL: TEST_NATS_URL,
    TASKS_NATS__STREAM: ns.stream,
    TASKS_NATS__SUBJECT_PREFIX: ns.subjectPrefix,
    TASKS_NATS__SIGNING_KEY: ns.signingKey,
  });

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'replay-test-'));
    await writeFile(join(tmp, 'empty.env'), '');
    clients = await testClients(ns);
    jsm = await jetstreamManager(clients.nc);
    await provision(ns, clients);
    gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns) });
    ctx = await createReplayContext(
      clients.nc,
      { stream: ns.stream, subjectPrefix: ns.subjectPrefix },
      { signer: createTaskSigner(ns.signingKey) },
    );
    // No worker yet: these jobs wait in the stream, pending on the durable consumer.
    for (let i = 0; i < 3; i++) submitted.push(await submit({ n: i }));
  });

  after(async () => {
    await worker?.stop();
    await gateway?.stop();
    await clients?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('lists and shows jobs without consuming them or touching the durable consumer', async () => {
    const before = await durable();
    assert.equal(before.num_pending, 3);

    const { jobs, truncated } = await listJobs(ctx, { queue: 'echo_q' });
    assert.equal(truncated, false);
    assert.deepEqual(
      jobs.map((j) => j.taskId),
      submitted,
    );
    for (const job of jobs) {
      assert.equal(job.queue, 'echo_q');
      assert.equal(job.task, 'echo');
      assert.equal(job.owner, OWNER);
      assert.equal(job.poison, null);
      assert.equal(job.subject, ns.names.taskSubject('echo_q', job.taskId as string));
      assert.ok(job.seq > 0 && !Number.isNaN(Date.parse(job.time)));
    }
    const limited = await listJobs(ctx, { limit: 2 });
    assert.equal(limited.jobs.length, 2);
    assert.equal(limited.truncated, true);

    const shown = await showTask(ctx, submitted[1] as string);
    assert.equal(shown.taskId, submitted[1]);
    assert.equal(shown.headers[HEADERS.msgId]?.[0], submitted[1]);
    assert.equal(shown.headers[HEADERS.taskName]?.[0], 'echo');
    assert.equal(shown.headers[HEADERS.schemaVersion]?.[0], '1');
    const body = shown.body as TaskEnvelope;
    assert.deepEqual(body.input, { payload: { n: 1 } });
    assert.equal(body.userId, OWNER);
    assert.equal('taskId' in body || 'id' in body, false, 'the task id is never in the body');

    await assert.rejects(showTask(ctx, newTaskId()), (err: unknown) => {
      assert.ok(err instanceof ReplayError);
      assert.equal(err.code, 'task_not_found');
      return true;
    });
    await assert.rejects(showTask(ctx, 'a.b'), { code: 'bad_arguments' });

    const afterRead = await durable();
    assert.equal(afterRead.num_pending, before.num_pending, 'nothing was consumed');
    assert.equal(afterRead.delivered.stream_seq, before.delivered.stream_seq);
    assert.equal(afterRead.num_ack_pending, 0);
    const consumers: string[] = [];
    for await (const c of jsm.consumers.list(ns.names.stream)) consumers.push(c.name);
    assert.deepEqual(consumers, ['echo_q'], 'the ordered consumers were removed');
  });

  it('replays one job under a new id with the same input and owner; the owner gets its result', async () => {
    await ensureWorker();
    const oldId = submitted[0] as string;
    assert.equal((await record(oldId)).body.status, 'succeeded');

    const result = await replayTask(ctx, oldId);
    assert.equal(result.status, 'replayed');
    assert.equal(result.oldId, oldId);
    assert.ok(result.newId && result.newId !== oldId);
    assert.match(result.newId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(result.owner, OWNER);

    const stored = await findTask(ctx, result.newId);
    assert.equal(stored.subject, ns.names.taskSubject('echo_q', result.newId));
    assert.equal(stored.seq, result.seq);
    assert.equal(stored.headers[HEADERS.msgId]?.[0], result.newId);
    assert.equal(stored.headers[HEADERS.replayOf]?.[0], oldId);
    assert.equal(stored.headers[HEADERS.taskName]?.[0], 'echo');
    const signature = stored.headers[HEADERS.taskSignature]?.[0];
    assert.deepEqual(createTaskSigner(ns.signingKey).verify(result.newId, stored.data, signature), {
      ok: true,
    });
    const original = (await showTask(ctx, oldId)).body as TaskEnvelope;
    const replayed = JSON.parse(Buffer.from(stored.data).toString('utf8')) as TaskEnvelope;
    assert.deepEqual(replayed.input, original.input);
    assert.equal(replayed.userId, original.userId);
    assert.equal(replayed.startWithinS, original.startWithinS);
    assert.ok(Date.parse(replayed.submittedAt) >= Date.parse(original.submittedAt));

    const rec = await replayedRecord(result.newId);
    assert.equal(rec.status, 200, 'served to the same owner');
    assert.equal(rec.body.status, 'succeeded');
    assert.deepEqual(rec.body.result, { payload: { n: 0 }, attempt: 1 });
    // The ledger learns of the task only from the worker's events, which carry the owner.
    await waitFor(
      async () => (await ledgerIds()).get(result.newId as string) === 'succeeded',
      20_000,
      "the replayed task in the owner's GET /tasks",
    );
  });

  it('replays exactly the jobs published in a time window', async () => {
    await ensureWorker();
    const a = await submit('a');
    await sleep(400);
    const since = new Date();
    const b = await submit('b');
    const c = await submit('c');
    await sleep(400);
    const until = new Date();
    await sleep(400);
    const d = await submit('d');
    for (const id of [a, b, c, d]) assert.equal((await record(id)).body.status, 'succeeded');

    const listed = await listJobs(ctx, { since, until });
    assert.deepEqual(
      listed.jobs.map((j) => j.taskId),
      [b, c],
    );

    const seqBefore = await lastSeq();
    const dry = await replayWindow(ctx, { since, until, dryRun: true });
    assert.deepEqual(
      dry.results.map((r) => [r.oldId, r.status]),
      [
        [b, 'would_replay'],
        [c, 'would_replay'],
      ],
    );
    assert.equal(await lastSeq(), seqBefore, 'a dry run publishes nothing');

    const rep = await replayWindow(ctx, { since, until, queue: 'echo_q' });
    assert.deepEqual(
      rep.results.map((r) => r.oldId),
      [b, c],
    );
    assert.equal(rep.replayed, 2);
    assert.equal(rep.skipped, 0);
    assert.equal(await lastSeq(), seqBefore + 2);
    for (const [r, payload] of [
      [rep.results[0], 'b'],
      [rep.results[1], 'c'],
    ] as const) {
      const rec = await replayedRecord(r?.newId as string);
      assert.equal(rec.status, 200);
      assert.deepEqual(rec.body.result, { payload, attempt: 1 });
    }

    // A window reaching "now" stops at the stream's end as of the start: never its own replays.
    const seqToNow = await lastSeq();
    const toNow = await replayWindow(ctx, { since: until, until: new Date(Date.now() + 60_000) });
    assert.deepEqual(
      toNow.results.map((r) => r.oldId),
      [d, rep.results[0]?.newId, rep.results[1]?.newId],
    );
    assert.equal(await lastSeq(), seqToNow + 3);
    await assert.rejects(replayWindow(ctx, { since: until, until: since }), { code: 'bad_arguments' });
  });

  it('re-drives dead letters, deletes them only after the PubAck, and skips poison', async () => {
    await ensureWorker();
    // A real poison dead letter: the worker copies this message to the DLQ with Dlq-Reason.
    const poisonId = newTaskId();
    const h = natsHeaders();
    h.set(HEADERS.msgId, poisonId);
    h.set(HEADERS.taskName, 'echo');
    await clients.js.publish(ns.names.taskSubject('echo_q', poisonId), 'not json at all', {
      headers: signTaskHeaders(ns, poisonId, 'not json at all', h),
    });
    const poisonDead = await waitFor(
      () =>
        jsm.streams
          .getMessage(ns.names.dlqStream, {
            last_by_subj: ns.names.dlqSubject(ns.names.taskSubject('echo_q', poisonId)),
          })
          .catch(() => null),
      20_000,
      'the worker to dead-letter the poison message',
    );
    assert.equal(poisonDead.header.get(HEADERS.dlqReason), 'invalid_message');

    // A poison job in the task stream cannot be replayed either.
    const seqBefore = await lastSeq();
    const skipped = await replayTask(ctx, poisonId);
    assert.equal(skipped.status, 'skipped');
    assert.match(skipped.reason ?? '', /^invalid_message: body is not JSON/);
    assert.equal(await lastSeq(), seqBefore);

    // A valid task that ran out of deliveries, dead-lettered as the worker does it.
    const deadId = newTaskId();
    const deadSeq = await publishDeadLetter(
      ns,
      clients,
      deadId,
      JSON.stringify(envelope({ payload: 'from the dlq' })),
      'max_deliveries',
    );

    const dry = await redriveDlq(ctx, { dryRun: true });
    assert.deepEqual(
      dry.results.map((r) => [r.oldId, r.status, r.dlqReason]),
      [
        [poisonId, 'skipped', 'invalid_message'],
        [deadId, 'would_replay', 'max_deliveries'],
      ],
    );
    assert.ok(await dlqHas(jsm, ns, deadSeq));

    const filtered = await redriveDlq(ctx, { reason: 'no_such_reason' });
    assert.equal(filtered.results.length, 0);

    const rep = await redriveDlq(ctx, { purge: true });
    assert.equal(rep.replayed, 1, JSON.stringify(rep.results));
    assert.equal(rep.skipped, 1);
    assert.equal(rep.purged, 1);
    const redriven = rep.results.find((r) => r.oldId === deadId);
    assert.equal(redriven?.status, 'replayed');
    assert.equal(redriven?.purged, true);
    assert.equal(redriven?.queue, 'echo_q');
    const poison = rep.results.find((r) => r.oldId === poisonId);
    assert.equal(poison?.status, 'skipped');
    assert.equal(poison?.purged, false);
    assert.equal(await dlqHas(jsm, ns, deadSeq), false, 'deleted after its replay was acknowledged');
    assert.equal(await dlqHas(jsm, ns, poisonDead.seq), true, 'a skipped dead letter is kept');

    const stored = await findTask(ctx, redriven?.newId as string);
    assert.equal(stored.headers[HEADERS.replayOf]?.[0], deadId);
    assert.equal(stored.headers[HEADERS.requestId]?.[0], 'req-dlq-1');
    const rec = await replayedRecord(redriven?.newId as string);
    assert.equal(rec.status, 200, 'served to the owner of the dead-lettered task');
    assert.deepEqual(rec.body.result, { payload: 'from the dlq', attempt: 1 });
  });

  it('never re-signs a forged dead letter unless the operator vouches for it (--accept-unsigned)', async () => {
    const id = newTaskId();
    const body = JSON.stringify(envelope({ payload: 'forged' }, 'forged-user'));
    const seq = await publishDeadLetter(ns, clients, id, body, 'bad_signature');
    // Replace the valid signature publishDeadLetter added with one made under another key.
    const forged = await jsm.streams.getMessage(ns.names.dlqStream, { seq });
    assert.ok(forged);
    const h = natsHeaders();
    for (const [k, values] of forged.header) for (const v of values) h.append(k, v);
    h.set(HEADERS.taskSignature, createTaskSigner('x'.repeat(32)).sign(id, body));
    h.set(HEADERS.msgId, `${id}-forged`); // the DLQ stream's duplicate window would drop the copy
    await jsm.streams.deleteMessage(ns.names.dlqStream, seq);
    const forgedSeq = (await clients.js.publish(forged.subject, body, { headers: h })).seq;

    const skipped = await redriveDlq(ctx, { taskId: id, dryRun: true });
    assert.equal(skipped.replayed, 0);
    assert.equal(skipped.skipped, 1);
    assert.match(String(skipped.results[0]?.reason), /^bad_signature/);

    const vouched = await createReplayContext(
      clients.nc,
      { stream: ns.stream, subjectPrefix: ns.subjectPrefix },
      { signer: createTaskSigner(ns.signingKey), acceptUnsigned: true },
    );
    const rep = await redriveDlq(vouched, { taskId: id, purge: true });
    assert.equal(rep.replayed, 1, JSON.stringify(rep.results));
    const newId = rep.results[0]?.newId as string;
    const stored = await findTask(ctx, newId);
    const check = createTaskSigner(ns.signingKey).verify(
      newId,
      stored.data,
      stored.headers[HEADERS.taskSignature]?.[0],
    );
    assert.deepEqual(check, { ok: true }, 'the replay is signed for its new id');
    assert.equal(await dlqHas(jsm, ns, forgedSeq), false);
  });

  it('keeps the dead letter when the replay is not acknowledged', async () => {
    // A namespace of its own whose task stream is gone: the republish gets no PubAck.
    const ns2 = testNamespace('replay_nak');
    const clients2 = await testClients(ns2);
    try {
      await provision(ns2, clients2);
      const jsm2 = await jetstreamManager(clients2.nc);
      const id = newTaskId();
      const seq = await publishDeadLetter(ns2, clients2, id, JSON.stringify(envelope({})), 'max_deliveries');
      await jsm2.streams.delete(ns2.names.stream);
      const ctx2 = await createReplayContext(
        clients2.nc,
        { stream: ns2.stream, subjectPrefix: ns2.subjectPrefix },
        { publishTimeoutMs: 2000, signer: createTaskSigner(ns2.signingKey) },
      );
      await assert.rejects(redriveDlq(ctx2, { purge: true }), { code: 'publish_failed' });
      assert.equal(await dlqHas(jsm2, ns2, seq), true, 'never deleted before a PubAck');
      await assert.rejects(listJobs(ctx2), { code: 'stream_not_found' });
    } finally {
      await clients2.close();
    }
  });

  it('runs as a command: --help, show and task with --json, and stable exit codes', async () => {
    const help = await runCli(['--help'], cliEnv());
    assert.equal(help.code, 0);
    assert.match(help.stdout, /usage: npm run replay -- <command>/);
    for (const command of ['list', 'show', 'task', 'window', 'dlq', '--purge', '--dry-run', 'Exit codes']) {
      assert.ok(help.stdout.includes(command), command);
    }

    const envFile = ['--env-file', join(tmp, 'empty.env')];
    const oldId = submitted[2] as string;
    const shown = await runCli(['show', oldId, '--json', ...envFile], cliEnv());
    assert.equal(shown.code, 0, shown.stderr);
    const job = JSON.parse(shown.stdout) as { taskId: string; owner: string; body: TaskEnvelope };
    assert.equal(job.taskId, oldId);
    assert.equal(job.owner, OWNER);
    assert.deepEqual(job.body.input, { payload: { n: 2 } });

    const replayed = await runCli(['task', oldId, '--json', ...envFile], cliEnv());
    assert.equal(replayed.code, 0, replayed.stderr);
    const result = JSON.parse(replayed.stdout) as { status: string; oldId: string; newId: string };
    assert.equal(result.status, 'replayed');
    assert.equal(result.oldId, oldId);
    const rec = await replayedRecord(result.newId);
    assert.equal(rec.status, 200);
    assert.deepEqual(rec.body.result, { payload: { n: 2 }, attempt: 1 });

    const text = await runCli(['list', '--queue', 'echo_q', '--since', '1h', ...envFile], cliEnv());
    assert.equal(text.code, 0, text.stderr);
    assert.ok(text.stdout.includes(result.newId) && text.stdout.includes(oldId));

    const cases: [string[], Record<string, string>, number, string][] = [
      [['show', newTaskId()], cliEnv(), 66, 'task_not_found'],
      [['list', '--queue', 'nope_q'], cliEnv(), 64, 'bad_arguments'],
      [['frobnicate'], cliEnv(), 64, 'bad_arguments'],
      [['show', oldId, '--purge'], cliEnv(), 64, 'bad_arguments'],
      [['list'], { ...cliEnv(), TASKS_NATS__STREAM: `${ns.stream}_NONE` }, 67, 'stream_not_found'],
      [['list'], { ...cliEnv(), TASKS_NATS__URL: 'nats://127.0.0.1:1' }, 69, 'nats_unreachable'],
      [['list'], { ...cliEnv(), TASKS_NATS__STRAEM: 'x' }, 78, 'config_invalid'],
      [['dlq', '--dry-run'], cliEnv(), 65, 'skipped'],
    ];
    for (const [args, env, code, message] of cases) {
      const run = await runCli([...args, ...envFile], env);
      assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
      assert.ok(run.stderr.includes(message), `${args.join(' ')}: ${run.stderr}`);
    }
  });

  it('reads durations and ISO-8601 times', () => {
    const now = new Date('2026-05-01T12:00:00Z');
    assert.equal(parseTimeArg('--since', '90s', now).toISOString(), '2026-05-01T11:58:30.000Z');
    assert.equal(parseTimeArg('--since', '1h30m', now).toISOString(), '2026-05-01T10:30:00.000Z');
    assert.equal(parseTimeArg('--since', '2d', now).toISOString(), '2026-04-29T12:00:00.000Z');
    assert.equal(
      parseTimeArg('--until', '2026-04-30T08:00:00Z', now).toISOString(),
      '2026-04-30T08:00:00.000Z',
    );
    for (const bad of ['1', 'yesterday', '5 min', '']) {
      assert.throws(() => parseTimeArg('--since', bad, now), { code: 'bad_arguments' });
    }
  });
});
