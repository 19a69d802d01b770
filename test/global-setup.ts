// Global setup of `npm test` (node --test-global-setup): the tests talk to real NATS (with
// JetStream) and Redis. When nothing answers at the test addresses and the servers are installed,
// start them with data under .data/test-services and stop them after the run, as `npm start` does;
// otherwise fail at once with what to install, instead of every test timing out on its own.
import { join, resolve } from 'node:path';
import { checkDependencies } from '../scripts/lib/dependencies.ts';
import {
  type LocalService,
  NATS_SERVER,
  REDIS_SERVER,
  startLocalService,
} from '../scripts/lib/local-services.ts';

const ROOT = resolve(import.meta.dirname, '..');
const started: LocalService[] = [];

export async function globalSetup(): Promise<void> {
  const natsUrl = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
  const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
  const check = await checkDependencies(
    [
      { spec: NATS_SERVER, uses: [{ variable: 'TEST_NATS_URL', url: natsUrl }] },
      { spec: REDIS_SERVER, uses: [{ variable: 'TEST_REDIS_URL', url: redisUrl }] },
    ],
    process.env.PATH,
    1000,
  );
  if (check.problems.length > 0) {
    throw new Error(`the tests need real servers:\n${check.problems.join('\n')}`);
  }
  for (const plan of check.start) {
    started.push(
      await startLocalService(plan.spec, {
        command: plan.command,
        host: plan.target.host,
        port: plan.target.port,
        dataDir: join(ROOT, '.data', 'test-services', plan.spec.name),
        cwd: ROOT,
        env: process.env,
        timeoutMs: 15_000,
      }),
    );
  }
}

export async function globalTeardown(): Promise<void> {
  for (const s of started.reverse()) await s.stop(5000);
}
