// The OpenAPI document: valid 3.1 (checked by swagger-parser), complete against the catalog and
// the mounted router, every $ref resolvable; and the /openapi.json and /docs routes.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import Router from '@koa/router';
import { TASK_DEFINITIONS, TURN_EVENT_TYPES } from '@neuroagent/contracts';
import { Type } from '@sinclair/typebox';
import Koa from 'koa';
import { type AppDeps, createRouter } from '../src/app.ts';
import { loadGatewayConfig } from '../src/config.ts';
import { createMetrics } from '../src/metrics.ts';
import {
  assertRouterCovered,
  createRouteRegistry,
  type OpenApiDocument,
  routeDefinitions,
  toOpenApiPath,
} from '../src/openapi/registry.ts';
import { registerOpenApiRoutes } from '../src/openapi/routes.ts';
import { CATALOG, gatewayOpenApiDocument } from '../src/openapi/routes-catalog.ts';
import { turnSseSchemaId } from '../src/openapi/threads-catalog.ts';

const validate = (doc: object) => SwaggerParser.validate(structuredClone(doc) as never);

/** A router serving exactly the catalog's routes, with a dummy handler. */
function catalogRouter(): Router {
  const router = new Router();
  for (const def of CATALOG) {
    router.register(def.path, [def.method.toUpperCase()], (ctx) => {
      ctx.status = 204;
    });
  }
  return router;
}

/** The operation at path and method; fails the test when it is missing. */
function operation<T>(doc: OpenApiDocument, path: string, method: string): T {
  const op = doc.paths[path]?.[method];
  assert.ok(op, `${method.toUpperCase()} ${path} is not documented`);
  return op as T;
}

function resolvePointer(doc: unknown, ref: string): unknown {
  return ref
    .slice(2)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce<unknown>((node, token) => (node as Record<string, unknown> | undefined)?.[token], doc);
}

function collectRefs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) collectRefs(n, out);
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else collectRefs(v, out);
    }
  }
  return out;
}

