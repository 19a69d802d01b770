// Task name → handler factory. Typed against every TaskName in contracts, so a task added there
// without a handler here fails `tsc`. Factories are imported lazily: a process loads only the
// handlers of its own queues, so a circuit worker never loads Pyodide.
import type { TaskName } from '@neuroagent/contracts';
import type { HandlerFactory } from './types.ts';

export const HANDLER_FACTORIES: { [K in TaskName]: () => Promise<HandlerFactory<K>> } = {
  run_python: async () => (await import('./run-python.ts')).createRunPythonHandler,
  circuit_population_analysis: async () =>
    (await import('./circuit-population-analysis.ts')).createCircuitHandler,
  echo: async () => (await import('./echo.ts')).createEchoHandler,
};
