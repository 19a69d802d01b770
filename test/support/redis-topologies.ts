// Redis topologies on loopback for the failover tests: a primary, a replica and three sentinels;
// and a Redis Cluster of three primaries, each with one replica. Every process is a PrivateServer
// (its own port and folder), so a test can SIGKILL any of them. Nothing keeps data on disk.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { type PrivateServer, privateServer } from './private-servers.ts';

const HOST = '127.0.0.1';
const run = promisify(execFile);

const EPHEMERAL = ['--bind', HOST, '--save', '', '--appendonly', 'no'];

export interface SentinelSet {
  primary: PrivateServer;
  replica: PrivateServer;
  sentinels: PrivateServer[];
  /** The sentinels' `host:port` list, as `…_REDIS__SENTINELS` takes it. */
  readonly sentinelList: string;
  readonly masterName: string;
  /** The primary's port as the sentinels report it now. */
  currentPrimaryPort(): Promise<number>;
  close(): Promise<void>;
}

/** How fast the sentinels act: a primary silent for this long is down and a failover starts. */
export const SENTINEL_DOWN_AFTER_MS = 1000;

export async function startSentinelSet(masterName = 'mymaster'): Promise<SentinelSet> {
  const all: PrivateServer[] = [];
  try {
    const primary = await privateServer('redis-primary', 'redis-server', 'redis', (port, dir) => [
      ...EPHEMERAL,
      '--port',
      String(port),
      '--dir',
      dir,
    ]);
    all.push(primary);
    const replica = await privateServer('redis-replica', 'redis-server', 'redis', (port, dir) => [
      ...EPHEMERAL,
      '--port',
      String(port),
      '--dir',
      dir,
      '--replicaof',
      HOST,
      String(primary.port),
    ]);
    all.push(replica);
    await waitForReplication(primary.port);
    const sentinels: PrivateServer[] = [];
    for (let i = 0; i < 3; i++) {
      const sentinel = await privateServer(
        `redis-sentinel-${i + 1}`,
        'redis-server',
        'redis',
        (port, dir) => {
          // Sentinels rewrite their config file, so each gets its own, in its own folder.
          const conf = join(dir, 'sentinel.conf');
          return [conf, '--sentinel', '--port', String(port), '--bind', HOST, '--dir', dir];
        },
        '',
        async (dir) => {
          await writeFile(
            join(dir, 'sentinel.conf'),
            [
              `sentinel monitor ${masterName} ${HOST} ${primary.port} 2`,
              `sentinel down-after-milliseconds ${masterName} ${SENTINEL_DOWN_AFTER_MS}`,
              `sentinel failover-timeout ${masterName} 10000`,
              `sentinel parallel-syncs ${masterName} 1`,
              '',
            ].join('\n'),
          );
        },
      );
      sentinels.push(sentinel);
      all.push(sentinel);
    }
    const sentinelList = sentinels.map((s) => `${HOST}:${s.port}`).join(',');
    const set: SentinelSet = {
      primary,
      replica,
      sentinels,
      sentinelList,
      masterName,
      async currentPrimaryPort() {
        const reply = (await ask(
          sentinels[0]?.port ?? 0,
          'SENTINEL',
          'get-master-addr-by-name',
          masterName,
        )) as string[] | null;
        return Number(reply?.[1] ?? 0);
      },
      async close() {
        await Promise.all(all.map((s) => s.close()));
      },
    };
    // Every sentinel must know the replica and the other sentinels before a failover can be agreed.
    await waitUntil(async () => {
      const info = (await ask(sentinels[0]?.port ?? 0, 'SENTINEL', 'master', masterName)) as string[];
      const field = (name: string) => Number(info[info.indexOf(name) + 1] ?? 0);
      return field('num-slaves') >= 1 && field('num-other-sentinels') >= 2;
    }, 'the sentinels to discover the replica and each other');
    return set;
  } catch (err) {
    await Promise.all(all.map((s) => s.close()));
    throw err;
  }
}