describe('openApiDocument()', () => {
  const doc = gatewayOpenApiDocument({ servers: [{ url: 'http://localhost:8080' }] });

  it('is a valid OpenAPI 3.1 document', async () => {
    assert.equal(doc.openapi, '3.1.0');
    await validate(doc);
  });

  it('is checked by a validator that rejects an invalid 3.1 document', async () => {
    const broken = structuredClone(doc);
    const op = operation<{ responses: Record<string, { description?: string }> }>(broken, '/healthz', 'get');
    delete op.responses['200']!.description;
    await assert.rejects(validate(broken), /must have required property 'description'/);
    // "unevaluated properties" is JSON Schema 2020-12: the 3.1 meta-schema, not the 3.0 one.
    await assert.rejects(
      validate({ ...doc, paths: { 'no-slash': {} } }),
      /must NOT have unevaluated properties/,
    );
  });

  it('documents every catalog route with its method, in {param} form', () => {
    assert.equal(routeDefinitions().length, CATALOG.length);
    for (const def of CATALOG) {
      const item = doc.paths[toOpenApiPath(def.path)];
      assert.ok(item?.[def.method], `${def.method} ${def.path} missing`);
    }
    assert.ok(doc.paths['/tasks/{id}']?.get);
    assert.ok(doc.paths['/tasks/{id}']?.delete);
    assert.ok(doc.paths['/tasks/{id}/events']?.get);
    assert.ok(!Object.keys(doc.paths).some((p) => p.includes(':')));
  });

  it('resolves every $ref and hoists $id schemas into components without their $id', async () => {
    const refs = collectRefs(doc);
    assert.ok(refs.length > 0);
    for (const ref of refs) {
      assert.match(ref, /^#\/components\/schemas\//);
      assert.ok(resolvePointer(doc, ref), `${ref} does not resolve`);
    }
    for (const id of [
      'ErrorBody',
      'TaskRecord',
      'TaskAccepted',
      'RunPythonInput',
      'TaskList',
      'TaskSubmit',
      'LedgerTask',
    ]) {
      assert.ok(doc.components.schemas[id], `${id} not in components`);
    }
    assert.equal(JSON.stringify(doc).includes('"$id"'), false);
    // GET /tasks lists ledger rows, not task records; by reference, not by copy.
    const items = (doc.components.schemas.TaskList as { properties: { items: { items: unknown } } })
      .properties.items;
    assert.deepEqual(items.items, { $ref: '#/components/schemas/LedgerTask' });
    const ledgerTask = doc.components.schemas.LedgerTask as { properties: Record<string, unknown> };
    assert.deepEqual(Object.keys(ledgerTask.properties), [
      'id',
      'owner',
      'queue',
      'task',
      'status',
      'submitted_at',
      'started_at',
      'finished_at',
      'attempts',
      'error_code',
      'token_consumption',
      'storage_ids',
      'input_digest',
      'updated_at',
    ]);
    // The admin task search lists the same rows, with the same component.
    assert.match(
      JSON.stringify(operation(doc, '/admin/tasks', 'get')),
      /"items":\{"type":"array","items":\{"\$ref":"#\/components\/schemas\/LedgerTask"\}/,
    );
    await SwaggerParser.dereference(structuredClone(doc) as never);
  });

  it('answers errors with ErrorBody and secures routes with bearer JWT', () => {
    const op = operation<{
      security: unknown;
      responses: Record<string, { content: Record<string, { schema: unknown }> }>;
    }>(doc, '/tools/run-python', 'post');
    for (const status of ['400', '401', '409', '413', '415', '422', '429', '503']) {
      assert.deepEqual(op.responses[status]?.content['application/json']?.schema, {
        $ref: '#/components/schemas/ErrorBody',
      });
    }
    assert.deepEqual(op.security, [{ bearerAuth: [] }]);
    assert.deepEqual(doc.components.securitySchemes.bearerAuth, {
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
    });
    assert.equal(operation<{ security?: unknown }>(doc, '/healthz', 'get').security, undefined);
    // A failed task is a 422 with its code: a 5xx would invite proxies to run it again.
    assert.equal(op.responses['502'], undefined);
  });

  it('names every operation explicitly', () => {
    const ids = Object.fromEntries(
      Object.entries(doc.paths).flatMap(([path, item]) =>
        Object.entries(item).map(([method, op]) => [
          `${method} ${path}`,
          (op as { operationId: string }).operationId,
        ]),
      ),
    );
    assert.equal(ids['post /tools/run-python'], 'runPython');
    assert.equal(ids['post /tools/circuit-population-analysis'], 'analyzeCircuitPopulation');
    assert.equal(ids['post /tasks'], 'submitTask');
    assert.equal(ids['get /tasks/{id}'], 'getTask');
    assert.equal(ids['get /tasks'], 'listTasks');
    assert.equal(ids['delete /tasks/{id}'], 'cancelTask');
    for (const [where, id] of Object.entries(ids)) assert.match(id, /^[a-z][A-Za-z]+$/, where);
  });

  it('documents POST /tasks as a oneOf over every task, discriminated by task', () => {
    const op = operation<{ requestBody: { content: { 'application/json': { schema: { $ref: string } } } } }>(
      doc,
      '/tasks',
      'post',
    );
    assert.equal(op.requestBody.content['application/json'].schema.$ref, '#/components/schemas/TaskSubmit');
    const submit = doc.components.schemas.TaskSubmit as {
      oneOf: { $ref: string }[];
      discriminator: { propertyName: string; mapping: Record<string, string> };
    };
    assert.equal(submit.discriminator.propertyName, 'task');
    assert.deepEqual(
      Object.keys(submit.discriminator.mapping),
      TASK_DEFINITIONS.map((d) => d.name),
    );
    assert.deepEqual(
      submit.oneOf.map((v) => v.$ref),
      Object.values(submit.discriminator.mapping),
    );
    const python = doc.components.schemas.SubmitRunPython as {
      properties: { task: { const: string }; input: { $ref: string } };
    };
    assert.equal(python.properties.task.const, 'run_python');
    assert.equal(python.properties.input.$ref, '#/components/schemas/RunPythonInput');
  });

  it('documents Retry-After on every 503 and Idempotency-Key on every submitting route', () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const o = op as {
          responses: Record<string, { headers?: Record<string, unknown> }>;
          parameters?: { name: string; in: string }[];
        };
        if (o.responses['503']) assert.ok(o.responses['503'].headers?.['retry-after'], `${method} ${path}`);
        // Admin actions are not submissions: a repeated re-drive or pause finds nothing left to do.
        // Nor are chat messages: sending one again is a new turn, as in any chat.
        if (method === 'post' && !path.startsWith('/admin/') && !path.startsWith('/threads')) {
          assert.ok(
            o.parameters?.some((p) => p.in === 'header' && p.name === 'idempotency-key'),
            `${method} ${path} takes Idempotency-Key`,
          );
        }
      }
    }
  });

  it('turns params and query objects into parameters', () => {
    const op = operation<{ parameters: { name: string; in: string; required: boolean }[] }>(
      doc,
      '/tasks/{id}',
      'get',
    );
    assert.deepEqual(
      op.parameters.map(({ name, in: where, required }) => ({ name, in: where, required })),
      [
        { name: 'id', in: 'path', required: true },
        { name: 'wait', in: 'query', required: false },
      ],
    );
  });
});

