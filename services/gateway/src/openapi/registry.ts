// The route-schema registry: each HTTP route is declared once with TypeBox schemas, and the
// OpenAPI 3.1 document is built from those declarations. Every operation names its operationId
// (runPython, getTask, …): generated clients call them by that name. Must not import app.ts or
// any route module: the app imports this, never the other way round.
import type Router from '@koa/router';
import { ErrorBody } from '@neuroagent/contracts';
import type { TSchema } from '@sinclair/typebox';

// ------------------------------------------------------------------ Route definitions

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export interface ResponseSpec {
  description: string;
  /** JSON Schema of the body. Omitted on a 4xx/5xx response, it is ErrorBody. */
  schema?: TSchema;
  /** Media type of the body; application/json unless set. */
  contentType?: string;
  /**
   * More media types of the same status, media type → body schema: the route answers one of
   * them by the request's Accept (e.g. an SSE stream, or application/json for the same result).
   */
  alternatives?: Record<string, TSchema>;
  /** Response header name → description. */
  headers?: Record<string, string>;
}

export interface RouteDefinition {
  method: HttpMethod;
  /** Koa-style template, e.g. /tasks/:id. */
  path: string;
  summary: string;
  description?: string;
  /** camelCase verb and noun, e.g. getTask: what generated clients name the call. */
  operationId: string;
  tags?: string[];
  /** Type.Object of the path parameters; its keys must be exactly the template's `:names`. */
  params?: TSchema;
  /** Type.Object of the query parameters. */
  query?: TSchema;
  /** Type.Object of the request headers the route reads (lower-case names). */
  headers?: TSchema;
  /** JSON request body. */
  body?: TSchema;
  /** The body may be left out (the route then uses its defaults). */
  bodyOptional?: boolean;
  responses: Record<number, ResponseSpec>;
  /** True when the route takes a bearer JWT. */
  security?: boolean;
}

export interface DocumentOptions {
  title: string;
  version: string;
  description?: string;
  servers?: { url: string; description?: string }[];
  /** Tag name → what its operations are about; tags not named here are listed bare. */
  tagDescriptions?: Record<string, string>;
}

export interface RouteRegistry {
  defineRoute(def: RouteDefinition): RouteDefinition;
  routeDefinitions(): readonly RouteDefinition[];
  openApiDocument(opts: DocumentOptions): OpenApiDocument;
}

/** The generated document. Typed loosely: it is data for clients, not for this code. */
export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  servers?: { url: string; description?: string }[];
  tags?: { name: string; description?: string }[];
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const PARAM_RE = /:([A-Za-z_][A-Za-z0-9_]*)/g;
const SECURITY_SCHEME = 'bearerAuth';

// A final `/*name` (one or more segments, slashes included) is documented as the parameter {name}.
const WILDCARD_RE = /\/\*([A-Za-z_][A-Za-z0-9_]*)$/;

/** `/tasks/:id` → `/tasks/{id}`, `/ui/*path` → `/ui/{path}`. Only these two forms are supported. */
export function toOpenApiPath(koaPath: string): string {
  const plain = koaPath.replace(WILDCARD_RE, '/:$1');
  if (/[*()?{}]/.test(plain)) {
    throw new Error(`route ${koaPath}: only plain :name parameters and a final /*name can be documented`);
  }
  return plain.replace(PARAM_RE, '{$1}');
}

function pathParamNames(koaPath: string): string[] {
  return [...koaPath.replace(WILDCARD_RE, '/:$1').matchAll(PARAM_RE)].map((m) => m[1] as string);
}

/** TypeBox schemas carry symbol keys (Kind, Optional); a JSON round trip leaves the JSON Schema. */
function toJson(schema: TSchema): JsonObject {
  return JSON.parse(JSON.stringify(schema)) as JsonObject;
}

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ------------------------------------------------------------------ Schema hoisting

