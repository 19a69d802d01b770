// The load and the checks shared by the Redis failover tests (Sentinel and Cluster): paced echo
// submissions while a chaos step kills a Redis primary, then proof that every task the gateway
// accepted ended once, succeeded, with its own payload, and is in the ledger.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskRecord } from '@neuroagent/contracts';
import { waitFor } from '@neuroagent/platform/testing';

import { listAllTasks, type Submission } from './reliability-helpers.ts';

export type { Submission };

/**
 * The echo_q worker of a failover test: results confirmed on a replica before the ack, and
 * retries quick and many enough to outlast the failover and the dead node's return.
 */
export const FAILOVER_WORKER_ENV: Record<string, string> = {
  TASKS_QUEUES: 'echo_q',
  TASKS_ECHO__CONCURRENCY: '8',
  TASKS_REDIS__WAIT_REPLICAS: '1',
  TASKS_NATS__RETRY_BASE_MS: '200',
  TASKS_NATS__RETRY_MAX_MS: '1000',
  TASKS_NATS__MAX_DELIVER: '60',
};

export interface LoadPlan {
  gatewayUrl: string;
  submitters: number;
  paceMs: number;
  loadMs: number;
  /** How long each echo holds its slot, so some are running when the primary dies. */
  delayMs: number;
  /** Runs beside the load (it kills the primary); the load ends when both are done. */
  chaos: () => Promise<void>;
}

export async function runPacedLoad(plan: LoadPlan): Promise<Submission[]> {
  const submissions: Submission[] = [];
  const start = Date.now();
  let counter = 0;
  const post = async (n: number): Promise<Submission> => {
    const sentAt = Date.now();
    try {
      const res = await fetch(`${plan.gatewayUrl}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ task: 'echo', input: { payload: { n }, delay_ms: plan.delayMs } }),
      });
      const body = (await res.json()) as { task_id?: string; code?: string };
      const s: Submission = { n, sentAt, answeredAt: Date.now(), status: res.status };
      if (body.task_id !== undefined) s.taskId = body.task_id;
      if (body.code !== undefined) s.code = body.code;
      return s;
    } catch (err) {
      return { n, sentAt, answeredAt: Date.now(), status: 0, code: String(err) };
    }
  };
  const submitter = async () => {
    while (Date.now() - start < plan.loadMs) {
      submissions.push(await post(counter++));
      await sleep(plan.paceMs);
    }
  };
  await Promise.all([...Array.from({ length: plan.submitters }, submitter), plan.chaos()]);
  return submissions;
}

export interface LoadVerdict {
  accepted: Submission[];
  refused: Submission[];
  /** Accepted tasks that ran more than once (their first run was interrupted by the failover). */
  redelivered: number;
  summary: string;
}

/**
 * Every accepted submission ends `succeeded` with its own payload, read through the gateway
 * (GET /tasks/{id}), and the ledger (GET /tasks) lists each once, succeeded. A refusal is a 503
 * with a stable code, never a 5xx without one or a dropped connection.
 */
export async function verifyNothingLost(gatewayUrl: string, submissions: Submission[]): Promise<LoadVerdict> {
  const accepted = submissions.filter((s) => s.status === 202);
  const refused = submissions.filter((s) => s.status !== 202);
  for (const s of refused) {
    assert.equal(s.status, 503, `neither 202 nor 503: ${JSON.stringify(s)}`);
    assert.ok(typeof s.code === 'string' && s.code !== '', `a 503 without a code: ${JSON.stringify(s)}`);
  }
  assert.ok(accepted.length > 0, 'the gateway accepted submissions');
  // The last answer for each accepted task, so that a timeout names the tasks that did not end.
  let last: { status: number; record: TaskRecord | null }[] = [];
  const ended = (r: TaskRecord | null) => r !== null && (r.status === 'succeeded' || r.status === 'failed');
  const records = await waitFor(
    async () => {
      last = await Promise.all(
        accepted.map(async (s) => {
          const res = await fetch(`${gatewayUrl}/tasks/${s.taskId}`);
          const body = (await res.json().catch(() => null)) as TaskRecord | null;
          return { status: res.status, record: res.status === 200 || res.status === 202 ? body : null };
        }),
      );
      const all = last.map((a) => (a.status === 200 ? a.record : null));
      return all.every(ended) ? all : null;
    },
    120_000,
    'every accepted task to end',
    500,
  ).catch((err: unknown) => {
    const stuck = accepted
      .map((s, i) => ({ n: s.n, taskId: s.taskId, http: last[i]?.status, record: last[i]?.record }))
      .filter((x) => x.http !== 200 || !ended(x.record ?? null));
    const shown = stuck.slice(0, 20).map((x) => ({
      n: x.n,
      taskId: x.taskId,
      http: x.http,
      status: x.record?.status,
      attempts: x.record?.attempts,
    }));
    throw new Error(
      `${String(err)}; ${stuck.length} of ${accepted.length} did not end: ${JSON.stringify(shown)}`,
    );
  });
  let redelivered = 0;
  for (const [i, r] of records.entries()) {
    assert.equal(r?.status, 'succeeded', JSON.stringify(r));
    assert.deepEqual((r?.result as { payload?: unknown } | undefined)?.payload, { n: accepted[i]?.n });
    if ((r?.attempts ?? 1) > 1) redelivered++;
  }
  const ids = new Set(accepted.map((s) => String(s.taskId)));
  const rows = await waitFor(
    async () => {
      const listed = (await listAllTasks(gatewayUrl)).filter((row) => ids.has(row.id));
      return listed.length === ids.size && listed.every((row) => row.status === 'succeeded') ? listed : null;
    },
    60_000,
    'the ledger to record every accepted task as succeeded',
    500,
  );
  assert.equal(new Set(rows.map((r) => r.id)).size, rows.length, 'one ledger row per task');
  const summary =
    `submissions ${submissions.length}, accepted ${accepted.length}, refused ${refused.length}` +
    ` (${[...new Set(refused.map((s) => s.code))].join(', ') || 'none'}), redelivered ${redelivered}`;
  return { accepted, refused, redelivered, summary };
}
