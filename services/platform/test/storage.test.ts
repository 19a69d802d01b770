import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ConfigError,
  connectStorage,
  createLogger,
  createStorage,
  InfrastructureError,
  isStorageId,
  type Storage,
  type StorageSettings,
  s3ClientConfig,
  storageKey,
  ValidationError,
} from '../src/index.ts';
import { startTestS3, type TestS3 } from '../src/testing-s3.ts';

const log = createLogger('storage-test', 'silent');

function bucketName(): string {
  return `t-${randomBytes(6).toString('hex')}`;
}

/** Every byte value, more than one 64 KiB chunk, not a multiple of any chunk size. */
function sampleBytes(size = 200_003): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
  return bytes;
}

function assertStorageUnavailable(err: unknown): true {
  assert.ok(err instanceof InfrastructureError, `expected InfrastructureError, got ${String(err)}`);
  assert.equal(err.code, 'storage_unavailable');
  assert.equal(err.retryable, true);
  assert.ok(err.cause !== undefined, 'the SDK error is kept as cause');
  return true;
}

describe('storageKey', () => {
  it('builds {user_id}/{id} from a UUID storage id', () => {
    const id = randomUUID();
    assert.equal(isStorageId(id), true);
    assert.equal(storageKey('user-1', id), `user-1/${id}`);
  });

  it('rejects ids that could reach outside the user prefix, and an empty user id', () => {
    for (const id of [
      '',
      '../x',
      `a/${randomUUID()}`,
      `${randomUUID()}/x`,
      'not-a-uuid',
      `${randomUUID()}\n`,
    ]) {
      assert.equal(isStorageId(id), false, id);
      assert.throws(() => storageKey('user-1', id), RangeError, id);
    }
    assert.throws(() => storageKey('', randomUUID()), RangeError);
  });
});

describe('s3ClientConfig', () => {
  const base: StorageSettings = {
    endpoint_url: '',
    region: 'eu-west-1',
    access_key: '',
    secret_key: '',
    bucket: 'neuroagent',
    force_path_style: false,
    checksum_when_required: false,
    create_bucket: false,
    request_timeout_ms: 1234,
  };

  it('uses the AWS endpoint and credential chain by default, with SDK checksum defaults', () => {
    const cfg = s3ClientConfig(base);
    assert.equal(cfg.endpoint, undefined);
    assert.equal(cfg.credentials, undefined);
    assert.equal(cfg.region, 'eu-west-1');
    assert.equal(cfg.forcePathStyle, false);
    assert.equal(cfg.requestChecksumCalculation, 'WHEN_SUPPORTED');
    assert.equal(cfg.responseChecksumValidation, 'WHEN_SUPPORTED');
    assert.deepEqual(cfg.requestHandler, {
      connectionTimeout: 1234,
      requestTimeout: 1234,
      throwOnRequestTimeout: true,
    });
  });

  it('maps endpoint, keys, path style and checksum_when_required onto the SDK settings', () => {
    const cfg = s3ClientConfig({
      ...base,
      endpoint_url: 'http://127.0.0.1:9000',
      access_key: 'ak',
      secret_key: 'sk',
      force_path_style: true,
      checksum_when_required: true,
    });
    assert.equal(cfg.endpoint, 'http://127.0.0.1:9000');
    assert.deepEqual(cfg.credentials, { accessKeyId: 'ak', secretAccessKey: 'sk' });
    assert.equal(cfg.forcePathStyle, true);
    assert.equal(cfg.requestChecksumCalculation, 'WHEN_REQUIRED');
    assert.equal(cfg.responseChecksumValidation, 'WHEN_REQUIRED');
  });

  it('refuses an access key without its secret, and the reverse', () => {
    assert.throws(() => s3ClientConfig({ ...base, access_key: 'ak' }), ConfigError);
    assert.throws(() => s3ClientConfig({ ...base, secret_key: 'sk' }), ConfigError);
  });
});

