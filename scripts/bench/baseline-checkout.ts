// Another commit of this repository, checked out beside the working tree (a detached git worktree)
// so that a benchmark can run its gateway and the current one in the same run: a before/after
// figure from one sitting, not from two runs on a machine whose load changes. Its node_modules is
// this one's, entry by entry, except the workspace packages (@neuroagent/*), which point into the
// baseline's own tree so that it runs its own code throughout.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../test/support/processes.ts';

export interface BaselineCheckout {
  ref: string;
  /** The commit `ref` named when it was checked out. */
  commit: string;
  gatewayMain: string;
  remove(): Promise<void>;
}

const WORKSPACES: Record<string, string> = {
  contracts: 'contracts',
  gateway: 'services/gateway',
  platform: 'services/platform',
  worker: 'services/worker',
};

export async function checkoutBaseline(ref: string): Promise<BaselineCheckout> {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  const commit = git('rev-parse', '--verify', `${ref}^{commit}`);
  const dir = await mkdtemp(join(tmpdir(), 'neuroagent-baseline-'));
  git('worktree', 'add', '--detach', dir, commit);
  const remove = async () => {
    try {
      git('worktree', 'remove', '--force', dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    const modules = join(dir, 'node_modules');
    await mkdir(join(modules, '@neuroagent'), { recursive: true });
    for (const entry of await readdir(join(ROOT, 'node_modules'))) {
      if (entry !== '@neuroagent') await symlink(join(ROOT, 'node_modules', entry), join(modules, entry));
    }
    for (const [name, path] of Object.entries(WORKSPACES)) {
      await symlink(join(dir, path), join(modules, '@neuroagent', name));
    }
  } catch (err) {
    await remove();
    throw err;
  }
  return { ref, commit, gatewayMain: join(dir, 'services/gateway/src/main.ts'), remove };
}
