// Files written under /output are stored in S3 by the worker (real s3rver, real SDK, path-style)
// and served to their owner through GET /storage/{id}/presigned-url on the gateway.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createLogger, createStorage } from '@neuroagent/platform';
import { gatewayEnv, testNamespace, workerEnv } from '@neuroagent/platform/testing';
import { startTestS3, type TestS3 } from '@neuroagent/platform/testing-s3';
import { type TestClients, testClients } from './support/namespace.ts';
import { type ServiceProcess, startGateway, startWorker } from './support/processes.ts';

describe('artifacts: /output files to S3, presigned URLs for their owner', () => {
  const ns = testNamespace('artifacts');
  const bucket = `artifacts-${ns.id.replace(/_/g, '-').toLowerCase()}`.slice(0, 60);
  let s3: TestS3;
  let clients: TestClients;
  let worker: ServiceProcess;
  let gateway: ServiceProcess & { url: string };

  before(async () => {
    s3 = await startTestS3();
    clients = await testClients(ns);
    worker = await startWorker({
      ...workerEnv(ns),
      ...s3.env('TASKS', { bucket }),
      TASKS_STORAGE__ENABLED: 'true',
      TASKS_PYTHON__MAX_ARTIFACTS: '3',
    });
    gateway = await startGateway({
      PATH: process.env.PATH ?? '',
      ...gatewayEnv(ns),
      ...s3.env('NEUROAGENT', { bucket }),
      NEUROAGENT_STORAGE__ENABLED: 'true',
    });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await clients?.close();
    await s3?.stop();
  });

  const runPython = async (python_script: string, thread_id?: string) => {
    const res = await fetch(`${gateway.url}/tools/run-python`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(thread_id ? { python_script, thread_id } : { python_script }),
    });
    assert.equal(res.status, 200);
    return (await res.json()) as { result: { status: string; stderr: string[] }; storage_id: string[] };
  };
  const presigned = (id: string) => fetch(`${gateway.url}/storage/${id}/presigned-url`);

  it('stores each /output file and serves it back through a presigned URL', async () => {
    const script = [
      'import os, json',
      'os.makedirs("/output/sub", exist_ok=True)',
      'open("/output/report.csv", "w").write("a,b\\n1,2\\n")',
      'json.dump({"x": [1, 2]}, open("/output/sub/data.json", "w"))',
      '"written"',
    ].join('\n');
    const out = await runPython(script, 'thread-42');
    assert.equal(out.result.status, 'success');
    assert.equal(out.storage_id.length, 2);
    const storage = createStorage(s3.settings({ bucket }), createLogger('t', 'silent'));
    const expected = [
      { body: 'a,b\n1,2\n', type: 'text/csv', filename: 'report.csv' },
      { body: '{"x": [1, 2]}', type: 'application/json', filename: 'data.json' },
    ];
    for (const [i, id] of out.storage_id.entries()) {
      const res = await presigned(id);
      assert.equal(res.status, 200);
      const url = (await res.json()) as string;
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\//);
      const file = await fetch(url);
      assert.equal(await file.text(), expected[i]?.body);
      const info = await storage.head(`anonymous/${id}`);
      assert.equal(info?.contentType, expected[i]?.type);
      assert.deepEqual(info?.metadata, {
        category: 'file',
        thread_id: 'thread-42',
        filename: expected[i]?.filename,
      });
    }
    storage.close();
  });

  it('caps the number of artifacts and says so on stderr', async () => {
    const out = await runPython('for i in range(5):\n    open(f"/output/f{i}.txt", "w").write(str(i))');
    assert.equal(out.storage_id.length, 3);
    assert.equal(out.result.stderr.filter((l) => /skipped: more than 3 artifacts/.test(l)).length, 2);
  });

  it('stores active content (HTML, SVG, JavaScript, XHTML) as an octet-stream attachment', async () => {
    const storage = createStorage(s3.settings({ bucket }), createLogger('t', 'silent'));
    const cases = [
      ['page.html', 'svg.svg', 'app.js'],
      ['doc.xhtml', 'plot.png', 'notes.txt'],
    ];
    const expected: Record<string, string> = {
      'page.html': 'application/octet-stream',
      'svg.svg': 'application/octet-stream',
      'app.js': 'application/octet-stream',
      'doc.xhtml': 'application/octet-stream',
      'plot.png': 'image/png',
      'notes.txt': 'text/plain',
    };
    for (const names of cases) {
      const script = names
        .map((n) => `open("/output/${n}", "w").write("<script>alert(document.cookie)</script>")`)
        .join('\n');
      const out = await runPython(script);
      assert.equal(out.result.status, 'success', JSON.stringify(out.result));
      assert.equal(out.storage_id.length, names.length);
      const seen: string[] = [];
      for (const id of out.storage_id) {
        const info = await storage.head(`anonymous/${id}`);
        const name = info?.metadata.filename ?? '';
        seen.push(name);
        assert.equal(info?.contentType, expected[name], name);
        assert.equal(info?.contentDisposition, `attachment; filename="${name}"; filename*=UTF-8''${name}`);
        // The presigned URL serves the same headers to a browser.
        const url = (await (await presigned(id)).json()) as string;
        const file = await fetch(url);
        assert.equal(file.headers.get('content-type'), expected[name], name);
        assert.match(file.headers.get('content-disposition') ?? '', /^attachment;/);
        await file.arrayBuffer();
      }
      assert.deepEqual(seen.sort(), [...names].sort());
    }
    storage.close();
  });

  it('refuses a report whose file name has control characters: output-limit, nothing stored', async () => {
    const out = await runPython('open("/output/evil\\r\\nX-Injected: 1.txt", "w").write("x")\n"done"');
    assert.equal(out.result.status, 'error', JSON.stringify(out.result));
    assert.equal((out.result as unknown as { error_type: string }).error_type, 'output-limit');
    assert.deepEqual(out.storage_id, []);
  });

  it("answers 404 for another user's file, an unknown id and a malformed one", async () => {
    const storage = createStorage(s3.settings({ bucket }), createLogger('t', 'silent'));
    const foreign = randomUUID();
    await storage.put(`someone-else/${foreign}`, new TextEncoder().encode('private'), {
      contentType: 'text/plain',
    });
    storage.close();
    for (const id of [foreign, randomUUID(), '..%2Fsomeone-else']) {
      const res = await presigned(id);
      assert.equal(res.status, 404, id);
      assert.equal(((await res.json()) as { code: string }).code, 'storage_not_found');
    }
  });
});
