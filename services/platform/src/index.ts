// Shared runtime for the gateway and the workers. Never imports services/gateway or services/worker.
export * from './cancel.ts';
export * from './config.ts';
export * from './errors.ts';
export * from './logger.ts';
export * from './nats.ts';
export * from './redis.ts';
export * from './secret-file.ts';
export * from './settings.ts';
export * from './shutdown.ts';
export * from './signing.ts';
export * from './storage.ts';
export * from './task-id.ts';
export * from './task-reader.ts';
export * from './task-state.ts';
export * from './task-writer.ts';
export * from './validator.ts';
