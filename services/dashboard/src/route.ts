// Hash routing (`/ui/#/tasks/<id>`): the server only ever serves index.html for /ui/, so a
// reload or a shared link lands on the same page without any server-side route table.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'queues' }
  | { page: 'tasks' }
  | { page: 'task'; id: string }
  | { page: 'dead-letters' }
  | { page: 'audit' }
  | { page: 'home' };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/\?.*$/, '');
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'tasks' && parts[1]) return { page: 'task', id: decodeURIComponent(parts[1]) };
  if (parts[0] === 'tasks') return { page: 'tasks' };
  if (parts[0] === 'queues') return { page: 'queues' };
  if (parts[0] === 'dead-letters') return { page: 'dead-letters' };
  if (parts[0] === 'audit') return { page: 'audit' };
  return { page: 'home' };
}

export function taskHref(id: string): string {
  return `#/tasks/${encodeURIComponent(id)}`;
}

export function navigate(hash: string): void {
  window.location.hash = hash;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
