// Builds a real gateway (real NATS, real Redis, private test namespace) listening on an ephemeral
// port, for HTTP tests with fetch. No worker runs unless a test starts one.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from '@nats-io/transport-node';
import { connectRedis, createLogger, type Logger } from '@neuroagent/platform';
import {
  cleanupNamespace,
  gatewayEnv,
  TEST_NATS_URL,
  TEST_REDIS_URL,
  type TestNamespace,
} from '@neuroagent/platform/testing';
import { loadGatewayConfig } from '../src/config.ts';
import { createGatewayRuntime, type GatewayRuntime } from '../src/runtime.ts';

export interface TestGateway {
  url: string;
  runtime: GatewayRuntime;
  server: Server;
  close(): Promise<void>;
}

export async function startTestGateway(
  ns: TestNamespace,
  extra: Record<string, string> = {},
  log: Logger = createLogger('gateway-test', 'silent'),
): Promise<TestGateway> {
  const config = loadGatewayConfig(gatewayEnv(ns, extra));
  const runtime = await createGatewayRuntime(config, log);
  const server = createServer(runtime.app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    runtime,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await runtime.close();
    },
  };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

/** Deletes a test namespace's streams and Redis keys, with connections of its own. */
export async function cleanupTestNamespace(ns: TestNamespace): Promise<void> {
  const nc = await connect({ servers: TEST_NATS_URL });
  const redis = connectRedis(TEST_REDIS_URL, 'cleanup', createLogger('cleanup', 'silent'));
  try {
    await cleanupNamespace(ns, nc, redis);
  } finally {
    await nc.close();
    await redis.quit();
  }
}