/**
 * Collects every sub-schema that has a `$id` into components.schemas and leaves a `$ref` in its
 * place. The hoisted copy MUST lose its `$id`: in 3.1 a `$id` starts a new base URI, and the
 * `#/components/...` refs inside it would then resolve against that resource, not the document.
 */
function createHoister(components: Record<string, Json>) {
  const seen = new Map<string, string>();

  function hoist(node: Json): Json {
    if (Array.isArray(node)) return node.map(hoist);
    if (!isObject(node)) return node;
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(node)) {
      if (key !== '$id') out[key] = hoist(value);
    }
    const id = node.$id;
    if (typeof id !== 'string') return out;
    if (!/^[A-Za-z0-9._-]+$/.test(id)) throw new Error(`schema $id ${id} is not a component name`);
    const text = JSON.stringify(out);
    const previous = seen.get(id);
    if (previous !== undefined && previous !== text) {
      throw new Error(`two different schemas share the $id ${id}`);
    }
    seen.set(id, text);
    components[id] = out;
    return { $ref: `#/components/schemas/${id}` };
  }

  return hoist;
}

function parameters(
  where: 'path' | 'query' | 'header',
  schema: TSchema | undefined,
  hoist: (node: Json) => Json,
): JsonObject[] {
  if (!schema) return [];
  const json = toJson(schema);
  const props = json.properties;
  if (json.type !== 'object' || !isObject(props)) {
    throw new Error(`${where} parameters must be a Type.Object`);
  }
  const required = Array.isArray(json.required) ? json.required : [];
  return Object.entries(props).map(([name, prop]) => {
    const param: JsonObject = {
      name,
      in: where,
      required: where === 'path' || required.includes(name),
    };
    if (isObject(prop) && typeof prop.description === 'string') param.description = prop.description;
    param.schema = hoist(prop);
    return param;
  });
}

// ------------------------------------------------------------------ Registry

export function createRouteRegistry(): RouteRegistry {
  const routes: RouteDefinition[] = [];

  function defineRoute(def: RouteDefinition): RouteDefinition {
    const key = `${def.method.toUpperCase()} ${def.path}`;
    if (routes.some((r) => r.method === def.method && r.path === def.path)) {
      throw new Error(`${key} is defined twice`);
    }
    toOpenApiPath(def.path);
    const names = pathParamNames(def.path).sort();
    const declared = def.params ? Object.keys(toJson(def.params).properties ?? {}).sort() : [];
    if (names.join() !== declared.join()) {
      throw new Error(`${key}: params declare [${declared}] but the path has [${names}]`);
    }
    if (Object.keys(def.responses).length === 0) throw new Error(`${key} has no responses`);
    if (!/^[a-z][A-Za-z0-9]*$/.test(def.operationId)) {
      throw new Error(`${key}: operationId ${def.operationId} is not camelCase`);
    }
    routes.push(def);
    return def;
  }

  function openApiDocument(opts: DocumentOptions): OpenApiDocument {
    const schemas: Record<string, Json> = {};
    const hoist = createHoister(schemas);
    const errorRef = hoist(toJson(ErrorBody));
    const paths: Record<string, Record<string, unknown>> = {};
    const operationIds = new Set<string>();
    const tags = new Set<string>();

    for (const def of routes) {
      const { operationId } = def;
      if (operationIds.has(operationId)) throw new Error(`operationId ${operationId} is used twice`);
      operationIds.add(operationId);
      for (const tag of def.tags ?? []) tags.add(tag);

      const responses: JsonObject = {};
      for (const [status, spec] of Object.entries(def.responses)) {
        const response: JsonObject = { description: spec.description };
        const schema = spec.schema ? hoist(toJson(spec.schema)) : Number(status) >= 400 ? errorRef : null;
        const content: JsonObject = {};
        if (schema) content[spec.contentType ?? 'application/json'] = { schema };
        for (const [type, alternative] of Object.entries(spec.alternatives ?? {})) {
          if (content[type])
            throw new Error(`${def.method} ${def.path} ${status}: ${type} is documented twice`);
          content[type] = { schema: hoist(toJson(alternative)) };
        }
        if (Object.keys(content).length) response.content = content;
        if (spec.headers) {
          response.headers = Object.fromEntries(
            Object.entries(spec.headers).map(([name, description]) => [
              name,
              { description, schema: { type: 'string' } },
            ]),
          );
        }
        responses[status] = response;
      }

      const operation: JsonObject = { operationId, summary: def.summary };
      if (def.description) operation.description = def.description;
      if (def.tags?.length) operation.tags = def.tags;
      const params = [
        ...parameters('path', def.params, hoist),
        ...parameters('query', def.query, hoist),
        ...parameters('header', def.headers, hoist),
      ];
      if (params.length) operation.parameters = params;
      if (def.body) {
        operation.requestBody = {
          required: !def.bodyOptional,
          content: { 'application/json': { schema: hoist(toJson(def.body)) } },
        };
      }
      operation.responses = responses;
      if (def.security) operation.security = [{ [SECURITY_SCHEME]: [] }];

      const docPath = toOpenApiPath(def.path);
      paths[docPath] = { ...paths[docPath], [def.method]: operation };
    }

    const doc: OpenApiDocument = {
      openapi: '3.1.0',
      info: {
        title: opts.title,
        version: opts.version,
        ...(opts.description ? { description: opts.description } : {}),
      },
      paths,
      components: {
        schemas,
        securitySchemes: {
          [SECURITY_SCHEME]: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        },
      },
    };
    if (opts.servers?.length) doc.servers = opts.servers;
    if (tags.size) {
      doc.tags = [...tags].sort().map((name) => {
        const description = opts.tagDescriptions?.[name];
        return description ? { name, description } : { name };
      });
    }
    return doc;
  }

  return { defineRoute, routeDefinitions: () => routes, openApiDocument };
}