describe('the agent API in the document', () => {
  const doc = gatewayOpenApiDocument();
  type Media = Record<string, { schema: { $ref?: string } }>;
  type Op = {
    tags: string[];
    description?: string;
    parameters?: { name: string; in: string; required: boolean }[];
    requestBody?: { required: boolean; content: Media };
    responses: Record<string, { description: string; content?: Media; headers?: Record<string, unknown> }>;
  };
  const agentOps = Object.entries(doc.paths)
    .filter(([path]) => path.startsWith('/threads'))
    .flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => [`${method} ${path}`, op as Op] as const),
    );

  it('documents every thread route under the agent tag, which has a description', () => {
    assert.deepEqual(agentOps.map(([key]) => key).sort(), [
      'delete /threads/{id}',
      'delete /threads/{id}/turn',
      'get /threads',
      'get /threads/{id}',
      'get /threads/{id}/messages',
      'get /threads/{id}/turn/events',
      'patch /threads/{id}',
      'post /threads',
      'post /threads/{id}/messages',
    ]);
    for (const [key, op] of agentOps) assert.deepEqual(op.tags, ['agent'], key);
    const tag = doc.tags?.find((t) => t.name === 'agent');
    assert.match(tag?.description ?? '', /turn/);
  });

  it('answers POST /threads/{id}/messages as SSE or, on Accept: application/json, as a TurnResult', () => {
    const op = operation<Op>(doc, '/threads/{id}/messages', 'post');
    const ok = op.responses['200'];
    assert.ok(ok?.content);
    assert.deepEqual(Object.keys(ok.content).sort(), ['application/json', 'text/event-stream']);
    assert.equal(ok.content['application/json']?.schema.$ref, '#/components/schemas/TurnResult');
    assert.equal(ok.content['text/event-stream']?.schema.$ref, '#/components/schemas/TurnSseEvent');
    assert.ok(ok.headers?.['x-turn-id']);
    assert.equal(
      op.requestBody?.content['application/json']?.schema.$ref,
      '#/components/schemas/MessagePost',
    );
    assert.equal(op.requestBody?.required, true);
  });

  it('documents the chat budget (429) and an unconfigured model (503) of POST /threads/{id}/messages', () => {
    const op = operation<Op>(doc, '/threads/{id}/messages', 'post');
    const limited = op.responses['429'];
    assert.match(limited?.description ?? '', /rate_limited/);
    assert.match(limited?.description ?? '', /NEUROAGENT_RATE_LIMIT__CHAT_POINTS turns \(default 20\)/);
    assert.match(
      limited?.description ?? '',
      /NEUROAGENT_RATE_LIMIT__CHAT_WINDOW_S seconds \(default 86400\)/,
    );
    assert.ok(limited?.headers?.['retry-after']);
    assert.match(op.responses['503']?.description ?? '', /llm_not_configured/);
    assert.match(op.responses['413']?.description ?? '', /message_too_large.*body_too_large/);
    assert.match(op.responses['409']?.description ?? '', /turn_in_progress/);
    assert.match(op.responses['404']?.description ?? '', /thread_not_found/);
    for (const status of ['400', '429', '503']) {
      assert.equal(
        op.responses[status]?.content?.['application/json']?.schema.$ref,
        '#/components/schemas/ErrorBody',
      );
    }
  });

  it('documents every turn event type, with its data schema, on both streams', () => {
    const stream = doc.components.schemas.TurnSseEvent as {
      oneOf: { $ref: string }[];
      discriminator: { propertyName: string; mapping: Record<string, string> };
    };
    assert.equal(stream.discriminator.propertyName, 'event');
    assert.deepEqual(Object.keys(stream.discriminator.mapping), [...TURN_EVENT_TYPES]);
    assert.deepEqual(
      stream.oneOf.map((v) => v.$ref),
      TURN_EVENT_TYPES.map((t) => `#/components/schemas/${turnSseSchemaId(t)}`),
    );
    const dataOf: Record<string, string> = {
      turn: 'TurnStartedEvent',
      text: 'TextEvent',
      tool_call: 'ToolCallEvent',
      tool_result: 'ToolResultEvent',
      message: 'MessageEvent',
      error: 'TurnErrorEvent',
    };
    assert.deepEqual(Object.keys(dataOf), [...TURN_EVENT_TYPES]);
    for (const type of TURN_EVENT_TYPES) {
      const frame = doc.components.schemas[turnSseSchemaId(type)] as {
        properties: { event: { const: string }; id: unknown; data: { contentSchema: { $ref: string } } };
      };
      assert.equal(frame.properties.event.const, type);
      assert.ok(frame.properties.id);
      assert.equal(frame.properties.data.contentSchema.$ref, `#/components/schemas/${dataOf[type]}`);
      assert.ok(doc.components.schemas[dataOf[type] as string], `${dataOf[type]} is a component`);
    }
    for (const path of ['/threads/{id}/messages', '/threads/{id}/turn/events']) {
      const op = operation<Op>(doc, path, path.endsWith('events') ? 'get' : 'post');
      assert.equal(
        op.responses['200']?.content?.['text/event-stream']?.schema.$ref,
        '#/components/schemas/TurnSseEvent',
      );
      for (const type of TURN_EVENT_TYPES)
        assert.match(op.description ?? '', new RegExp(`\`${type}\``), path);
      assert.match(op.description ?? '', /Last-Event-ID/);
    }
  });

  it('documents the resume stream: turn_id, Last-Event-ID, 404 turn_not_found and 410 turn_events_expired', () => {
    const op = operation<Op>(doc, '/threads/{id}/turn/events', 'get');
    assert.deepEqual(
      op.parameters?.map(({ name, in: where, required }) => ({ name, in: where, required })),
      [
        { name: 'id', in: 'path', required: true },
        { name: 'turn_id', in: 'query', required: false },
        { name: 'last-event-id', in: 'header', required: false },
      ],
    );
    assert.match(op.responses['404']?.description ?? '', /thread_not_found.*turn_not_found/);
    assert.match(op.responses['410']?.description ?? '', /turn_events_expired/);
  });

  it('documents the other thread routes with their statuses and bodies', () => {
    const create = operation<Op>(doc, '/threads', 'post');
    assert.equal(create.requestBody?.required, false, 'POST /threads takes no body');
    assert.equal(
      create.responses['201']?.content?.['application/json']?.schema.$ref,
      '#/components/schemas/Thread',
    );
    assert.ok(create.responses['201']?.headers?.location);
    const list = operation<Op>(doc, '/threads', 'get');
    assert.equal(
      list.responses['200']?.content?.['application/json']?.schema.$ref,
      '#/components/schemas/ThreadList',
    );
    assert.deepEqual(
      list.parameters?.map((p) => p.name),
      ['limit', 'cursor'],
    );
    const messages = operation<Op>(doc, '/threads/{id}/messages', 'get');
    assert.equal(
      messages.responses['200']?.content?.['application/json']?.schema.$ref,
      '#/components/schemas/MessageList',
    );
    const patch = operation<Op>(doc, '/threads/{id}', 'patch');
    assert.equal(
      patch.requestBody?.content['application/json']?.schema.$ref,
      '#/components/schemas/ThreadPatch',
    );
    const remove = operation<Op>(doc, '/threads/{id}', 'delete');
    assert.ok(remove.responses['204']);
    assert.match(remove.responses['409']?.description ?? '', /turn_in_progress/);
    const cancel = operation<Op>(doc, '/threads/{id}/turn', 'delete');
    assert.equal(
      cancel.responses['202']?.content?.['application/json']?.schema.$ref,
      '#/components/schemas/Turn',
    );
    assert.match(cancel.responses['409']?.description ?? '', /no_turn_running/);
    for (const [key, op] of agentOps) {
      assert.ok(op.responses['401'] && op.responses['503'], key);
      if (key !== 'get /threads' && key !== 'post /threads')
        assert.match(op.responses['404']?.description ?? '', /thread_not_found/, key);
    }
  });
});

