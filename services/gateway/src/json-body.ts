// Reads a JSON request body with a byte cap, then validates it against a contract schema. An
// oversized body is refused with 413 as soon as it is known to be too large, before it is buffered.

import type { Validator } from '@neuroagent/platform';
import type { Static, TSchema } from '@sinclair/typebox';
import type { Context } from 'koa';
import { HttpError } from './http-error.ts';

export async function readJsonBody(ctx: Context, maxBytes: number): Promise<unknown> {
  if (!ctx.is('application/json')) {
    throw new HttpError(
      415,
      'unsupported_media_type',
      'the request body must be JSON (content-type: application/json)',
    );
  }
  const tooLarge = () =>
    new HttpError(413, 'body_too_large', `the request body is larger than the ${maxBytes}-byte limit`, {
      details: [{ path: '/', message: `limit ${maxBytes} bytes (NEUROAGENT_HTTP__MAX_BODY_KB)` }],
    });
  const declared = Number(ctx.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      ctx.req.resume(); // drain the rest so the 413 can be written on a healthy socket
      throw tooLarge();
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, 'invalid_json', `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

export async function parseBody<T extends TSchema>(
  ctx: Context,
  validator: Validator<T>,
  maxBytes: number,
): Promise<Static<T>> {
  const body = await readJsonBody(ctx, maxBytes);
  if (validator.check(body)) return body;
  const details = validator.errors(body);
  const summary = details.map((d) => `${d.path}: ${d.message}`).join('; ');
  throw new HttpError(400, 'invalid_request', `invalid request body: ${summary}`, { details });
}
