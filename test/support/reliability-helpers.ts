// Shared by the delivery-guarantee system tests (test/reliability-*.test.ts): submitting through the
// real gateway, reading a task's progress stream, the dead-letter copy of a message and the ledger.
import { hostname } from 'node:os';
import { type JetStreamManager, jetstreamManager, type StoredMsg } from '@nats-io/jetstream';
import { HEADERS, type QueueName, type TaskEvent } from '@neuroagent/contracts';
import { createLogger, parseStreamEntry } from '@neuroagent/platform';
import { gatewayEnv, type TestNamespace } from '@neuroagent/platform/testing';
import { type Ledger, openLedger } from '../../services/gateway/src/ledger/ledger.ts';
import type { TestClients } from './namespace.ts';
import type { ServiceProcess } from './processes.ts';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The `worker` field of a `started` event written by this process (consumer.ts WORKER_ID). */
export function workerIdOf(w: ServiceProcess): string {
  return `${hostname()}:${w.proc.pid}`;
}

/** One submission of a load test: when it was sent and answered, and how. */
export interface Submission {
  n: number;
  sentAt: number;
  answeredAt: number;
  status: number;
  taskId?: string;
  code?: string;
}

/** POST /tasks; returns the task id (asserts the 202). */
export async function submitTask(url: string, task: string, input: unknown): Promise<string> {
  const res = await fetch(`${url}/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ task, input }),
  });
  const body = (await res.json()) as { task_id?: string };
  if (res.status !== 202 || !body.task_id) {
    throw new Error(`POST /tasks answered ${res.status}: ${JSON.stringify(body)}`);
  }
  return body.task_id;
}

export interface StartedData {
  attempt: number;
  worker: string;
}

/** Every event of `task:{id}:progress`, oldest first. */
export async function progressEvents(clients: TestClients, ns: TestNamespace, id: string) {
  const entries = await clients.redis.xrange(ns.names.progressKey(id), '-', '+');
  return entries.map(([entryId, fields]) => parseStreamEntry(entryId, fields)).filter(isEvent);
}

/** The progress streams of many tasks, pipelined in chunks (thousands of tasks). */
export async function progressEventsOfMany(
  clients: TestClients,
  ns: TestNamespace,
  ids: readonly string[],
): Promise<Map<string, TaskEvent[]>> {
  const out = new Map<string, TaskEvent[]>();
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    const pipe = clients.redis.pipeline();
    for (const id of chunk) pipe.xrange(ns.names.progressKey(id), '-', '+');
    const res = (await pipe.exec()) ?? [];
    chunk.forEach((id, j) => {
      const [err, entries] = res[j] ?? [new Error('no reply'), null];
      if (err) throw err;
      const list = (entries as [string, string[]][]).map(([eid, f]) => parseStreamEntry(eid, f));
      out.set(id, list.filter(isEvent));
    });
  }
  return out;
}

/** How many of the ids have a stored result (task:{id}:result exists). */
export async function countResults(
  clients: TestClients,
  ns: TestNamespace,
  ids: readonly string[],
): Promise<number> {
  let n = 0;
  for (let i = 0; i < ids.length; i += 500) {
    const pipe = clients.redis.pipeline();
    for (const id of ids.slice(i, i + 500)) pipe.exists(ns.names.resultKey(id));
    for (const [err, v] of (await pipe.exec()) ?? []) {
      if (err) throw err;
      n += Number(v);
    }
  }
  return n;
}

function isEvent(e: TaskEvent | null): e is TaskEvent {
  return e !== null;
}

export function startedData(e: TaskEvent): StartedData {
  return e.data as StartedData;
}

export const isTerminalEvent = (e: TaskEvent) => e.type === 'done' || e.type === 'error';

/** The dead-letter copy of the message published on `<prefix>.<queue>.<id>`, or null. */
export async function dlqCopy(
  clients: TestClients,
  ns: TestNamespace,
  queue: QueueName,
  id: string,
): Promise<StoredMsg | null> {
  const jsm = await jetstreamManager(clients.nc);
  return jsm.streams
    .getMessage(ns.names.dlqStream, { last_by_subj: ns.names.dlqSubject(ns.names.taskSubject(queue, id)) })
    .catch(() => null);
}

export function dlqHeaders(msg: StoredMsg) {
  return {
    reason: msg.header.get(HEADERS.dlqReason),
    detail: msg.header.get(HEADERS.dlqDetail),
    origSubject: msg.header.get(HEADERS.dlqOrigSubject),
    deliveries: Number(msg.header.get(HEADERS.dlqDeliveries)),
  };
}

export async function consumerInfo(jsm: JetStreamManager, ns: TestNamespace, queue: QueueName) {
  return jsm.consumers.info(ns.names.stream, ns.names.consumerName(queue));
}

/** Opens the namespace's SQLite ledger (the file the gateway of gatewayEnv(ns) writes). */
export async function openNamespaceLedger(ns: TestNamespace): Promise<Ledger> {
  const url = gatewayEnv(ns).NEUROAGENT_DB__URL ?? '';
  return openLedger({ url, debug: false }, createLogger('reliability-test', 'silent'));
}

/** A task envelope as `nats pub` would send it (contracts/src/envelope.ts). */
export function envelopeOf(queue: QueueName, task: string, input: unknown, userId = 'anonymous') {
  return {
    v: 1,
    queue,
    task,
    input,
    userId,
    submittedAt: new Date().toISOString(),
    startWithinS: 600,
  };
}

/** One row of GET /tasks, as far as the reliability tests read it. */
export interface LedgerItem {
  id: string;
  status: string;
  error_code: string | null;
  attempts: number;
}

/** Every row GET /tasks lists for the (anonymous) caller, following the cursor to the end. */
export async function listAllTasks(gatewayUrl: string, query = ''): Promise<LedgerItem[]> {
  const items: LedgerItem[] = [];
  let cursor: string | null = null;
  do {
    const q = `limit=100${query ? `&${query}` : ''}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = (await (await fetch(`${gatewayUrl}/tasks?${q}`)).json()) as {
      items: LedgerItem[];
      next_cursor: string | null;
    };
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return items;
}