describe('createStorage (real S3-compatible server)', () => {
  let s3: TestS3;
  let settings: StorageSettings;
  let storage: Storage;

  before(async () => {
    s3 = await startTestS3();
    settings = s3.settings({ bucket: bucketName() });
    storage = await connectStorage(settings, log);
  });

  after(async () => {
    storage?.close();
    await s3?.stop();
  });

  it('reads back the exact bytes, content type and metadata it put', async () => {
    const key = storageKey('user-1', randomUUID());
    const bytes = sampleBytes();
    const threadId = randomUUID();
    await storage.put(key, bytes, {
      contentType: 'image/png',
      contentDisposition: 'attachment; filename="plot.png"',
      metadata: { category: 'png', thread_id: threadId },
    });

    assert.deepEqual(await storage.head(key), {
      contentType: 'image/png',
      contentDisposition: 'attachment; filename="plot.png"',
      size: bytes.byteLength,
      metadata: { category: 'png', thread_id: threadId },
    });
    const got = await storage.get(key);
    assert.ok(got);
    assert.equal(got.body.byteLength, bytes.byteLength);
    assert.ok(Buffer.from(got.body).equals(Buffer.from(bytes)), 'bytes differ');
    assert.equal(got.contentType, 'image/png');
    assert.deepEqual(got.metadata, { category: 'png', thread_id: threadId });
  });

  it('stores an empty body', async () => {
    const key = storageKey('user-1', randomUUID());
    await storage.put(key, new Uint8Array(), { contentType: 'application/json' });
    assert.deepEqual(await storage.head(key), {
      contentType: 'application/json',
      contentDisposition: null,
      size: 0,
      metadata: {},
    });
    assert.equal((await storage.get(key))?.body.byteLength, 0);
  });

  it('answers null for a missing key', async () => {
    const key = storageKey('user-1', randomUUID());
    assert.equal(await storage.head(key), null);
    assert.equal(await storage.get(key), null);
  });

  it('deletes an object, and deleting a missing one succeeds', async () => {
    const key = storageKey('user-1', randomUUID());
    await storage.put(key, new Uint8Array([1, 2, 3]));
    assert.notEqual(await storage.head(key), null);
    await storage.delete(key);
    assert.equal(await storage.head(key), null);
    await storage.delete(key);
  });

  it('rejects metadata that S3 headers cannot carry, as a non-retryable ValidationError', async () => {
    const key = storageKey('user-1', randomUUID());
    const invalid: Record<string, string>[] = [{ Category: 'png' }, { category: 'é' }, { category: 'a\nb' }];
    for (const metadata of invalid) {
      await assert.rejects(storage.put(key, new Uint8Array([1]), { metadata }), (err: unknown) => {
        assert.ok(err instanceof ValidationError);
        assert.equal(err.retryable, false);
        return true;
      });
    }
    assert.equal(await storage.head(key), null, 'nothing was written');
  });

  it('signs a path-style GET URL that returns the exact bytes, then expires', async () => {
    const key = storageKey('user-2', randomUUID());
    const bytes = sampleBytes(70_001);
    await storage.put(key, bytes, { contentType: 'application/json' });

    // X-Amz-Date has whole seconds, so a URL signed late in a second is valid for less than its
    // expiry: 3 s leaves at least 2 s for the first GET on a busy machine.
    const url = await storage.presignGet(key, 3);
    assert.ok(url.startsWith(`${s3.endpoint}/${settings.bucket}/user-2/`), url);
    // With checksum_when_required the SDK does not ask the server for checksum headers.
    assert.equal(new URL(url).searchParams.has('x-amz-checksum-mode'), false, url);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(bytes)), 'bytes differ');

    await sleep(4100);
    const late = await fetch(url);
    assert.equal(late.status, 403);
    assert.match(await late.text(), /expired/i);
  });

  it('refuses a pre-signed expiry outside 1 s..7 days', async () => {
    const key = storageKey('user-2', randomUUID());
    for (const s of [0, -1, 1.5, 604801]) await assert.rejects(storage.presignGet(key, s), RangeError);
  });

  it('creates a missing bucket once; ensureBucket is idempotent and safe to race', async () => {
    const other = createStorage({ ...settings, bucket: bucketName(), create_bucket: false }, log);
    try {
      const key = storageKey('user-3', randomUUID());
      await assert.rejects(other.put(key, new Uint8Array([1])), assertStorageUnavailable);
      await Promise.all([other.ensureBucket(), other.ensureBucket()]);
      await other.ensureBucket();
      await other.put(key, new Uint8Array([4, 5, 6]));
      assert.deepEqual((await other.get(key))?.body, new Uint8Array([4, 5, 6]));
    } finally {
      other.close();
    }
  });
});

describe('createStorage when the store is down', () => {
  it('fails every call with a retryable storage_unavailable InfrastructureError once the server stops', async () => {
    const s3 = await startTestS3();
    const storage = await connectStorage(s3.settings({ bucket: bucketName() }), log);
    try {
      const key = storageKey('user-4', randomUUID());
      await storage.put(key, new Uint8Array([7]));
      await s3.stop();
      await assert.rejects(storage.put(key, new Uint8Array([8])), assertStorageUnavailable);
      await assert.rejects(storage.head(key), assertStorageUnavailable);
      await assert.rejects(storage.get(key), assertStorageUnavailable);
      await assert.rejects(storage.delete(key), assertStorageUnavailable);
      await assert.rejects(storage.ensureBucket(), assertStorageUnavailable);
    } finally {
      storage.close();
      await s3.stop();
    }
  });

  it('fails connectStorage at boot when create_bucket is set and the store is unreachable', async () => {
    const s3 = await startTestS3();
    const settings = s3.settings({ bucket: bucketName() });
    await s3.stop();
    await assert.rejects(connectStorage(settings, log), assertStorageUnavailable);
  });

  it('gives up on a server that accepts connections but never answers, after request_timeout_ms', {
    timeout: 10_000,
  }, async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    assert.ok(address !== null && typeof address === 'object');
    const storage = createStorage(
      {
        endpoint_url: `http://127.0.0.1:${address.port}`,
        region: 'us-east-1',
        access_key: 'ak',
        secret_key: 'sk',
        bucket: 'neuroagent',
        force_path_style: true,
        checksum_when_required: true,
        create_bucket: false,
        request_timeout_ms: 200,
      },
      log,
    );
    try {
      const started = Date.now();
      await assert.rejects(storage.head(storageKey('user-5', randomUUID())), assertStorageUnavailable);
      // Three attempts of 200 ms plus the SDK's backoff: far below a default that never ends.
      assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    } finally {
      storage.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
