// The audit log comes first: an admin action whose audit row cannot be written is refused with 503
// and never runs. The log is the real one over a real SQLite ledger, whose table is then dropped.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Router from '@koa/router';
import { createLogger } from '@neuroagent/platform';
import Koa from 'koa';
import type { AdminOps } from '../src/admin/operations.ts';
import { errorHandler } from '../src/http-error.ts';
import { createAuditLog } from '../src/ledger/audit-log.ts';
import { type Ledger, openLedger } from '../src/ledger/ledger.ts';
import { type AdminRouteDeps, registerAdminRoutes } from '../src/routes/admin.ts';

const log = createLogger('admin-audit-test', 'silent');

describe('admin actions and the audit log', () => {
  let ledger: Ledger;
  let url = '';
  let server: ReturnType<typeof createServer>;
  const ran: string[] = [];

  before(async () => {
    ledger = await openLedger(
      { url: `sqlite:${join(tmpdir(), `audit-${process.pid}-${Date.now()}.sqlite`)}`, debug: false },
      log,
    );
    const admin = {
      async setPaused(queue: string) {
        ran.push(`setPaused ${queue}`);
        return { queue } as never;
      },
    } as unknown as AdminOps;
    const deps = {
      config: { http: { max_body_kb: 64 } },
      admin,
      audit: createAuditLog(ledger.orm),
      log,
    } as unknown as AdminRouteDeps;
    const app = new Koa();
    app.silent = true;
    app.use(errorHandler(log));
    app.use(async (ctx, next) => {
      ctx.state.userId = 'ops';
      ctx.state.admin = true;
      await next();
    });
    const router = new Router();
    registerAdminRoutes(router, deps);
    app.use(router.routes());
    server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    await ledger?.close();
  });

  it('runs an action once its row is written, and refuses it with 503 when the row cannot be', async () => {
    const ok = await fetch(`${url}/admin/queues/echo_q/pause`, { method: 'POST' });
    assert.equal(ok.status, 200, await ok.text());
    assert.deepEqual(ran, ['setPaused echo_q']);
    const [row] = (await createAuditLog(ledger.orm).list()).items;
    assert.equal(row?.action, 'queue.pause');
    assert.equal(row?.detail?.ok, true);

    // The table is gone: every audit write fails from here, as on a database that refuses writes.
    await ledger.orm.em.fork().getConnection().execute('drop table "audit_log"');
    const refused = await fetch(`${url}/admin/queues/echo_q/resume`, { method: 'POST' });
    assert.equal(refused.status, 503);
    assert.equal(((await refused.json()) as { code: string }).code, 'audit_unavailable');
    assert.deepEqual(ran, ['setPaused echo_q'], 'the action did not run');
  });
});
