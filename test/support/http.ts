// One way for the HTTP tests to call the gateway: a method, a path, a bearer token (or none) and a
// JSON body (or none). `base` is read at each call, since a suite learns its gateway's URL in before().

export interface CallOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export type ApiCall = (
  method: string,
  path: string,
  token: string | null,
  body?: unknown,
  options?: CallOptions,
) => Promise<Response>;

export function apiCaller(base: () => string): ApiCall {
  return (method, path, token, body, options = {}) =>
    fetch(`${base()}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...options.headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
}
