// The admin API's routes and GET /me, for the OpenAPI document (docs/admin-api.md). Must not import
// app.ts or route modules.
import { QUEUES, TASK_ID_PATTERN, TaskRecord, TaskStatus } from '@neuroagent/contracts';
import { Type } from '@sinclair/typebox';
import {
  AdminTaskDetail,
  AdminTaskList,
  AuditList,
  DeadLetterList,
  Me,
  PauseBody,
  PurgeReport,
  QueueList,
  QueueViewSchema,
  RedriveReport,
  ReplayAccepted,
  SeqSelection,
} from '../admin/admin-schemas.ts';
import { AUDIT_ACTIONS } from '../ledger/audit-log.ts';
import { defineRoute, type ResponseSpec, type RouteDefinition } from './registry.ts';

const UNAUTHORIZED: ResponseSpec = { description: 'Missing, invalid or expired bearer token' };
const FORBIDDEN: ResponseSpec = { description: 'The caller lacks the admin role (code forbidden)' };
const UNAVAILABLE: ResponseSpec = {
  description: 'NATS, Redis or the ledger is unavailable; retry later',
  headers: { 'retry-after': 'Seconds to wait before retrying (NEUROAGENT_HTTP__RETRY_AFTER_S)' },
};
const guarded = { 401: UNAUTHORIZED, 403: FORBIDDEN, 503: UNAVAILABLE };
const TaskId = Type.Object({ id: Type.String({ pattern: TASK_ID_PATTERN, description: 'Task id' }) });
const Queue = Type.Object({ queue: Type.Union(QUEUES.map((q) => Type.Literal(q))) });
const Page = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Page size (default 20)' })),
  cursor: Type.Optional(Type.String({ description: 'next_cursor of the previous page' })),
};

export function adminRoutes(): RouteDefinition[] {
  const pause = (verb: 'pause' | 'resume'): RouteDefinition =>
    defineRoute({
      method: 'post',
      path: `/admin/queues/:queue/${verb}`,
      operationId: `${verb}Queue`,
      summary:
        verb === 'pause'
          ? 'Pause a queue: workers stop pulling within a second, running tasks finish, submissions wait'
          : 'Resume a paused queue',
      tags: ['admin'],
      params: Queue,
      body: PauseBody,
      responses: {
        200: { description: "The queue's state", schema: QueueViewSchema },
        400: { description: 'The body is invalid' },
        404: { description: 'No such queue (code queue_not_found)' },
        ...guarded,
      },
      security: true,
    });
  return [
    defineRoute({
      method: 'get',
      path: '/me',
      operationId: 'getMe',
      summary: 'Who the caller is, and whether they are an admin',
      tags: ['auth'],
      responses: { 200: { description: 'The caller', schema: Me }, 401: UNAUTHORIZED },
      security: true,
    }),
    defineRoute({
      method: 'get',
      path: '/admin/queues',
      operationId: 'listQueues',
      summary: "Each queue's stream and consumer state, workers, pause state and finish rates",
      tags: ['admin'],
      responses: { 200: { description: 'Every queue', schema: QueueList }, ...guarded },
      security: true,
    }),
    pause('pause'),
    pause('resume'),
    defineRoute({
      method: 'get',
      path: '/admin/tasks',
      operationId: 'searchTasks',
      summary: 'Tasks of every user, newest first, filtered',
      tags: ['admin'],
      query: Type.Object({
        status: Type.Optional(TaskStatus),
        queue: Type.Optional(Type.Union(QUEUES.map((q) => Type.Literal(q)))),
        task: Type.Optional(Type.String()),
        owner: Type.Optional(Type.String()),
        error_code: Type.Optional(Type.String()),
        since: Type.Optional(Type.String({ description: 'Submitted at or after (ISO-8601)' })),
        until: Type.Optional(Type.String({ description: 'Submitted before (ISO-8601)' })),
        ...Page,
      }),
      responses: {
        200: { description: 'One page of tasks', schema: AdminTaskList },
        400: { description: 'A query parameter is invalid' },
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'get',
      path: '/admin/tasks/:id',
      operationId: 'getTaskDetail',
      summary: "Any user's task: its ledger row, record, input and event timeline",
      tags: ['admin'],
      params: TaskId,
      responses: {
        200: { description: 'The task', schema: AdminTaskDetail },
        404: { description: 'Unknown task (code task_not_found)' },
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'get',
      path: '/admin/tasks/:id/events',
      operationId: 'streamAnyTaskEvents',
      summary: "Any user's task events (Server-Sent Events, as GET /tasks/{id}/events)",
      tags: ['admin'],
      params: TaskId,
      responses: {
        200: { description: 'The event stream', contentType: 'text/event-stream', schema: Type.String() },
        404: { description: 'Unknown task (code task_not_found)' },
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'post',
      path: '/admin/tasks/:id/replay',
      operationId: 'replayTask',
      summary: "Publish a task's stored message again under a new id (same input and owner)",
      tags: ['admin'],
      params: TaskId,
      responses: {
        202: { description: 'The replay was published', schema: ReplayAccepted },
        404: { description: 'No stored message for the id (code task_not_found)' },
        409: { description: 'The stored message is not a valid task (code not_replayable)' },
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'post',
      path: '/admin/tasks/:id/cancel',
      operationId: 'cancelAnyTask',
      summary: "Cancel any user's task",
      tags: ['admin'],
      params: TaskId,
      responses: {
        202: { description: 'Cancellation requested; the record as it was', schema: TaskRecord },
        404: { description: 'Unknown task (code task_not_found)' },
        409: { description: 'The task already ended (code task_finished)' },
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'get',
      path: '/admin/dead-letters',
      operationId: 'listDeadLetters',
      summary: 'Dead letters, oldest first, with reason, detail, deliveries and original subject',
      tags: ['admin'],
      query: Type.Object(Page),
      responses: {
        200: { description: 'One page of dead letters', schema: DeadLetterList },
        400: { description: 'A query parameter is invalid' },
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'post',
      path: '/admin/dead-letters/redrive',
      operationId: 'redriveDeadLetters',
      summary: 'Republish dead letters to their queues under new ids, then delete them',
      tags: ['admin'],
      body: SeqSelection,
      responses: {
        200: { description: 'What was re-driven and what was skipped', schema: RedriveReport },
        400: { description: 'The body is invalid' },
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'post',
      path: '/admin/dead-letters/purge',
      operationId: 'purgeDeadLetters',
      summary: 'Delete dead letters',
      tags: ['admin'],
      body: SeqSelection,
      responses: {
        200: { description: 'How many were deleted', schema: PurgeReport },
        400: { description: 'The body is invalid' },
        ...guarded,
      },
      security: true,
    }),
    defineRoute({
      method: 'get',
      path: '/admin/audit',
      operationId: 'listAudit',
      summary: 'The audit log of admin actions, newest first',
      tags: ['admin'],
      query: Type.Object({
        actor: Type.Optional(Type.String()),
        action: Type.Optional(Type.Union(AUDIT_ACTIONS.map((a) => Type.Literal(a)))),
        ...Page,
      }),
      responses: {
        200: { description: 'One page of the audit log', schema: AuditList },
        400: { description: 'A query parameter is invalid' },
        ...guarded,
      },
      security: true,
    }),
  ];
}
