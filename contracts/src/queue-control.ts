// What operators and workers exchange about a queue (docs/admin-api.md): its pause state, kept in
// the JetStream key-value bucket `<stream>_CONTROL` (one key per queue), and the heartbeat each
// worker process writes to the Redis hash `workers:{<queue>}`. Both are read by processes that did
// not write them, so both are validated on read.
import { type Static, Type } from '@sinclair/typebox';

export const QueuePause = Type.Object(
  {
    paused: Type.Boolean(),
    /** The admin who changed it (the JWT `sub`). */
    by: Type.String({ maxLength: 255 }),
    at: Type.String({ maxLength: 64 }),
    reason: Type.String({ maxLength: 500 }),
  },
  { additionalProperties: false },
);
export type QueuePause = Static<typeof QueuePause>;

export const WorkerHeartbeat = Type.Object(
  {
    /** `<hostname>:<pid>`, as in the `started` event. */
    id: Type.String({ maxLength: 300 }),
    slots: Type.Integer({ minimum: 0 }),
    busy: Type.Integer({ minimum: 0 }),
    paused: Type.Boolean(),
    /** Epoch milliseconds of this heartbeat. */
    at: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type WorkerHeartbeat = Static<typeof WorkerHeartbeat>;
