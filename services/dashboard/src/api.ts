// The gateway's HTTP API as the dashboard uses it: same origin, the bearer token from
// sessionStorage on every call, and every failure turned into an ApiError that carries the
// gateway's stable error code, so a page can show `code: message`.

const TOKEN_KEY = 'neuroagent.token';

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** Called with every 401, so the app can send the user back to the login box. */
let unauthorized: (err: ApiError) => void = () => {};
export function onUnauthorized(listener: (err: ApiError) => void): void {
  unauthorized = listener;
}

export function authHeaders(): Record<string, string> {
  const token = storedToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** `?a=1&b=2` from the defined, non-empty values, or ''. */
export function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * The error of a failed response. The gateway answers `{code, message}`; docs/admin-api.md also
 * speaks of `{error: {code, message}}`, so both are read.
 */
export async function errorOf(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText || 'request failed';
  try {
    const body = (await res.json()) as { code?: unknown; message?: unknown; error?: unknown };
    const inner = (body.error && typeof body.error === 'object' ? body.error : body) as {
      code?: unknown;
      message?: unknown;
    };
    if (typeof inner.code === 'string') code = inner.code;
    if (typeof inner.message === 'string') message = inner.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, code, message);
}

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? 'GET',
      headers: {
        accept: 'application/json',
        ...authHeaders(),
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  } catch (err) {
    throw new ApiError(0, 'network_error', `the gateway did not answer: ${(err as Error).message}`);
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401) unauthorized(err);
    throw err;
  }
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export function asApiError(err: unknown): ApiError {
  return err instanceof ApiError
    ? err
    : new ApiError(0, 'client_error', String((err as Error)?.message ?? err));
}
