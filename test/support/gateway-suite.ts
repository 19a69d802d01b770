// One gateway process (and the test's own Redis and NATS clients) for a describe block: started
// before its tests, stopped after them.
import { after, before } from 'node:test';
import { gatewayEnv, type TestNamespace } from '@neuroagent/platform/testing';
import { type TestClients, testClients } from './namespace.ts';
import { type ServiceProcess, startGateway } from './processes.ts';

export interface GatewaySuite {
  readonly gateway: ServiceProcess & { url: string };
  readonly clients: TestClients;
}

export function gatewaySuite(ns: TestNamespace, extra: Record<string, string> = {}): GatewaySuite {
  let clients: TestClients | undefined;
  let gateway: (ServiceProcess & { url: string }) | undefined;
  before(async () => {
    clients = await testClients(ns);
    gateway = await startGateway({ PATH: process.env.PATH ?? '', ...gatewayEnv(ns, extra) });
  });
  after(async () => {
    await gateway?.stop();
    await clients?.close();
  });
  return {
    get gateway() {
      if (!gateway) throw new Error('the gateway is not started yet (use it inside a test)');
      return gateway;
    },
    get clients() {
      if (!clients) throw new Error('the clients are not open yet (use them inside a test)');
      return clients;
    },
  };
}
