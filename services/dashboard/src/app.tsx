// The shell: who is signed in (GET /me), the navigation, and the page of the current hash route.
// Normal users get their own tasks only; the admin pages are not offered to them and their API
// answers 403 anyway.
import { useEffect, useState } from 'preact/hooks';
import { type ApiError, api, asApiError, onUnauthorized, storedToken, storeToken } from './api.ts';
import { AuditPage } from './audit.tsx';
import { DeadLettersPage } from './dead-letters.tsx';
import { Login } from './login.tsx';
import { QueuesPage } from './queues.tsx';
import { type Route, useRoute } from './route.ts';
import { TaskDetailPage } from './task-detail.tsx';
import { TasksPage } from './tasks.tsx';
import type { Me } from './types.ts';

const ADMIN_PAGES = new Set<Route['page']>(['queues', 'dead-letters', 'audit']);

export function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(() => storedToken() !== null);
  const [loginError, setLoginError] = useState<ApiError | null>(null);
  const route = useRoute();

  useEffect(() => {
    onUnauthorized((err) => {
      storeToken(null);
      setMe(null);
      setLoginError(err);
    });
    if (storedToken() === null) return;
    api<Me>('/me')
      .then(setMe, (err: unknown) => {
        storeToken(null);
        setLoginError(asApiError(err));
      })
      .finally(() => setChecking(false));
  }, []);

  if (checking) return <p class="muted center">Signing in…</p>;
  if (!me) {
    return (
      <Login
        error={loginError}
        onLogin={(who) => {
          setLoginError(null);
          setMe(who);
        }}
      />
    );
  }

  const logout = () => {
    storeToken(null);
    setMe(null);
    setLoginError(null);
    window.location.hash = '';
  };
  const page = route.page === 'home' ? (me.admin ? 'queues' : 'tasks') : route.page;
  const links: [string, string, Route['page']][] = me.admin
    ? [
        ['#/queues', 'Queues', 'queues'],
        ['#/tasks', 'Tasks', 'tasks'],
        ['#/dead-letters', 'Dead letters', 'dead-letters'],
        ['#/audit', 'Audit log', 'audit'],
      ]
    : [['#/tasks', 'My tasks', 'tasks']];

  return (
    <div class="shell">
      <header>
        <span class="brand">neuroagent-mesh</span>
        <nav>
          {links.map(([href, label, p]) => (
            <a
              key={href}
              href={href}
              data-testid={`nav-${p}`}
              class={page === p || (p === 'tasks' && page === 'task') ? 'active' : ''}
            >
              {label}
            </a>
          ))}
        </nav>
        <span class="who" data-testid="whoami" data-admin={String(me.admin)}>
          {me.user_id}
          {me.admin ? <span class="badge role">admin</span> : null}
        </span>
        <button type="button" class="secondary" data-testid="logout" onClick={logout}>
          Log out
        </button>
      </header>
      <main>
        {ADMIN_PAGES.has(page) && !me.admin ? (
          <p class="error" data-testid="forbidden">
            This page is for operators only.
          </p>
        ) : page === 'queues' ? (
          <QueuesPage />
        ) : page === 'task' && route.page === 'task' ? (
          <TaskDetailPage key={route.id} id={route.id} admin={me.admin} />
        ) : page === 'dead-letters' ? (
          <DeadLettersPage />
        ) : page === 'audit' ? (
          <AuditPage />
        ) : (
          <TasksPage admin={me.admin} />
        )}
      </main>
    </div>
  );
}
