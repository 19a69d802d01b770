// The agent's settings (docs/agent.md): the model it calls (NEUROAGENT_LLM__*) and the limits of a
// turn (NEUROAGENT_AGENT__*). Imports only TypeBox and the task registry.
import { AGENT_TASKS } from '@neuroagent/contracts';
import { ConfigError } from '@neuroagent/platform';
import { type Static, Type } from '@sinclair/typebox';

export const LlmSettings = Type.Object({
  model: Type.String({
    default: 'gpt-5-mini',
    minLength: 1,
    description: "Chat model of the agent's turns (the original's default chat model)",
  }),
  base_url: Type.String({
    default: '',
    description: 'OpenAI-compatible API base URL ending in /v1; empty uses OpenAI',
  }),
  api_key: Type.String({
    default: '',
    description:
      'API key of the model server; without it (and without a base URL) turns answer 503 llm_not_configured',
  }),
  timeout_s: Type.Number({
    default: 120,
    minimum: 1,
    maximum: 3600,
    description:
      'Longest one model call may take, its whole stream included; then the turn fails with llm_unavailable',
  }),
  max_retries: Type.Integer({
    default: 2,
    minimum: 0,
    maximum: 10,
    description: "The SDK's retries of a model call that failed before streaming (429, 5xx, connection)",
  }),
  max_reply_kb: Type.Integer({
    default: 256,
    minimum: 1,
    maximum: 16384,
    description:
      'Largest model reply (text and tool-call arguments) read from one stream; beyond it the call is stopped and the turn fails with llm_reply_too_large',
  }),
  max_completion_tokens: Type.Integer({
    default: 0,
    minimum: 0,
    description: 'Cap on the tokens of one model reply; 0 leaves it to the model',
  }),
});
export type LlmSettings = Static<typeof LlmSettings>;

const DEFAULT_TOOLS = AGENT_TASKS.map((t) => t.name).filter((name) => name !== 'echo');

export const DEFAULT_SYSTEM_PROMPT =
  'You are a helpful assistant for neuroscience research. Answer concisely. Use the tools when a question ' +
  'needs computation or circuit data; each tool call runs as a task and its result comes back as JSON. When a ' +
  'tool fails, say so and explain what went wrong rather than guessing a result.';

export const AgentSettings = Type.Object({
  tools: Type.String({
    default: DEFAULT_TOOLS.join(','),
    description: `Comma-separated tasks the model may call, among: ${AGENT_TASKS.map((t) => t.name).join(', ')}; empty: none`,
  }),
  system_prompt: Type.String({
    default: DEFAULT_SYSTEM_PROMPT,
    description: 'The system message that opens every model call',
  }),
  max_tool_rounds: Type.Integer({
    default: 10,
    minimum: 0,
    maximum: 100,
    description:
      "Model calls per turn that may ask for tools (the original's AGENT__MAX_TURNS); then the model must answer without tools",
  }),
  max_parallel_tool_calls: Type.Integer({
    default: 10,
    minimum: 1,
    maximum: 100,
    description:
      'Tool calls one model reply may make; the calls beyond it are answered with too_many_tool_calls instead of running',
  }),
  turn_timeout_s: Type.Integer({
    default: 900,
    minimum: 1,
    maximum: 86400,
    description:
      'Longest a turn may run, model calls and tool tasks together; then its tasks are cancelled and it fails with turn_timeout',
  }),
  tool_timeout_s: Type.Integer({
    default: 600,
    minimum: 1,
    maximum: 86400,
    description:
      'Longest the turn waits for one tool task; then the task is cancelled and the model reads tool_timeout',
  }),
  max_tool_result_kb: Type.Integer({
    default: 32,
    minimum: 1,
    maximum: 1024,
    description:
      'Largest tool result fed back to the model, in KiB of JSON; a longer one is cut and marked truncated',
  }),
  max_message_kb: Type.Integer({
    default: 32,
    minimum: 1,
    maximum: 512,
    description: 'Largest user message, in KiB of UTF-8; a longer one gets 413 message_too_large',
  }),
  max_history_messages: Type.Integer({
    default: 200,
    minimum: 1,
    maximum: 10000,
    description: "Most of the thread's earlier messages sent to the model with a new turn (the newest ones)",
  }),
  disconnect_grace_s: Type.Number({
    default: 30,
    minimum: 0,
    maximum: 3600,
    description:
      'How long a turn keeps running after its last client stream closed, waiting for a resume with Last-Event-ID; then it is cancelled (0: at once)',
  }),
  events_ttl_s: Type.Integer({
    default: 3600,
    minimum: 10,
    maximum: 604800,
    description: "How long a finished turn's events stay in Redis for a late resume",
  }),
});
export type AgentSettings = Static<typeof AgentSettings>;

/** The tool names of NEUROAGENT_AGENT__TOOLS, each checked against the agent tasks. */
export function enabledTools(settings: Pick<AgentSettings, 'tools'>): string[] {
  const names = settings.tools
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const known = new Set(AGENT_TASKS.map((t) => t.name));
  const unknown = names.filter((n) => !known.has(n as (typeof AGENT_TASKS)[number]['name']));
  if (unknown.length > 0) {
    throw new ConfigError(
      `NEUROAGENT_AGENT__TOOLS names tasks that are not agent tools: ${unknown.join(', ')}`,
      [{ path: 'NEUROAGENT_AGENT__TOOLS', message: `expected some of: ${[...known].join(', ')}` }],
    );
  }
  return [...new Set(names)];
}
