// echo on echo_q: a built-in no-op task. It returns its input, so the cost of a run is the cost of
// the task machinery alone (gateway, JetStream, worker, Redis): the benchmark's product path and
// an operator's end-to-end probe of a deployment. `delay_ms` holds a slot for a while, which makes
// it the load of the delivery-guarantee tests too.
import { type Static, Type } from '@sinclair/typebox';
import { defineTask } from './task-definition.ts';

export const ECHO_TASK = 'echo';
export const ECHO_QUEUE = 'echo_q';
/** Longest delay an echo may ask for; anything longer is a mistake, not a probe. */
export const ECHO_MAX_DELAY_MS = 600_000;

export const EchoInput = Type.Object(
  {
    payload: Type.Optional(
      Type.Unknown({ description: 'Any JSON value, returned unchanged (the gateway caps the body size)' }),
    ),
    delay_ms: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: ECHO_MAX_DELAY_MS,
        description: 'Hold the slot this long before answering; cancellation and shutdown cut it short',
      }),
    ),
  },
  { additionalProperties: false, $id: 'EchoInput' },
);
export type EchoInput = Static<typeof EchoInput>;

export const EchoOutput = Type.Object(
  {
    payload: Type.Optional(Type.Unknown()),
    attempt: Type.Integer({ minimum: 1, description: 'Delivery that produced this result' }),
  },
  { additionalProperties: false, $id: 'EchoOutput' },
);
export type EchoOutput = Static<typeof EchoOutput>;

export const echo = defineTask({
  name: ECHO_TASK,
  queue: ECHO_QUEUE,
  description:
    'Return the payload after an optional delay: a probe and benchmark of the task machinery alone',
  input: EchoInput,
  output: EchoOutput,
  failureCodes: [],
  // A no-op tool: the probe of the agent loop itself (the agent benchmark enables it with
  // NEUROAGENT_AGENT__TOOLS); off by default, since a model has no use for it.
  agent: {
    description:
      'Return the payload unchanged. A diagnostic tool: call it only when the user asks for an echo.',
  },
});
