// Every route the gateway serves, declared once for the OpenAPI document; the test walks the
// mounted router against it. Tool routes and the POST /tasks body are derived from the task
// registry, so a new task appears here without an edit. Must not import app.ts or route modules.
import {
  COMMON_FAILURE_CODES,
  QUEUES,
  TASK_ID_PATTERN,
  TaskAccepted,
  TaskRecord,
  TaskStatus,
  TOOL_TASKS,
  type ToolTask,
} from '@neuroagent/contracts';
import { Type } from '@sinclair/typebox';
import { RateLimitBudgets, TaskList, taskSubmitDocument } from '../http-schemas.ts';
import { adminRoutes } from './admin-catalog.ts';
import {
  type DocumentOptions,
  defineRoute,
  type OpenApiDocument,
  openApiDocument,
  type ResponseSpec,
  type RouteDefinition,
} from './registry.ts';
import { LIMIT_HEADERS, RATE_LIMITED, RETRY_AFTER, UNAUTHORIZED, UNAVAILABLE } from './responses.ts';
import { threadRoutes } from './threads-catalog.ts';

const TaskIdParams = Type.Object({
  id: Type.String({ pattern: TASK_ID_PATTERN, description: 'Task id' }),
});

// ------------------------------------------------------------------ Shared responses

const IDEMPOTENCY = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      description:
        'Repeat a submission safely: the same key from the same user within NEUROAGENT_IDEMPOTENCY__WINDOW_S ' +
        'returns the same task and publishes nothing; the same key with another body gets 409 ' +
        'idempotency_key_reused',
    }),
  ),
});
const KEY_REUSED: ResponseSpec = {
  description: 'The Idempotency-Key was used for a different request (code idempotency_key_reused)',
};

const ACCEPTED_HEADERS = { location: 'The status URL, /tasks/{id}', ...LIMIT_HEADERS };
const TOOL_ACCEPTED_HEADERS = { ...ACCEPTED_HEADERS, 'x-task-id': 'The task id' };

function failureCodes(def: ToolTask): string {
  return [...def.failureCodes, ...COMMON_FAILURE_CODES.filter((c) => c !== 'cancelled')].join(', ');
}

function toolRoute(def: ToolTask): RouteDefinition {
  const { tool } = def;
  return defineRoute({
    method: 'post',
    path: tool.path,
    operationId: tool.operationId,
    summary: tool.summary,
    description: `${def.description}. Runs the ${def.name} task on ${def.queue}.`,
    tags: ['tools'],
    headers: IDEMPOTENCY,
    body: def.input,
    responses: {
      200: {
        description: "The task succeeded within the tool's timeout",
        schema: tool.response?.schema ?? def.output,
        headers: { 'x-task-id': 'The task id', ...LIMIT_HEADERS },
      },
      202: {
        description: 'Still pending or running when the timeout ran out; poll status_url',
        schema: TaskAccepted,
        headers: TOOL_ACCEPTED_HEADERS,
      },
      400: {
        description: 'Malformed JSON, a body that does not match the input schema, or a bad Idempotency-Key',
      },
      401: UNAUTHORIZED,
      409: {
        description: `The task was cancelled while the request waited (code cancelled), or ${KEY_REUSED.description}`,
      },
      413: {
        description: `Body${tool.maxFieldSize ? ` (or ${tool.maxFieldSize.field})` : ''} over the configured limit`,
      },
      415: { description: 'Content-Type is not application/json' },
      422: {
        description: `The task failed; code and message are the task's error (${failureCodes(def)}). Not retried by proxies: sending it again runs a new task`,
      },
      429: RATE_LIMITED,
      503: UNAVAILABLE,
    },
    security: true,
  });
}

// ------------------------------------------------------------------ Operations

/** What each tag's operations are about, for the document's tag list. */
export const TAG_DESCRIPTIONS: Record<string, string> = {
  agent:
    'Threads of messages with the agent: each message runs a turn in which the model answers, calling tools ' +
    "as the caller's tasks, streamed as Server-Sent Events",
  tools: 'One route per task: submit it and wait for its result',
  tasks: 'Submit, read, follow and cancel tasks of any kind',
  storage: 'Artifacts the tasks stored',
  auth: 'The caller',
  admin: 'Operators: queues, every user’s tasks, dead letters, the audit log (admin role)',
  ops: 'Health, readiness, metrics, rate-limit budgets and this document',
  ui: 'The operator dashboard',
};

