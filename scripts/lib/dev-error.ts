// The one error class of the dev runner (`npm start`). It carries a stable snake_case `code` like
// the services' errors, but scripts/ must not import service code: the runner is what reports a
// service that does not build or start, so it cannot depend on one.

export class DevError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DevError';
    this.code = code;
  }
}
