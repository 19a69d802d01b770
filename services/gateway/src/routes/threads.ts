// The agent API (docs/agent.md): threads, their messages, and turns. POST /threads/{id}/messages
// runs a turn and streams its events (or answers the finished turn as JSON); GET
// /threads/{id}/turn/events resumes that stream from Last-Event-ID on any gateway. Every route
// answers 404 for a thread that is not the caller's, exactly as for an unknown id.
import type Router from '@koa/router';
import {
  isFinalTurnEvent,
  MessagePost,
  ThreadCreate,
  ThreadPatch,
  type Turn,
  type TurnResult,
} from '@neuroagent/contracts';
import { createValidator } from '@neuroagent/platform';
import type { Context } from 'koa';
import type { AgentDeps } from '../agent/agent-deps.ts';
import { parseTurnEntry } from '../agent/turn-events.ts';
import type { AppDeps } from '../deps.ts';
import { openEventStream } from '../event-stream.ts';
import { HttpError } from '../http-error.ts';
import { parseBody } from '../json-body.ts';
import { CHAT_ROUTE } from '../rate-limit/settings.ts';

export type ThreadRouteDeps = Pick<AppDeps, 'config' | 'limits' | 'hub'> & { agent: AgentDeps };

const createBody = createValidator(ThreadCreate);
const patchBody = createValidator(ThreadPatch);
const messageBody = createValidator(MessagePost);

/** A resumed stream of a turn whose gateway died ends this long after the turn's deadline. */
const STREAM_DEADLINE_SLACK_MS = 5_000;
const STREAM_ID_RE = /^\d{1,20}-\d{1,20}$/;

function one(value: unknown): string | undefined {
  return (Array.isArray(value) ? value[0] : value) as string | undefined;
}

function pageQuery(ctx: Context): { limit?: number; cursor?: string } {
  const rawLimit = one(ctx.query.limit);
  const cursor = one(ctx.query.cursor);
  const limit = rawLimit === undefined ? undefined : Number(rawLimit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 100)) {
    throw new HttpError(400, 'invalid_request', 'invalid query parameters', {
      details: [{ path: '/limit', message: 'expected an integer from 1 to 100' }],
    });
  }
  return { ...(limit === undefined ? {} : { limit }), ...(cursor ? { cursor } : {}) };
}

const notFound = (id: string) => new HttpError(404, 'thread_not_found', `no thread ${id}`);

