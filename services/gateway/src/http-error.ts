// HTTP errors and the one middleware that turns any thrown error into the ErrorBody (errors
// are handled in one place). 5xx messages are generic unless the error was built to be shown.
import type { ErrorBody } from '@neuroagent/contracts';
import { AppError, type Logger, ValidationError } from '@neuroagent/platform';
import type { Context, Next } from 'koa';

export class HttpError extends AppError {
  readonly status: number;

  constructor(
    status: number,
    code: string,
    message: string,
    options: ConstructorParameters<typeof AppError>[2] = {},
  ) {
    super(code, message, options);
    this.name = 'HttpError';
    this.status = status;
  }
}

const STATUS_CODES: Record<number, string> = {
  400: 'bad_request',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'body_too_large',
  415: 'unsupported_media_type',
  501: 'not_implemented',
};

export function sendError(ctx: Context, status: number, body: ErrorBody): void {
  ctx.status = status;
  ctx.body = body;
}

export function errorHandler(log: Logger) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
      if (ctx.status === 404 && ctx.body == null) {
        sendError(ctx, 404, { code: 'not_found', message: `no route for ${ctx.method} ${ctx.path}` });
      }
    } catch (err) {
      if (err instanceof HttpError) {
        if (err.status >= 500) log.error({ err, requestId: ctx.state.requestId }, 'request failed');
        const body: ErrorBody = { code: err.code, message: err.message };
        if (err.details) body.details = err.details;
        sendError(ctx, err.status, body);
        return;
      }
      if (err instanceof ValidationError) {
        sendError(ctx, 400, { code: 'invalid_request', message: err.message, details: err.details ?? [] });
        return;
      }
      // Errors thrown by Koa and the router (http-errors) carry a status and an `expose` flag.
      const status = (err as { status?: number }).status;
      if (
        typeof status === 'number' &&
        status >= 400 &&
        status < 500 &&
        (err as { expose?: boolean }).expose
      ) {
        sendError(ctx, status, {
          code: STATUS_CODES[status] ?? 'bad_request',
          message: (err as Error).message,
        });
        return;
      }
      log.error({ err, requestId: ctx.state.requestId, path: ctx.path }, 'unhandled error');
      sendError(ctx, 500, {
        code: 'internal',
        message: 'internal error; see the gateway log for this request id',
      });
    }
  };
}
