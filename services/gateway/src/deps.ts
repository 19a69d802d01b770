// What the gateway's routes are built from. Each route module takes only the part of AppDeps it
// uses (the Pick types below), so a test can build one route with fakes of just those, and nothing
// under routes/ imports app.ts. The modules this one imports define what they need themselves
// (RecordDeps, SubmitDeps) and never import it back: test/import-boundaries.test.ts checks that
// no module of the repository is part of an import cycle. Types only: runtime.ts builds the real ones.
import type { Logger, Storage, TaskReader } from '@neuroagent/platform';
import type { AdminOps } from './admin/operations.ts';
import type { AgentDeps } from './agent/agent-deps.ts';
import type { Verifier } from './auth/verifier.ts';
import type { CompletionWatch } from './completion-watch.ts';
import type { GatewayConfig } from './config.ts';
import type { IdempotencyKeys } from './idempotency.ts';
import type { AuditLog } from './ledger/audit-log.ts';
import type { Ledger } from './ledger/ledger.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { ProgressHub } from './progress-hub.ts';
import type { RateLimits } from './rate-limit/limiter.ts';
import type { ServerTiming } from './server-timing.ts';
import type { SubmitDeps, TaskSubmitter } from './submission.ts';
import type { RecordDeps } from './task-io.ts';

declare module 'koa' {
  /** ctx.state of every gateway request: set by app.ts (requestId) and auth (userId). */
  interface DefaultState {
    requestId: string;
    userId: string;
    /** The caller may use the /admin routes (auth/verifier.ts holdsAdminRole). */
    admin: boolean;
    timing?: ServerTiming;
    /** The task this request submitted, for its `request` log line. */
    submitted?: { taskId: string; task: string; queue: string; seq: number };
  }
}

export interface Readiness {
  nats(): Promise<unknown>;
  redis(): Promise<unknown>;
  stream(): Promise<unknown>;
}

export interface AppDeps {
  config: Readonly<GatewayConfig>;
  /** The gateway's side of a task's Redis state: meta at submit, cancel flags, records. */
  store: Pick<TaskReader, 'readRecord'>;
  /** SSE: every event of a task. */
  hub: ProgressHub;
  /** Long polls: wakes when a task ends. */
  completions: CompletionWatch;
  submitter: TaskSubmitter;
  /** Idempotency-Key claims, per user and key. */
  idempotency: IdempotencyKeys;
  readiness: Readiness;
  /** null when artifact storage is disabled. */
  storage: Storage | null;
  /** Flags the task as cancelled and interrupts it where it runs. */
  cancel(taskId: string): Promise<void>;
  verifier: Verifier;
  limits: RateLimits;
  metrics: GatewayMetrics;
  ledger: Pick<Ledger, 'list' | 'get' | 'search'>;
  /** The admin API's operations over JetStream, queue control, Redis and the ledger. */
  admin: AdminOps;
  audit: AuditLog;
  /** Threads, messages and agent turns. */
  agent: AgentDeps;
  log: Logger;
}

export type { RecordDeps, SubmitDeps };
export type ToolRouteDeps = SubmitDeps & Pick<AppDeps, 'config' | 'limits'>;
export type TaskRouteDeps = ToolRouteDeps & Pick<AppDeps, 'hub' | 'cancel'>;
export type HealthDeps = Pick<AppDeps, 'readiness'>;
export type StorageRouteDeps = Pick<AppDeps, 'storage' | 'config'>;
