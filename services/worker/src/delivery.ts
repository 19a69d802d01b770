// What one delivery of a task message becomes, decided without I/O so that every branch can be
// tested on its own (test/delivery.test.ts). The consumer gathers the facts, asks here, and acts.
import type { BeginState } from '@neuroagent/platform';

export interface DeliveryFacts {
  task: string;
  /** Epoch ms by which the task must start: its JetStream timestamp plus the envelope's startWithinS. */
  startBy: number;
  now: number;
  hasHandler: boolean;
}

/** Why a delivery must not run, before anything is written for it. */
export interface Blocker {
  code: 'expired' | 'unknown_task';
  message: string;
}

/** Checked before begin(): a blocked task is not marked started. */
export function blockerOf(f: DeliveryFacts): Blocker | null {
  if (f.startBy < f.now) {
    return {
      code: 'expired',
      message: `not started before its deadline ${new Date(f.startBy).toISOString()}`,
    };
  }
  if (!f.hasHandler) return { code: 'unknown_task', message: `this worker has no handler for ${f.task}` };
  return null;
}

export type Decision =
  /** A redelivery whose result exists already ran to the end: never run it twice. */
  | { action: 'ack_duplicate' }
  /** The cancel flag was set before the task started: record it cancelled. */
  | { action: 'record_cancelled' }
  /** It expired or nobody here can run it: record it failed with the blocker's code. */
  | { action: 'record_failed'; code: Blocker['code']; message: string }
  | { action: 'run' };

/** What to do once begin() has answered for a delivery that had `blocker` (null: startable). */
export function decideDelivery(state: BeginState, blocker: Blocker | null): Decision {
  if (state === 'duplicate') return { action: 'ack_duplicate' };
  if (state === 'cancelled') return { action: 'record_cancelled' };
  if (blocker !== null) return { action: 'record_failed', code: blocker.code, message: blocker.message };
  // begin() answers 'blocked' only when told the task is not startable, which needs a blocker.
  if (state === 'blocked') {
    return { action: 'record_failed', code: 'unknown_task', message: 'the task was not startable' };
  }
  return { action: 'run' };
}
