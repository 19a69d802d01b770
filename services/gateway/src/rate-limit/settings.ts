// RateLimitSettings: the `rate_limit` fragment of GatewayConfig (NEUROAGENT_RATE_LIMIT__*). One
// points/window pair per limited route; the route ids are the keys of RATE_LIMITED_ROUTES.
// Leaf module: imports only TypeBox.
import { type Static, Type } from '@sinclair/typebox';

export const RateLimitSettings = Type.Object({
  disabled: Type.Boolean({
    default: false,
    description:
      'Turn rate limiting off: nothing is counted, x-ratelimit-* headers are -1 (as in the original)',
  }),
  key_prefix: Type.String({
    default: 'rl',
    pattern: '^[A-Za-z0-9_.:-]+$',
    description: 'Counters live at `<key_prefix>:<route>:<user>` in Redis',
  }),
  redis_down_policy: Type.Union([Type.Literal('insurance'), Type.Literal('fail_closed')], {
    default: 'insurance',
    description:
      'When Redis fails or is slower than redis_timeout_ms: `insurance` counts in process memory with the ' +
      'same limits (with N gateway replicas a user may get up to N× the limit), `fail_closed` answers 503 ' +
      'rate_limiter_unavailable. The original answered 500.',
  }),
  redis_timeout_ms: Type.Integer({
    default: 250,
    minimum: 10,
    maximum: 10000,
    description:
      'Longest wait for one rate-limit Redis call before the Redis-down policy applies (a hung Redis must ' +
      'not stall requests; a healthy one answers in about a millisecond)',
  }),
  run_python_points: Type.Integer({
    default: 100,
    minimum: 0,
    description:
      'POST /tools/run-python calls per user per window. The original left tools unlimited; 100/h caps a ' +
      'runaway agent loop while leaving an interactive session (a few calls per chat turn) untouched',
  }),
  run_python_window_s: Type.Integer({
    default: 3600,
    minimum: 1,
    description: 'Window of run_python_points, in seconds, fixed from the first call in the window',
  }),
  circuit_points: Type.Integer({
    default: 50,
    minimum: 0,
    description:
      'POST /tools/circuit-population-analysis calls per user per window. Unlimited in the original; lower ' +
      'than run_python because each analysis downloads and scans a circuit (minutes of worker time)',
  }),
  circuit_window_s: Type.Integer({
    default: 3600,
    minimum: 1,
    description: 'Window of circuit_points, in seconds, fixed from the first call in the window',
  }),
  submit_points: Type.Integer({
    default: 200,
    minimum: 0,
    description:
      'POST /tasks submissions per user per window. Asynchronous submissions are cheap to send in bulk, so ' +
      'this is the backstop against queue flooding (the original had no queue-depth control at all); the ' +
      "original's only limit was chat at 20 per 24 h, which bounds LLM spend, not tool use",
  }),
  submit_window_s: Type.Integer({
    default: 3600,
    minimum: 1,
    description: 'Window of submit_points, in seconds, fixed from the first call in the window',
  }),
});
export type RateLimitSettings = Static<typeof RateLimitSettings>;
