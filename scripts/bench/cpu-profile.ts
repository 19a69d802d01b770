// A V8 CPU profile (.cpuprofile, written by `node --cpu-prof`) reduced to where the time went:
// self time per function and per owner (a package under node_modules, one of our files, Node's own
// modules, the garbage collector), so that two profiles of the same load compare line by line.

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled time, idle excluded, in ms. */
  busyMs: number;
  idleMs: number;
  /** Self time by owner, busiest first, in ms. */
  byOwner: { owner: string; ms: number; share: number }[];
  /** Self time by function, busiest first, in ms. */
  byFunction: { fn: string; owner: string; ms: number; share: number }[];
}

const SPECIAL = new Set(['(garbage collector)', '(program)', '(idle)', '(root)']);

/** Who a frame belongs to: `pkg:<name>`, `ours:<path>`, `node:<module>`, or a V8 special node. */
export function ownerOf(frame: ProfileNode['callFrame']): string {
  if (SPECIAL.has(frame.functionName)) return frame.functionName;
  const url = frame.url;
  if (url === '') return '(native)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return `pkg:${parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]}`;
  }
  const src = /\/(services|contracts|scripts)\/(.*)$/.exec(url);
  return src ? `ours:${src[1]}/${src[2]}` : url;
}

/**
 * `window` (µs of the monotonic clock, which V8's sample times and process.hrtime share on Linux)
 * keeps only the samples taken inside it: the measured load, without the process's start-up.
 */
export function summarizeProfile(
  profile: CpuProfile,
  top = 30,
  window?: { fromUs: number; toUs: number },
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time from sample i-1 to sample i: it belongs to sample i's node.
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const id = profile.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
  }
  const owners = new Map<string, number>();
  const fns = new Map<string, { owner: string; us: number }>();
  let idleUs = 0;
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const owner = ownerOf(node.callFrame);
    if (owner === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    owners.set(owner, (owners.get(owner) ?? 0) + us);
    const { functionName, lineNumber } = node.callFrame;
    const key = `${functionName || '(anonymous)'} ${owner}:${lineNumber + 1}`;
    const f = fns.get(key) ?? { owner, us: 0 };
    f.us += us;
    fns.set(key, f);
  }
  const ms = (us: number) => Math.round(us / 10) / 100;
  const share = (us: number) => (busyUs > 0 ? Math.round((us / busyUs) * 1000) / 1000 : 0);
  return {
    busyMs: ms(busyUs),
    idleMs: ms(idleUs),
    byOwner: [...owners]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([owner, us]) => ({ owner, ms: ms(us), share: share(us) })),
    byFunction: [...fns]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([fn, f]) => ({ fn, owner: f.owner, ms: ms(f.us), share: share(f.us) })),
  };
}