describe('defineRoute()', () => {
  it('rejects params that do not match the path template', () => {
    const { defineRoute } = createRouteRegistry();
    assert.throws(
      () =>
        defineRoute({
          method: 'get',
          path: '/a/:id',
          operationId: 'getA',
          summary: 'x',
          responses: { 200: { description: 'ok' } },
        }),
      /params declare \[\] but the path has \[id\]/,
    );
  });

  it('rejects a route defined twice', () => {
    const { defineRoute } = createRouteRegistry();
    const def = {
      method: 'get',
      path: '/a',
      operationId: 'getA',
      summary: 'x',
      responses: { 200: { description: 'ok' } },
    } as const;
    defineRoute(def);
    assert.throws(() => defineRoute(def), /defined twice/);
  });

  it('rejects two different schemas with one $id', () => {
    const { defineRoute, openApiDocument } = createRouteRegistry();
    defineRoute({
      method: 'get',
      path: '/a',
      operationId: 'getA',
      summary: 'a',
      responses: { 200: { description: 'ok', schema: Type.String({ $id: 'Same' }) } },
    });
    defineRoute({
      method: 'get',
      path: '/b',
      operationId: 'getB',
      summary: 'b',
      responses: { 200: { description: 'ok', schema: Type.Number({ $id: 'Same' }) } },
    });
    assert.throws(() => openApiDocument({ title: 't', version: '1' }), /share the \$id Same/);
  });

  it('documents alternative media types of one response, an optional body and tag descriptions', () => {
    const { defineRoute, openApiDocument } = createRouteRegistry();
    defineRoute({
      method: 'post',
      path: '/a',
      operationId: 'postA',
      summary: 'a',
      tags: ['t', 'u'],
      body: Type.Object({}),
      bodyOptional: true,
      responses: {
        200: {
          description: 'ok',
          contentType: 'text/event-stream',
          schema: Type.String(),
          alternatives: { 'application/json': Type.Number() },
        },
      },
    });
    const doc = openApiDocument({ title: 't', version: '1', tagDescriptions: { t: 'about t' } });
    const op = doc.paths['/a']?.post as {
      requestBody: { required: boolean };
      responses: { 200: { content: Record<string, unknown> } };
    };
    assert.equal(op.requestBody.required, false);
    assert.deepEqual(op.responses[200].content, {
      'text/event-stream': { schema: { type: 'string' } },
      'application/json': { schema: { type: 'number' } },
    });
    assert.deepEqual(doc.tags, [{ name: 't', description: 'about t' }, { name: 'u' }]);
  });
});

