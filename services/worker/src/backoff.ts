// Delay before a message that failed on an infrastructure error is redelivered: exponential in the
// delivery count, capped, with ±25 % jitter so a fleet of workers does not retry in lockstep.

export function retryDelayMs(
  deliveryCount: number,
  baseMs: number,
  maxMs: number,
  random = Math.random,
): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, deliveryCount - 1));
  const jitter = exp * 0.25 * (random() * 2 - 1);
  return Math.max(0, Math.round(Math.min(maxMs, exp + jitter)));
}
