// Artifact storage on S3 or an S3-compatible server (@aws-sdk/client-s3 v3). Workers put figures
// and files under `{user_id}/{id}`; the gateway heads them and hands out pre-signed GET URLs.
// Every failure of the store becomes a retryable InfrastructureError (`storage_unavailable`), so
// the worker naks and the gateway answers 503. Never imports the services.
import {
  type BucketLocationConstraint,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { type Static, Type } from '@sinclair/typebox';
import { ConfigError, errorMessage, InfrastructureError, ValidationError } from './errors.ts';
import type { Logger } from './logger.ts';

// ------------------------------------------------------------------ settings

export const StorageSettings = Type.Object({
  endpoint_url: Type.String({
    default: '',
    description: 'S3 endpoint URL of an S3-compatible server; empty uses the AWS endpoint of `region`',
  }),
  region: Type.String({
    default: 'us-east-1',
    minLength: 1,
    description: 'S3 region (signing and AWS endpoint)',
  }),
  access_key: Type.String({
    default: '',
    description: 'S3 access key id; empty uses the AWS default credential chain (env, profile, IAM role)',
  }),
  secret_key: Type.String({ default: '', description: 'S3 secret access key (required with `access_key`)' }),
  bucket: Type.String({
    default: 'neuroagent',
    minLength: 3,
    maxLength: 63,
    description: 'Bucket holding the task artifacts',
  }),
  force_path_style: Type.Boolean({
    default: false,
    description:
      'Address buckets as `<endpoint>/<bucket>/<key>` instead of `<bucket>.<host>`; most S3-compatible servers need true',
  }),
  checksum_when_required: Type.Boolean({
    default: false,
    description:
      'Send and check CRC checksums only where S3 requires them; set true for S3-compatible servers that store the aws-chunked framing inside the object',
  }),
  create_bucket: Type.Boolean({
    default: false,
    description: 'Create the bucket at boot when it is absent (local development and tests)',
  }),
  request_timeout_ms: Type.Integer({
    default: 30000,
    minimum: 100,
    description: 'Time limit of one S3 request attempt (connect and response); the SDK retries twice',
  }),
});
export type StorageSettings = Static<typeof StorageSettings>;

// ------------------------------------------------------------------ keys

// Storage ids are the UUIDs the worker generates (v4 here, as the original). A strict pattern
// keeps `/` and `..` out, so a caller can only ever name keys under its own user id.
const STORAGE_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isStorageId(id: string): boolean {
  return STORAGE_ID_RE.test(id);
}

/** The original's key scheme, `{user_id}/{id}`. Throws on an id that could escape the user's prefix. */
export function storageKey(userId: string, id: string): string {
  if (userId === '') throw new RangeError('storage key needs a user id');
  if (!isStorageId(id)) throw new RangeError(`not a storage id: ${JSON.stringify(id)}`);
  return `${userId}/${id}`;
}

// ------------------------------------------------------------------ client

export interface PutOptions {
  contentType?: string;
  /** `Content-Disposition` served with the object (e.g. `attachment` for user-made files). */
  contentDisposition?: string;
  /** S3 user metadata (`x-amz-meta-*`): lowercase keys, printable ASCII values. */
  metadata?: Record<string, string>;
}

export interface StoredObjectInfo {
  contentType: string;
  contentDisposition: string | null;
  size: number;
  metadata: Record<string, string>;
}

export interface StoredObject extends StoredObjectInfo {
  body: Uint8Array;
}

export interface Storage {
  readonly bucket: string;
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<void>;
  /** null when the key (or the bucket) does not exist. */
  head(key: string): Promise<StoredObjectInfo | null>;
  /** null when the key does not exist. */
  get(key: string): Promise<StoredObject | null>;
  /** A URL anyone can GET for `expiresInS` seconds. Signed locally: it does not check that the key exists. */
  presignGet(key: string, expiresInS: number): Promise<string>;
  /** Creates the bucket when absent; safe to call concurrently from several processes. */
  ensureBucket(): Promise<void>;
  /** Deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  close(): void;
}

/** The SDK client configuration for the settings; exported so the mapping is tested directly. */
export function s3ClientConfig(settings: StorageSettings): S3ClientConfig {
  if ((settings.access_key === '') !== (settings.secret_key === '')) {
    const path = settings.access_key === '' ? 'storage.access_key' : 'storage.secret_key';
    throw new ConfigError(`${path} is required when the other storage key is set`, [
      { path, message: 'access_key and secret_key go together' },
    ]);
  }
  const when = settings.checksum_when_required ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  return {
    region: settings.region,
    ...(settings.endpoint_url === '' ? {} : { endpoint: settings.endpoint_url }),
    forcePathStyle: settings.force_path_style,
    ...(settings.access_key === ''
      ? {}
      : { credentials: { accessKeyId: settings.access_key, secretAccessKey: settings.secret_key } }),
    requestChecksumCalculation: when,
    responseChecksumValidation: when,
    // Without limits the SDK waits for ever on a stalled server, and the task holds its worker slot.
    requestHandler: {
      connectionTimeout: settings.request_timeout_ms,
      requestTimeout: settings.request_timeout_ms,
      throwOnRequestTimeout: true,
    },
  };
}

function isNotFound(err: unknown): boolean {
  return err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404;
}

const METADATA_KEY_RE = /^[a-z0-9][a-z0-9_-]*$/;
const METADATA_VALUE_RE = /^[\x20-\x7e]*$/;

function checkMetadata(metadata: Record<string, string>): void {
  const details = Object.entries(metadata).flatMap(([k, v]) => [
    ...(METADATA_KEY_RE.test(k)
      ? []
      : [{ path: `metadata.${k}`, message: 'key must be lowercase [a-z0-9_-]' }]),
    ...(METADATA_VALUE_RE.test(v)
      ? []
      : [{ path: `metadata.${k}`, message: 'value must be printable ASCII' }]),
  ]);
  // A header the HTTP stack refuses would otherwise surface as a retryable storage error.
  if (details.length > 0) throw new ValidationError('invalid storage metadata', details);
}

export function createStorage(settings: StorageSettings, log: Logger): Storage {
  const client = new S3Client(s3ClientConfig(settings));
  const bucket = settings.bucket;
  const slog = log.child({ module: 'storage' });

  const unavailable = (op: string, key: string | null, err: unknown): InfrastructureError =>
    new InfrastructureError(
      'storage_unavailable',
      `storage ${op} ${key === null ? bucket : `${bucket}/${key}`} failed: ${errorMessage(err)}`,
      { cause: err },
    );

  return {
    bucket,

    async put(key, body, options = {}) {
      const metadata = options.metadata ?? {};
      checkMetadata(metadata);
      try {
        await client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: body,
            ContentLength: body.byteLength,
            ContentType: options.contentType ?? 'application/octet-stream',
            ContentDisposition: options.contentDisposition,
            Metadata: metadata,
          }),
        );
      } catch (err) {
        throw unavailable('put', key, err);
      }
      slog.debug({ key, size: body.byteLength }, 'object stored');
    },

    async head(key) {
      try {
        const out = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return {
          contentType: out.ContentType ?? 'application/octet-stream',
          contentDisposition: out.ContentDisposition ?? null,
          size: out.ContentLength ?? 0,
          metadata: out.Metadata ?? {},
        };
      } catch (err) {
        if (isNotFound(err)) return null;
        throw unavailable('head', key, err);
      }
    },

    async get(key) {
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        // MUST read the whole body inside the try: a connection lost mid-body fails here, not at send().
        const body = out.Body === undefined ? new Uint8Array() : await out.Body.transformToByteArray();
        return {
          body,
          contentType: out.ContentType ?? 'application/octet-stream',
          contentDisposition: out.ContentDisposition ?? null,
          size: body.byteLength,
          metadata: out.Metadata ?? {},
        };
      } catch (err) {
        if (isNotFound(err)) return null;
        throw unavailable('get', key, err);
      }
    },

    async presignGet(key, expiresInS) {
      // S3 refuses SigV4 pre-signed URLs valid for more than 7 days.
      if (!Number.isInteger(expiresInS) || expiresInS < 1 || expiresInS > 604800) {
        throw new RangeError(`presign expiry must be an integer in 1..604800 s, got ${expiresInS}`);
      }
      try {
        return await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), {
          expiresIn: expiresInS,
        });
      } catch (err) {
        throw unavailable('presign', key, err);
      }
    },

    async ensureBucket() {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
        return;
      } catch (err) {
        if (!isNotFound(err)) throw unavailable('head bucket', null, err);
      }
      try {
        await client.send(
          new CreateBucketCommand({
            Bucket: bucket,
            // us-east-1 is the one region that rejects an explicit LocationConstraint.
            ...(settings.region === 'us-east-1'
              ? {}
              : // The SDK lists the regions it knew at release; a newer one is still sent as is.
                {
                  CreateBucketConfiguration: {
                    LocationConstraint: settings.region as BucketLocationConstraint,
                  },
                }),
          }),
        );
        slog.info({ bucket }, 'storage bucket created');
      } catch (err) {
        // Another process won the race. AWS says BucketAlreadyOwnedByYou; some servers say
        // BucketAlreadyExists, which on AWS means someone else's bucket: the second head tells.
        if (err instanceof S3ServiceException && err.name === 'BucketAlreadyOwnedByYou') return;
        if (!(err instanceof S3ServiceException && err.name === 'BucketAlreadyExists')) {
          throw unavailable('create bucket', null, err);
        }
        try {
          await client.send(new HeadBucketCommand({ Bucket: bucket }));
        } catch (headErr) {
          throw unavailable('create bucket', null, headErr);
        }
      }
    },

    async delete(key) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      } catch (err) {
        throw unavailable('delete', key, err);
      }
    },

    close() {
      client.destroy();
    },
  };
}

/** createStorage, plus the bucket when `create_bucket` is set. Called once by a service's main.ts. */
export async function connectStorage(settings: StorageSettings, log: Logger): Promise<Storage> {
  const storage = createStorage(settings, log);
  if (settings.create_bucket) {
    try {
      await storage.ensureBucket();
    } catch (err) {
      storage.close();
      throw err;
    }
  }
  return storage;
}