describe('assertRouterCovered(router, document)', () => {
  const doc = gatewayOpenApiDocument();

  it('passes for a router serving exactly the catalog', () => {
    assertRouterCovered(catalogRouter(), doc, { exact: true });
  });

  it("passes for the gateway's own router (every route it mounts is documented)", () => {
    // Registering routes only reads the config, the rate-limit middleware factory and the metrics registry.
    const passthrough = async (_ctx: unknown, next: () => Promise<void>) => next();
    const deps = {
      config: loadGatewayConfig({}),
      limits: { middleware: () => passthrough, budgets: async () => ({}), rejections: () => 0 },
      metrics: createMetrics({ defaultMetrics: false }),
    } as unknown as AppDeps;
    assertRouterCovered(createRouter(deps), doc, { exact: true });
  });

  it('fails for an undocumented route, naming it', () => {
    const router = catalogRouter();
    router.get('/undocumented/:x', () => {});
    router.post('/healthz', () => {});
    assert.throws(
      () => assertRouterCovered(router, doc),
      (err: Error) =>
        /GET \/undocumented\/:x is mounted but not documented/.test(err.message) &&
        /POST \/healthz is mounted but not documented/.test(err.message),
    );
  });

  it('with exact, fails for a documented route nothing serves', () => {
    const router = new Router();
    router.get('/healthz', () => {});
    assert.throws(
      () => assertRouterCovered(router, doc, { exact: true }),
      /DELETE \/tasks\/\{id\} is documented but not mounted/,
    );
  });
});

describe('GET /openapi.json and GET /docs', () => {
  let url: string;
  let server: ReturnType<typeof createServer>;
  const doc: OpenApiDocument = gatewayOpenApiDocument();
  before(async () => {
    const app = new Koa();
    const router = new Router();
    registerOpenApiRoutes(router, () => doc);
    app.use(router.routes());
    server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('serves the document as JSON', async () => {
    const res = await fetch(`${url}/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), doc);
  });

  it('serves an HTML page that loads nothing from another origin', async () => {
    const res = await fetch(`${url}/docs`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /connect-src 'self'/);
    const html = await res.text();
    assert.match(html, /fetch\('\.\/openapi\.json'\)/);
    assert.doesNotMatch(html, /<script[^>]*\bsrc=/i);
    assert.doesNotMatch(html, /<link[^>]*\bhref=/i);
    assert.doesNotMatch(html, /https?:\/\//);
  });
});
