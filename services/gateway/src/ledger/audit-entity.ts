// The `audit_log` table of the ledger (docs/admin-api.md): one row per admin action, written before
// the action answers. Any change here needs a new migration for BOTH dialects in ./migrations/.
// Leaf module: imports only @mikro-orm/core.
import { defineEntity, type InferEntity, p } from '@mikro-orm/core';

export const AuditRow = defineEntity({
  name: 'AuditRow',
  tableName: 'audit_log',
  properties: {
    id: p.integer().primary().autoincrement(),
    at: p.datetime(),
    /** The admin's user id (the JWT `sub`). */
    actor: p.string().length(255),
    /** e.g. `queue.pause`, `dlq.redrive` (AUDIT_ACTIONS). */
    action: p.string().length(64),
    /** What was acted on: a queue, a task id, or `dlq`. */
    target: p.string().length(255),
    /** What the action was asked and what came of it. */
    detail: p.json<Record<string, unknown>>().nullable(),
  },
  indexes: [
    { name: 'audit_log_actor_idx', columns: [{ name: 'actor' }, { name: 'id', sort: 'DESC' }] },
    { name: 'audit_log_action_idx', columns: [{ name: 'action' }, { name: 'id', sort: 'DESC' }] },
  ],
});
export type AuditRow = InferEntity<typeof AuditRow>;
