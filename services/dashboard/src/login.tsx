// The login box: a bearer token pasted in (e.g. from `npm run token -- --sub ops --admin`), checked
// with GET /me before it is kept in sessionStorage, which the browser drops with the tab.
import { useState } from 'preact/hooks';
import { type ApiError, api, asApiError, storeToken } from './api.ts';
import { ErrorBanner } from './common.tsx';
import type { Me } from './types.ts';

export function Login({ onLogin, error }: { onLogin(me: Me): void; error: ApiError | null }) {
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<ApiError | null>(null);

  async function submit(e: Event) {
    e.preventDefault();
    const value = token.trim().replace(/^Bearer\s+/i, '');
    if (!value) return;
    setBusy(true);
    setFailure(null);
    storeToken(value);
    try {
      onLogin(await api<Me>('/me'));
    } catch (err) {
      storeToken(null);
      setFailure(asApiError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="login" data-testid="login">
      <h1>neuroagent-mesh</h1>
      <p class="muted">Operator dashboard. Paste a bearer token to sign in.</p>
      <form onSubmit={submit}>
        <label for="token">Token</label>
        <input
          id="token"
          type="password"
          data-testid="login-token"
          spellcheck={false}
          autocomplete="off"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          placeholder="eyJhbGciOi…"
        />
        <button type="submit" data-testid="login-submit" disabled={busy || !token.trim()}>
          Sign in
        </button>
      </form>
      <ErrorBanner error={failure ?? error} />
      <p class="muted small">
        Local development: <code>npm run -s token -- --sub ops --admin</code>
      </p>
    </main>
  );
}