export const CATALOG: readonly RouteDefinition[] = [
  defineRoute({
    method: 'get',
    path: '/healthz',
    operationId: 'getHealth',
    summary: 'Liveness: the process is up',
    tags: ['ops'],
    responses: {
      200: { description: 'Up', schema: Type.Object({ status: Type.Literal('ok') }) },
    },
  }),
  defineRoute({
    method: 'get',
    path: '/readyz',
    operationId: 'getReadiness',
    summary: 'Readiness: NATS and Redis answer and the stream exists',
    tags: ['ops'],
    responses: {
      200: {
        description: 'Ready',
        schema: Type.Object({
          status: Type.Literal('ready'),
          checks: Type.Record(Type.String(), Type.Literal('ok')),
        }),
      },
      503: {
        description: 'A dependency is not ready; details name each one (code not_ready)',
        headers: RETRY_AFTER,
      },
    },
  }),
  ...TOOL_TASKS.map(toolRoute),
  defineRoute({
    method: 'post',
    path: '/tasks',
    operationId: 'submitTask',
    summary: 'Submit a task, optionally waiting for it to end',
    tags: ['tasks'],
    headers: IDEMPOTENCY,
    body: taskSubmitDocument(),
    query: Type.Object({
      wait: Type.Optional(
        Type.Number({
          minimum: 0,
          description:
            'Seconds to wait for the task to end before answering (at most NEUROAGENT_TASKS__MAX_WAIT_S); 0 or absent answers 202 at once',
        }),
      ),
    }),
    responses: {
      200: {
        description:
          'The task ended within ?wait=: succeeded, failed (its code in error.code; never a 5xx) or cancelled',
        schema: TaskRecord,
      },
      202: {
        description: 'Queued (and still running at the end of ?wait=)',
        schema: TaskAccepted,
        headers: ACCEPTED_HEADERS,
      },
      400: {
        description:
          'Malformed body, input that does not match the task schema, a bad wait or Idempotency-Key',
      },
      401: UNAUTHORIZED,
      404: { description: 'Unknown task name (code unknown_task)' },
      409: KEY_REUSED,
      429: RATE_LIMITED,
      503: UNAVAILABLE,
    },
    security: true,
  }),
  defineRoute({
    method: 'get',
    path: '/tasks',
    operationId: 'listTasks',
    summary: "List the caller's tasks, newest first",
    tags: ['tasks'],
    query: Type.Object({
      status: Type.Optional(TaskStatus),
      queue: Type.Optional(Type.Union(QUEUES.map((q) => Type.Literal(q)))),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Page size' })),
      cursor: Type.Optional(Type.String({ description: 'next_cursor of the previous page' })),
    }),
    responses: {
      200: { description: 'One page of tasks', schema: TaskList },
      400: { description: 'A query parameter is invalid' },
      401: UNAUTHORIZED,
      503: UNAVAILABLE,
    },
    security: true,
  }),
  defineRoute({
    method: 'get',
    path: '/tasks/:id',
    operationId: 'getTask',
    summary: 'Read a task, optionally long-polling until it ends',
    tags: ['tasks'],
    params: TaskIdParams,
    query: Type.Object({
      wait: Type.Optional(
        Type.Number({
          minimum: 0,
          description: 'Seconds to wait for a terminal status (at most NEUROAGENT_TASKS__MAX_WAIT_S)',
        }),
      ),
    }),
    responses: {
      200: { description: 'The task ended (succeeded, failed or cancelled)', schema: TaskRecord },
      202: { description: 'Still pending or running', schema: TaskRecord },
      400: { description: 'wait is not a number or is over the limit' },
      401: UNAUTHORIZED,
      404: { description: "Unknown task, or another user's (code task_not_found)" },
      503: UNAVAILABLE,
    },
    security: true,
  }),
  defineRoute({
    method: 'get',
    path: '/tasks/:id/events',
    operationId: 'streamTaskEvents',
    summary: "Stream a task's progress events (Server-Sent Events)",
    description:
      'Each SSE message has `event:` started, progress, done or error, `id:` the Redis stream entry id ' +
      '(send it back as Last-Event-ID to resume) and `data:` the JSON `{"ts": ..., "data": ...}`. ' +
      'The stream closes after done or error.',
    tags: ['tasks'],
    params: TaskIdParams,
    responses: {
      200: { description: 'The event stream', contentType: 'text/event-stream', schema: Type.String() },
      401: UNAUTHORIZED,
      404: { description: "Unknown task, or another user's (code task_not_found)" },
      503: UNAVAILABLE,
    },
    security: true,
  }),
  defineRoute({
    method: 'delete',
    path: '/tasks/:id',
    operationId: 'cancelTask',
    summary: 'Cancel a task',
    description:
      'A pending task never starts; a running one is interrupted and ends as cancelled. ' +
      'Follow GET /tasks/{id} for the final status.',
    tags: ['tasks'],
    params: TaskIdParams,
    responses: {
      202: { description: 'Cancellation requested; the record as it was', schema: TaskRecord },
      401: UNAUTHORIZED,
      404: { description: "Unknown task, or another user's (code task_not_found)" },
      409: { description: 'The task already ended: succeeded, failed or cancelled (code task_finished)' },
      503: UNAVAILABLE,
    },
    security: true,
  }),
  defineRoute({
    method: 'get',
    path: '/storage/:id/presigned-url',
    operationId: 'getStorageUrl',
    summary: 'A short-lived download URL for one of the caller’s artifacts',
    tags: ['storage'],
    params: Type.Object({
      id: Type.String({ format: 'uuid', description: 'Storage id (from RunPythonOutput.storage_id)' }),
    }),
    responses: {
      200: { description: 'The URL, as a JSON string', schema: Type.String({ format: 'uri' }) },
      401: UNAUTHORIZED,
      404: { description: "No such artifact, or another user's (code storage_not_found)" },
      503: { description: 'Storage is disabled or did not answer', headers: RETRY_AFTER },
    },
    security: true,
  }),
  defineRoute({
    method: 'get',
    path: '/rate-limit',
    operationId: 'getRateLimits',
    summary: 'What is left of the caller’s rate-limit budgets',
    tags: ['ops'],
    responses: {
      200: { description: 'The budgets', schema: RateLimitBudgets },
      401: UNAUTHORIZED,
      503: UNAVAILABLE,
    },
    security: true,
  }),
  defineRoute({
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    summary: 'Prometheus metrics',
    tags: ['ops'],
    responses: {
      200: {
        description: 'Prometheus text exposition format',
        contentType: 'text/plain',
        schema: Type.String(),
      },
    },
  }),
  defineRoute({
    method: 'get',
    path: '/openapi.json',
    operationId: 'getOpenApi',
    summary: 'This OpenAPI 3.1 document',
    tags: ['ops'],
    responses: { 200: { description: 'The document', schema: Type.Object({}) } },
  }),
  defineRoute({
    method: 'get',
    path: '/docs',
    operationId: 'getDocs',
    summary: 'A self-contained HTML page listing the operations',
    tags: ['ops'],
    responses: {
      200: { description: 'HTML', contentType: 'text/html', schema: Type.String() },
    },
  }),
  ...threadRoutes(),
  ...adminRoutes(),
  ...dashboardRoutes(),
];

