// The JSON shapes the dashboard reads: the task API (GET /tasks, /tasks/{id}) and the admin API
// (docs/admin-api.md). Declared here rather than imported from contracts/, which is Node code:
// the bundle must stay free of it. Only the fields the pages show are listed.

export interface Me {
  user_id: string;
  admin: boolean;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface TaskError {
  code: string;
  message?: string;
  details?: unknown;
}

/** GET /tasks/{id}, and `record` of GET /admin/tasks/{id}. */
export interface TaskRecord {
  id: string;
  task: string;
  queue: string;
  status: string;
  result?: unknown;
  error?: TaskError | null;
  submitted_at?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  attempts?: number;
}

/** A ledger row: the items of GET /tasks and GET /admin/tasks. */
export interface LedgerTask {
  id: string;
  owner?: string;
  queue: string;
  task: string;
  status: string;
  submitted_at?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  attempts?: number;
  error_code?: string | null;
}

export interface TaskEventItem {
  id: string;
  type: string;
  ts?: string;
  data?: unknown;
}

export interface AdminTaskDetail {
  task: LedgerTask | null;
  record: TaskRecord | null;
  input: unknown;
  subject: string | null;
  events: TaskEventItem[];
}

export interface QueueRates {
  finished: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  per_s: number;
  failure_rate: number;
}

export interface QueueWorker {
  id: string;
  slots: number;
  busy: number;
  paused: boolean;
  last_seen: string;
}

export interface QueueInfo {
  queue: string;
  paused: boolean;
  paused_by: string | null;
  paused_at: string | null;
  stream: { name: string; messages: number; bytes: number; last_ts: string | null } | null;
  consumer: {
    name: string;
    pending: number;
    ack_pending: number;
    redelivered: number;
    waiting_pulls: number;
    last_active: string | null;
  } | null;
  workers: QueueWorker[];
  replicas: number;
  rates: { minute: QueueRates; hour: QueueRates } | null;
}

export interface DeadLetter {
  seq: number;
  task_id: string | null;
  queue: string | null;
  subject: string;
  reason: string | null;
  detail: string | null;
  deliveries: number | null;
  dead_at: string | null;
  replayable: boolean;
}

export interface RedriveResult {
  redriven: { seq: number; task_id: string }[];
  skipped: { seq: number; reason: string }[];
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  detail: unknown;
}
