// The operators' audit log (docs/admin-api.md, "Audit log"): every admin action that changes
// something is appended here, in the ledger database, before the action answers. Rows are never
// updated or deleted by the gateway. Never imports Koa, NATS or Redis.
import type { FilterQuery, MikroORM } from '@mikro-orm/core';
import { ValidationError } from '@neuroagent/platform';
import { AuditRow } from './audit-entity.ts';
import { LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT } from './ledger.ts';

export const AUDIT_ACTIONS = [
  'queue.pause',
  'queue.resume',
  'task.replay',
  'task.cancel',
  'dlq.redrive',
  'dlq.purge',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export function isAuditAction(value: string): value is AuditAction {
  return (AUDIT_ACTIONS as readonly string[]).includes(value);
}

export interface AuditEntry {
  actor: string;
  action: AuditAction;
  target: string;
  detail?: Record<string, unknown> | undefined;
}

/** An audit row as served by GET /admin/audit. */
export interface AuditItem {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown> | null;
}

export interface AuditListOptions {
  actor?: string | undefined;
  action?: AuditAction | undefined;
  limit?: number | undefined;
  /** `next_cursor` of the previous page. */
  cursor?: string | undefined;
}

export interface AuditPage {
  items: AuditItem[];
  next_cursor: string | null;
}

export interface AuditLog {
  record(entry: AuditEntry): Promise<AuditItem>;
  /** Adds the outcome to a recorded action's detail: `ok`, and the error code when it failed. */
  settle(id: number, outcome: { ok: boolean; code?: string }): Promise<void>;
  list(options?: AuditListOptions): Promise<AuditPage>;
}

// The target column is varchar(255); a target is a queue, a task id or `dlq`, so longer is a bug.
const MAX_TARGET = 255;

export function createAuditLog(orm: MikroORM, now: () => Date = () => new Date()): AuditLog {
  return {
    async record(entry) {
      const em = orm.em.fork();
      const row = em.create(AuditRow, {
        at: now(),
        actor: entry.actor,
        action: entry.action,
        target: entry.target.slice(0, MAX_TARGET),
        detail: entry.detail ?? null,
      });
      await em.flush();
      return toItem(row);
    },

    async settle(id, outcome) {
      const em = orm.em.fork();
      const row = await em.findOneOrFail(AuditRow, { id });
      row.detail = { ...row.detail, ...outcome };
      await em.flush();
    },

    async list(options = {}) {
      const limit = Math.min(Math.max(Math.trunc(options.limit ?? LIST_DEFAULT_LIMIT), 1), LIST_MAX_LIMIT);
      const where: FilterQuery<AuditRow> = {};
      if (options.actor !== undefined) where.actor = options.actor;
      if (options.action !== undefined) where.action = options.action;
      if (options.cursor !== undefined && options.cursor !== '')
        where.id = { $lt: decodeAuditCursor(options.cursor) };
      const rows = await orm.em.fork().find(AuditRow, where, { orderBy: { id: 'desc' }, limit: limit + 1 });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        items: page.map(toItem),
        next_cursor: rows.length > limit && last ? String(last.id) : null,
      };
    },
  };
}

function decodeAuditCursor(cursor: string): number {
  const id = /^\d{1,15}$/.test(cursor) ? Number(cursor) : Number.NaN;
  if (!Number.isSafeInteger(id) || id < 1) {
    throw new ValidationError('invalid cursor', [{ path: '/cursor', message: 'not a cursor from this API' }]);
  }
  return id;
}

function toItem(row: AuditRow): AuditItem {
  return {
    id: row.id,
    at: row.at.toISOString(),
    actor: row.actor,
    action: row.action,
    target: row.target,
    detail: row.detail ?? null,
  };
}