/** GET /ui and /ui/*path: the operator dashboard's files (public: the page asks for a token). */
function dashboardRoutes(): RouteDefinition[] {
  const notBuilt: ResponseSpec = {
    description: 'NEUROAGENT_UI__DIR holds no index.html (code dashboard_not_built): run npm run build:ui',
    headers: RETRY_AFTER,
  };
  const page = {
    description: 'The file, or the app (index.html) for a path without a file extension',
    contentType: 'text/html',
    schema: Type.String(),
    headers: {
      'content-security-policy': "default-src 'self'; connect-src 'self'; no inline script",
      'cache-control': 'immutable for hashed assets/, no-cache otherwise',
    },
  };
  return [
    defineRoute({
      method: 'get',
      path: '/ui',
      operationId: 'getDashboard',
      summary: 'The operator dashboard (a single-page app)',
      tags: ['ui'],
      responses: { 200: page, 503: notBuilt },
    }),
    defineRoute({
      method: 'get',
      path: '/ui/*path',
      operationId: 'getDashboardFile',
      summary: 'A file of the operator dashboard',
      tags: ['ui'],
      params: Type.Object({
        path: Type.String({ description: 'Path under the dashboard folder; may contain slashes' }),
      }),
      responses: {
        200: page,
        400: { description: 'A path that leaves the folder (.., a backslash, a NUL; code invalid_path)' },
        404: { description: 'No such file (a path with a file extension; code not_found)' },
        503: notBuilt,
      },
    }),
  ];
}

/** The gateway's document, with this package's title and version unless overridden. */
export function gatewayOpenApiDocument(opts: Partial<DocumentOptions> = {}): OpenApiDocument {
  return openApiDocument({
    title: 'neuroagent-mesh gateway',
    version: '0.1.0',
    tagDescriptions: TAG_DESCRIPTIONS,
    ...opts,
  });
}
