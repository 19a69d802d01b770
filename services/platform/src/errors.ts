// Error classes with a stable `code` and a `retryable` flag. The worker's retry policy and the
// gateway's HTTP mapping read these two fields and nothing else.
import type { FailureCode } from '@neuroagent/contracts';

export interface AppErrorOptions extends ErrorOptions {
  retryable?: boolean;
  details?: { path: string; message: string }[];
}

export class AppError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly details: { path: string; message: string }[] | undefined;

  constructor(code: string, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }
}

/** Bad configuration at boot. The message names every offending variable. */
export class ConfigError extends AppError {
  constructor(message: string, details: { path: string; message: string }[]) {
    super('config_invalid', message, { details });
    this.name = 'ConfigError';
  }
}

/** Data from outside (HTTP body, message payload) failed its schema. */
export class ValidationError extends AppError {
  constructor(message: string, details: { path: string; message: string }[]) {
    super('validation_failed', message, { details });
    this.name = 'ValidationError';
  }
}

/** A dependency (NATS, Redis, S3, the sandbox process) failed; trying again later may work. */
export class InfrastructureError extends AppError {
  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(code, message, { ...options, retryable: true });
    this.name = 'InfrastructureError';
  }
}

/**
 * The task ran and ended in a failure that a retry will not change (bad archive, expired, …). Its
 * code is one its task definition declares (or a common one), so `tsc` refuses an undeclared code.
 */
export class TaskFailedError extends AppError {
  declare readonly code: FailureCode;

  constructor(code: FailureCode, message: string, options: AppErrorOptions = {}) {
    super(code, message, { ...options, retryable: false });
    this.name = 'TaskFailedError';
  }
}

/** Anything not known to be permanent is treated as retryable: losing a task is worse than a retry. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof AppError) return err.retryable;
  return true;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
