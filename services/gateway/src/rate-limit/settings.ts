// RateLimitSettings: the `rate_limit` fragment of GatewayConfig (NEUROAGENT_RATE_LIMIT__*). One
// points/window pair per limited route: `submit` for POST /tasks, and one per tool route, named
// after its tool id with its default budget taken from the task definition. Imports only TypeBox
// and the task registry.
import { TOOL_TASKS } from '@neuroagent/contracts';
import { type Static, type TInteger, type TObject, Type } from '@sinclair/typebox';

/** POST /tasks: the budget every task type shares when submitted asynchronously. */
export const SUBMIT_ROUTE = 'submit';
/** POST /threads/{id}/messages: agent turns, each of which calls the model. */
export const CHAT_ROUTE = 'chat';

/** Every rate-limited route: each tool route (by tool id), then POST /tasks, then chat turns. */
export const RATE_LIMITED_ROUTES: readonly string[] = [
  ...TOOL_TASKS.map((t) => t.tool.id),
  SUBMIT_ROUTE,
  CHAT_ROUTE,
];
export type RateLimitedRoute = string;

const SUBMIT_BUDGET = {
  points: 200,
  windowS: 3600,
  why:
    'Asynchronous submissions are cheap to send in bulk, so this is the backstop against queue flooding (the ' +
    "original had no queue-depth control at all); the original's only limit was chat at 20 per 24 h, which " +
    'bounds LLM spend, not tool use',
};

const CHAT_BUDGET = {
  points: 20,
  windowS: 86400,
  why:
    "The original's chat limit (20 per 24 h): each turn calls the model, so this bounds LLM spend; the tool " +
    'calls of a turn count against `submit` as well',
};

function budgetSettings(
  route: string,
  what: string,
  budget: { points: number; windowS: number; why: string },
) {
  return {
    [`${route}_points`]: Type.Integer({
      default: budget.points,
      minimum: 0,
      description: `${what} per user per window. ${budget.why}`,
    }),
    [`${route}_window_s`]: Type.Integer({
      default: budget.windowS,
      minimum: 1,
      description: `Window of ${route}_points, in seconds, fixed from the first call in the window`,
    }),
  };
}

const FIXED = {
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
};

/** The derived `<route>_points` and `<route>_window_s` settings, which TypeBox cannot name statically. */
type BudgetProperties = { [K in `${string}_points` | `${string}_window_s`]: TInteger };

export const RateLimitSettings = Type.Object({
  ...FIXED,
  ...Object.assign(
    {},
    ...TOOL_TASKS.map((t) => budgetSettings(t.tool.id, `POST ${t.tool.path} calls`, t.tool.rateLimit)),
    budgetSettings(SUBMIT_ROUTE, 'POST /tasks submissions (and agent tool calls)', SUBMIT_BUDGET),
    budgetSettings(CHAT_ROUTE, 'Agent turns (POST /threads/{id}/messages)', CHAT_BUDGET),
  ),
}) as unknown as TObject<typeof FIXED & BudgetProperties>;
export type RateLimitSettings = Static<typeof RateLimitSettings>;

/** The points and window of one limited route. */
export function budgetOf(
  settings: RateLimitSettings,
  route: RateLimitedRoute,
): { points: number; windowS: number } {
  const points = settings[`${route}_points`];
  const windowS = settings[`${route}_window_s`];
  if (typeof points !== 'number' || typeof windowS !== 'number') {
    throw new Error(`no rate-limit settings for route ${route}`);
  }
  return { points, windowS };
}