// ------------------------------------------------------------------ Router coverage

/**
 * Throws when a route mounted on `router` is not in `document` (HEAD is implied by GET and
 * ignored; `router.use()` layers have no methods and are skipped). With `exact`, also throws for
 * documented operations that no layer serves.
 */
export function assertRouterCovered(
  router: Router,
  document: Pick<OpenApiDocument, 'paths'>,
  { exact = false }: { exact?: boolean } = {},
): void {
  const problems: string[] = [];
  const mounted = new Set<string>();
  for (const layer of router.stack) {
    const methods = layer.methods.filter((m) => m !== 'HEAD');
    if (methods.length === 0) continue;
    if (typeof layer.path !== 'string') {
      problems.push(`${methods.join(',')} ${String(layer.path)} is a RegExp route and cannot be documented`);
      continue;
    }
    let docPath: string;
    try {
      docPath = toOpenApiPath(layer.path);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    for (const method of methods) {
      mounted.add(`${method} ${docPath}`);
      if (!document.paths[docPath]?.[method.toLowerCase()]) {
        problems.push(`${method} ${layer.path} is mounted but not documented`);
      }
    }
  }
  if (exact) {
    for (const [path, item] of Object.entries(document.paths)) {
      for (const method of Object.keys(item)) {
        if (!(HTTP_METHODS as readonly string[]).includes(method)) continue;
        if (!mounted.has(`${method.toUpperCase()} ${path}`)) {
          problems.push(`${method.toUpperCase()} ${path} is documented but not mounted`);
        }
      }
    }
  }
  if (problems.length) throw new Error(`router and OpenAPI document disagree:\n  ${problems.join('\n  ')}`);
}

// ------------------------------------------------------------------ The gateway's registry

const gateway = createRouteRegistry();

/** Declares a gateway route (routes-catalog.ts holds every call). */
export const defineRoute = gateway.defineRoute;
export const routeDefinitions = gateway.routeDefinitions;
export const openApiDocument = gateway.openApiDocument;
