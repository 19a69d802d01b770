// Leaf package: @sinclair/typebox is its only dependency. Never import services/* from here.
export * from './agent.ts';
export * from './circuit-population-analysis.ts';
export * from './echo.ts';
export * from './envelope.ts';
export * from './error-body.ts';
export * from './events.ts';
export * from './names.ts';
export * from './queue-control.ts';
export * from './run-python.ts';
export * from './task-definition.ts';
export * from './task-events-entry.ts';
export * from './task-status.ts';
export * from './tasks.ts';
