// What the agent routes are built from: the thread store, the turn runner and the turn events.
// Types only; runtime.ts builds the real ones. Its own module, so deps.ts and routes/threads.ts
// both import it and neither imports the other.
import type { Names } from '@neuroagent/contracts';
import type { Redis } from '@neuroagent/platform';
import type { ModelClient } from './model-client.ts';
import type { AgentSettings } from './settings.ts';
import type { ThreadStore } from './thread-store.ts';
import type { TurnControl } from './turn-control.ts';
import type { TurnEventLog } from './turn-events.ts';
import type { TurnRunner } from './turn-runner.ts';

/** What the agent routes are built from (runtime.ts wires the real ones). */
export interface AgentDeps {
  threads: ThreadStore;
  runner: TurnRunner;
  events: TurnEventLog;
  control: TurnControl;
  model: Pick<ModelClient, 'configured'>;
  settings: AgentSettings;
  /** For the resume stream: whether a finished turn's events are still there. */
  redis: Pick<Redis, 'exists'>;
  names: Pick<Names, 'turnEventsKey'>;
}
