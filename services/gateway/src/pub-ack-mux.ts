// JetStream publishes with their PubAcks routed through one subscription of the gateway's own. A
// JetStream publish is a core NATS message with a reply subject: the stream leader answers there
// with the PubAck (or an API error), and the server answers "503, no responders" at once when no
// stream stores the subject. The client library's request() does the same but builds a request
// object, a promise, a timer and two Error objects per call; at thousands of publishes a second
// that was a visible share of the gateway's CPU per task. Here a publish costs one map entry and
// one timer, and errors are only built for the publishes that fail.
//
// The errors are the library's own: JetStreamApiError for an API error, errors.TimeoutError when
// nothing answered in time, and PublishNoRespondersError for "no responders", so the retry rules
// of jetstream-publish.ts read them the same way.
import { JetStreamApiError, type PubAck } from '@nats-io/jetstream';
import {
  createInbox,
  errors,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/nats-core';

/** No subscriber on the subject: no stream stores it, or its stream has no leader right now. */
export class PublishNoRespondersError extends Error {
  readonly code = 'no_responders';
  constructor(subject: string) {
    super(`no stream answered a publish on ${subject} (no responders)`);
    this.name = 'PublishNoRespondersError';
  }
}

/** The mux was closed (the gateway is stopping) before the PubAck came. */
export class PublishMuxClosedError extends Error {
  readonly code = 'publish_closed';
  constructor() {
    super('the publisher was closed before the stream answered');
    this.name = 'PublishMuxClosedError';
  }
}

export interface PubAckMux {
  /** Publishes with Nats-Msg-Id `msgID` and waits at most `timeoutMs` for the PubAck. */
  publish(
    subject: string,
    body: string | Uint8Array,
    opts: { msgID: string; headers: MsgHdrs; timeoutMs: number },
  ): Promise<PubAck>;
  /** Publishes waiting for their PubAck. */
  readonly pending: number;
  /** Unsubscribes; every publish still waiting fails with PublishMuxClosedError. */
  close(): void;
}

interface Waiting {
  subject: string;
  resolve(ack: PubAck): void;
  reject(err: unknown): void;
  timer: NodeJS.Timeout;
}

const MSG_ID_HEADER = 'Nats-Msg-Id';
const decoder = new TextDecoder();

/** An answer to a publish: its PubAck, or the error that the stream or the server gave. */
export function readPubAck(msg: Pick<Msg, 'data' | 'headers'>, subject: string): PubAck | Error {
  if (msg.data.length === 0 && msg.headers?.code === 503) return new PublishNoRespondersError(subject);
  let body: { stream?: unknown; seq?: unknown; duplicate?: unknown; domain?: unknown; error?: unknown };
  try {
    body = JSON.parse(decoder.decode(msg.data)) as typeof body;
  } catch {
    return new Error(`not a PubAck: ${decoder.decode(msg.data).slice(0, 200)}`);
  }
  if (body.error !== undefined && body.error !== null && typeof body.error === 'object') {
    return new JetStreamApiError(body.error as ConstructorParameters<typeof JetStreamApiError>[0]);
  }
  if (typeof body.stream !== 'string' || body.stream === '' || typeof body.seq !== 'number') {
    return new Error('invalid PubAck: no stream or sequence');
  }
  const ack: PubAck = { stream: body.stream, seq: body.seq, duplicate: body.duplicate === true };
  if (typeof body.domain === 'string') ack.domain = body.domain;
  return ack;
}

export function createPubAckMux(nc: NatsConnection, opts: { inboxPrefix?: string } = {}): PubAckMux {
  const inbox = createInbox(opts.inboxPrefix);
  const waiting = new Map<string, Waiting>();
  let next = 0;
  let closed = false;

  const sub: Subscription = nc.subscribe(`${inbox}.*`, {
    callback: (err, msg) => {
      if (err) return; // the subscription itself failed (e.g. closed): close() settles the rest
      const token = msg.subject.slice(inbox.length + 1);
      const w = waiting.get(token);
      if (w === undefined) return; // it timed out already: a late answer
      waiting.delete(token);
      clearTimeout(w.timer);
      const answer = readPubAck(msg, w.subject);
      if (answer instanceof Error) w.reject(answer);
      else w.resolve(answer);
    },
  });

  return {
    publish(subject, body, { msgID, headers, timeoutMs }) {
      if (closed) return Promise.reject(new PublishMuxClosedError());
      headers.set(MSG_ID_HEADER, msgID);
      const token = (next++).toString(36);
      return new Promise<PubAck>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(token);
          reject(new errors.TimeoutError());
        }, timeoutMs);
        waiting.set(token, { subject, resolve, reject, timer });
        try {
          nc.publish(subject, body, { reply: `${inbox}.${token}`, headers });
        } catch (err) {
          // The connection is closed, or the subject is invalid: nothing was sent.
          waiting.delete(token);
          clearTimeout(timer);
          reject(err);
        }
      });
    },
    get pending() {
      return waiting.size;
    },
    close() {
      if (closed) return;
      closed = true;
      sub.unsubscribe();
      for (const w of waiting.values()) {
        clearTimeout(w.timer);
        w.reject(new PublishMuxClosedError());
      }
      waiting.clear();
    },
  };
}
