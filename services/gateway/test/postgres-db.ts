// A fresh PostgreSQL database per test suite, on the server the tests find: TEST_POSTGRES_URL, or
// the `test` database as `postgres` or `root` on 127.0.0.1 (trust auth). drop() removes it.
import { randomBytes } from 'node:crypto';
import { MikroORM } from '@mikro-orm/core';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { TaskRow } from '../src/ledger/task-entity.ts';

async function adminOrm(): Promise<{ orm: MikroORM; url: URL }> {
  const candidates = process.env.TEST_POSTGRES_URL
    ? [process.env.TEST_POSTGRES_URL]
    : ['postgresql://postgres@127.0.0.1:5432/test', 'postgresql://root@127.0.0.1:5432/test'];
  const errors: string[] = [];
  for (const clientUrl of candidates) {
    const orm = await MikroORM.init({
      driver: PostgreSqlDriver,
      clientUrl,
      entities: [TaskRow],
      ensureDatabase: false,
      allowGlobalContext: false,
    });
    try {
      await orm.em.getConnection().execute('select 1');
      return { orm, url: new URL(clientUrl) };
    } catch (err) {
      errors.push(`${clientUrl}: ${(err as Error).message}`);
      await orm.close(true);
    }
  }
  throw new Error(`these tests need PostgreSQL (set TEST_POSTGRES_URL):\n${errors.join('\n')}`);
}

/** A new, empty database named `<prefix>_<random>`, and how to drop it. */
export async function createPostgresDatabase(
  prefix: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const { orm, url } = await adminOrm();
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await orm.em.getConnection().execute(`create database "${name}"`);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await orm.em.getConnection().execute(`drop database if exists "${name}" with (force)`);
      await orm.close(true);
    },
  };
}