export function registerThreadRoutes(router: Router, deps: ThreadRouteDeps): void {
  const { agent } = deps;
  const maxBody = deps.config.http.max_body_kb * 1024;

  router.post('/threads', async (ctx) => {
    // A body is optional: POST /threads with none makes an untitled thread.
    const hasBody = Boolean(ctx.request.length) || ctx.get('transfer-encoding') !== '';
    const body = hasBody ? await parseBody(ctx, createBody, maxBody) : {};
    const thread = await agent.threads.create(ctx.state.userId, body.title);
    ctx.status = 201;
    ctx.set('location', `/threads/${thread.id}`);
    ctx.body = thread;
  });

  router.get('/threads', async (ctx) => {
    ctx.body = await agent.threads.list(ctx.state.userId, pageQuery(ctx));
  });

  router.get('/threads/:id', async (ctx) => {
    const thread = await agent.threads.get(ctx.state.userId, ctx.params.id ?? '');
    if (!thread) throw notFound(ctx.params.id ?? '');
    ctx.body = thread;
  });

  router.patch('/threads/:id', async (ctx) => {
    const body = await parseBody(ctx, patchBody, maxBody);
    const thread = await agent.threads.rename(ctx.state.userId, ctx.params.id ?? '', body.title);
    if (!thread) throw notFound(ctx.params.id ?? '');
    ctx.body = thread;
  });

  router.delete('/threads/:id', async (ctx) => {
    const id = ctx.params.id ?? '';
    const outcome = await agent.threads.remove(ctx.state.userId, id);
    if (outcome === 'not_found') throw notFound(id);
    if (outcome === 'busy') {
      throw new HttpError(
        409,
        'turn_in_progress',
        'a turn of this thread is running; cancel it first (DELETE /threads/{id}/turn)',
      );
    }
    ctx.status = 204;
  });

  router.get('/threads/:id/messages', async (ctx) => {
    const page = await agent.threads.messages(ctx.state.userId, ctx.params.id ?? '', pageQuery(ctx));
    if (!page) throw notFound(ctx.params.id ?? '');
    ctx.body = page;
  });

  router.post('/threads/:id/messages', deps.limits.middleware(CHAT_ROUTE), async (ctx) => {
    const threadId = ctx.params.id ?? '';
    const body = await parseBody(ctx, messageBody, maxBody);
    const maxBytes = agent.settings.max_message_kb * 1024;
    const bytes = Buffer.byteLength(body.content, 'utf8');
    if (bytes > maxBytes) {
      throw new HttpError(
        413,
        'message_too_large',
        `the message is ${bytes} bytes, over the ${maxBytes}-byte limit`,
        {
          details: [
            { path: '/content', message: `limit ${maxBytes} bytes (NEUROAGENT_AGENT__MAX_MESSAGE_KB)` },
          ],
        },
      );
    }
    if (!agent.model.configured) {
      throw new HttpError(
        503,
        'llm_not_configured',
        'no model server is configured: set NEUROAGENT_LLM__API_KEY (and NEUROAGENT_LLM__BASE_URL for a server other than OpenAI)',
      );
    }
    const wantsJson = ctx.accepts('text/event-stream', 'application/json') === 'application/json';
    const handle = await agent.runner.begin(ctx.state.userId, threadId, body.content, ctx.state.requestId);
    const { turn } = handle.started;
    ctx.set('x-turn-id', turn.id);
    // The client that started the turn went away before it ended: the runner waits for a resume.
    let ended = false;
    void handle.done.then(() => {
      ended = true;
    });
    // The response's close, not the request's: the request closes once its body is read.
    ctx.res.once('close', () => {
      if (!ended) handle.detach();
    });
    if (wantsJson) {
      const finished = await handle.done;
      const result: TurnResult = { turn: finished.turn, messages: await agent.threads.turnMessages(turn.id) };
      ctx.status = 200;
      ctx.body = result;
      return;
    }
    streamTurn(ctx, deps, turn, '0-0', false);
  });

  router.delete('/threads/:id/turn', async (ctx) => {
    const threadId = ctx.params.id ?? '';
    if (!(await agent.threads.get(ctx.state.userId, threadId))) throw notFound(threadId);
    const turn = await agent.threads.activeTurn(ctx.state.userId, threadId);
    if (!turn) throw new HttpError(409, 'no_turn_running', `no turn of thread ${threadId} is running`);
    if (!agent.runner.stop(turn.id, 'cancelled')) {
      // Its gateway is gone when its deadline has passed: end it here. Otherwise ask that gateway.
      const deadline = Date.parse(turn.started_at) + agent.settings.turn_timeout_s * 1000;
      if (deadline <= Date.now()) {
        await agent.threads.abandon(turn.id, {
          status: 'cancelled',
          error: { code: 'cancelled', message: 'the turn was cancelled' },
        });
      } else {
        await agent.control.request(turn.id);
      }
    }
    ctx.status = 202;
    // As it is now: ended when this gateway ran it, still running when another one stops it.
    ctx.body = (await agent.threads.turn(ctx.state.userId, turn.id)) ?? turn;
  });

  router.get('/threads/:id/turn/events', async (ctx) => {
    const threadId = ctx.params.id ?? '';
    const thread = await agent.threads.get(ctx.state.userId, threadId);
    if (!thread) throw notFound(threadId);
    const turnId = one(ctx.query.turn_id);
    const turn = turnId ? await agent.threads.turn(ctx.state.userId, turnId) : thread.turn;
    if (!turn || turn.thread_id !== threadId) {
      throw new HttpError(
        404,
        'turn_not_found',
        turnId ? `no turn ${turnId} in thread ${threadId}` : 'this thread has no turn yet',
      );
    }
    if (turn.status !== 'running' && (await agent.redis.exists(agent.names.turnEventsKey(turn.id))) === 0) {
      throw new HttpError(
        410,
        'turn_events_expired',
        `the events of turn ${turn.id} are gone (NEUROAGENT_AGENT__EVENTS_TTL_S); GET /threads/${threadId}/messages has the turn`,
      );
    }
    const from = ctx.get('last-event-id');
    streamTurn(ctx, deps, turn, STREAM_ID_RE.test(from) ? from : '0-0', true);
  });
}

/**
 * Answers with the turn's events as Server-Sent Events, from the entry after `from`, ending after
 * the final one. `watch`: this stream keeps the turn alive for the disconnect grace (a resume).
 */
function streamTurn(ctx: Context, deps: ThreadRouteDeps, turn: Turn, from: string, watch: boolean): void {
  const { agent } = deps;
  const sse = openEventStream(ctx);
  if (watch) sse.onEnd(agent.events.watch(turn.id, agent.settings.disconnect_grace_s * 1000));
  const deadline = Date.parse(turn.started_at) + agent.settings.turn_timeout_s * 1000;
  const giveUp = setTimeout(sse.end, Math.max(0, deadline - Date.now()) + STREAM_DEADLINE_SLACK_MS);
  sse.onEnd(() => clearTimeout(giveUp));
  const unsubscribe = deps.hub.subscribeKey(
    agent.names.turnEventsKey(turn.id),
    from,
    (id, fields) => {
      const event = parseTurnEntry(id, fields);
      if (!event) return;
      sse.send(event.id, event.type, event.data);
      if (isFinalTurnEvent(event.type)) sse.end();
    },
    sse.end,
  );
  if (sse.ended) unsubscribe();
  else sse.onEnd(unsubscribe);
}
