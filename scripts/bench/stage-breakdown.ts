// The gateway-side breakdown of the product path's latency, from the Server-Timing header of each
// response: p50/p95/p99 per stage, and what lies outside every stage (HTTP parsing and writing,
// Koa and routing, the client and the socket) = client latency − the stages' critical path.
import type { EchoSample } from './product-path.ts';
import { summarize } from './stats.ts';

export function stageSummaries(samples: EchoSample[]) {
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.stages)))];
  const stages: Record<string, ReturnType<typeof summarize>> = {};
  for (const name of names) stages[name] = summarize(samples.map((s) => s.stages[name] ?? 0));
  const withStages = samples.filter((s) => Object.keys(s.stages).length > 0);
  // What the gateway's stages do not cover: HTTP parsing and writing, Koa, routing, the client.
  const outside =
    withStages.length > 0 ? summarize(withStages.map((s) => s.ms - criticalPath(s.stages))) : null;
  return { available: names.length > 0, stages, outside };
}

/**
 * Stages the gateway runs side by side (task-submitter.ts writes the Redis meta and the ledger row
 * at once): on the request's critical path a group counts as its longest member, not their sum.
 */
export const PARALLEL_STAGES: string[][] = [['meta', 'ledger']];

export function criticalPath(stages: Record<string, number>): number {
  let total = Object.values(stages).reduce((a, b) => a + b, 0);
  for (const group of PARALLEL_STAGES) {
    const present = group.map((g) => stages[g]).filter((v): v is number => v !== undefined);
    if (present.length > 1) total -= present.reduce((a, b) => a + b, 0) - Math.max(...present);
  }
  return total;
}