export interface RedisClusterSet {
  /** Six nodes; which are primaries changes with failovers (see primaries()). */
  nodes: PrivateServer[];
  /** Every node's `host:port`, as `…_REDIS__CLUSTER_NODES` takes it. */
  readonly nodeList: string;
  /** The nodes that are primaries now, with their slot count. */
  primaries(): Promise<{ node: PrivateServer; slots: number }[]>;
  /** How many replicas the primary that `node` replicates (or is) has, connected and in sync. */
  replicaCount(node: PrivateServer): Promise<number>;
  /** True when live primaries serve all 16384 slots and every live node says cluster_state:ok. */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

/** A node silent for this long is failed over by its replica. */
export const CLUSTER_NODE_TIMEOUT_MS = 2000;

export async function startRedisCluster(): Promise<RedisClusterSet> {
  const nodes: PrivateServer[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      nodes.push(
        await privateServer(`redis-cluster-${i + 1}`, 'redis-server', 'redis', (port, dir) => [
          ...EPHEMERAL,
          '--port',
          String(port),
          '--dir',
          dir,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, 'nodes.conf'),
          '--cluster-node-timeout',
          String(CLUSTER_NODE_TIMEOUT_MS),
          // A replica that lost touch with its primary may still take over: the test kills primaries.
          '--cluster-replica-validity-factor',
          '0',
        ]),
      );
    }
    const nodeList = nodes.map((n) => `${HOST}:${n.port}`).join(',');
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodeList.split(','),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ]);
    const set: RedisClusterSet = {
      nodes,
      nodeList,
      async primaries() {
        const out: { node: PrivateServer; slots: number }[] = [];
        for (const node of nodes) {
          if (node.pid() === null) continue;
          if (!/role:master/.test(String(await ask(node.port, 'INFO', 'replication')))) continue;
          const lines = String(await ask(node.port, 'CLUSTER', 'NODES')).split('\n');
          const self = lines.find((l) => l.includes('myself'));
          const slots = (self?.split(' ').slice(8) ?? []).reduce((n, range) => {
            const [a, b] = range.split('-').map(Number);
            return a === undefined || Number.isNaN(a) ? n : n + ((b ?? a) - a + 1);
          }, 0);
          if (slots > 0) out.push({ node, slots });
        }
        return out;
      },
      async replicaCount(node) {
        const info = String(await ask(node.port, 'INFO', 'replication'));
        const primaryPort = info.match(/master_port:(\d+)/)?.[1];
        if (primaryPort === undefined) return connectedReplicas(info);
        if (!/master_link_status:up/.test(info)) return 0;
        return connectedReplicas(String(await ask(Number(primaryPort), 'INFO', 'replication')));
      },
      async healthy() {
        const served = (await set.primaries()).reduce((n, p) => n + p.slots, 0);
        if (served !== 16384) return false;
        for (const node of nodes) {
          if (node.pid() === null) continue;
          const info = await ask(node.port, 'CLUSTER', 'INFO').catch(() => '');
          if (!/cluster_state:ok/.test(String(info))) return false;
        }
        return true;
      },
      async close() {
        await Promise.all(nodes.map((n) => n.close()));
      },
    };
    await waitUntil(() => set.healthy(), 'the cluster to serve every slot');
    await waitUntil(async () => (await set.primaries()).length === 3, 'three primaries');
    return set;
  } catch (err) {
    await Promise.all(nodes.map((n) => n.close()));
    throw err;
  }
}

/** One command on a fresh connection to a loopback server (its own, so a test sees that server). */
export async function ask(port: number, ...command: [string, ...(string | number)[]]): Promise<unknown> {
  const probe = new Redis({ host: HOST, port, lazyConnect: true });
  try {
    await probe.connect();
    return await probe.call(...command);
  } finally {
    probe.disconnect();
  }
}

/** `connected_slaves` of an INFO replication reply. */
export function connectedReplicas(info: string): number {
  return Number(info.match(/connected_slaves:(\d+)/)?.[1] ?? 0);
}

async function waitForReplication(primaryPort: number): Promise<void> {
  await waitUntil(
    async () => connectedReplicas(String(await ask(primaryPort, 'INFO', 'replication'))) === 1,
    'the replica to sync',
  );
}

export async function waitUntil(
  probe: () => Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await probe().catch(() => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}
