// `db` fragment of GatewayConfig (NEUROAGENT_DB__URL, NEUROAGENT_DB__DEBUG): where the task ledger
// lives. SQLite is the embedded default; PostgreSQL is used in compose and production (docs/gateway.md).
import { type Static, Type } from '@sinclair/typebox';

/** The SQLite file used when `db.url` is empty, relative to the working directory. */
export const DEFAULT_SQLITE_PATH = '.data/neuroagent.sqlite';

export const DbSettings = Type.Object({
  url: Type.String({
    default: '',
    pattern: '^$|^postgres(ql)?://|^sqlite:',
    description:
      'Task ledger database: empty = SQLite file `.data/neuroagent.sqlite`; `sqlite:<path>` = another SQLite file; `postgresql://user@host:5432/db` = PostgreSQL',
  }),
  debug: Type.Boolean({
    default: false,
    description: 'Log every SQL statement the ledger runs (debug level)',
  }),
  events_linger_ms: Type.Integer({
    default: 20,
    minimum: 0,
    maximum: 1000,
    description:
      'After a small batch, the ledger consumer waits this long before reading tasks:events again, so status changes are written in batches; the ledger lags by up to this much',
  }),
  events_claim_idle_s: Type.Integer({
    default: 60,
    minimum: 1,
    maximum: 3600,
    description:
      'A tasks:events entry a gateway read but did not acknowledge for this long is taken over by another replica (the reader died): how long a dead replica can hold back ledger updates',
  }),
  sqlite_synchronous: Type.Union([Type.Literal('normal'), Type.Literal('full')], {
    default: 'normal',
    description:
      'SQLite only (the file runs in WAL mode): `normal` syncs to disk at checkpoints, so a power loss may drop the last moments of ledger history (tasks:events and the result backend still hold them); `full` syncs every commit, ~1 ms each',
  }),
  sqlite_transaction_wait_ms: Type.Integer({
    default: 5000,
    minimum: 10,
    maximum: 60000,
    description:
      "SQLite only: the task writes of the hot path run on the ORM's connection but outside its transactions; " +
      'the longest such a write waits for an open one to end before it fails (ledger_busy)',
  }),
});
export type DbSettings = Static<typeof DbSettings>;

export type DbTarget = { dialect: 'sqlite'; path: string } | { dialect: 'postgresql'; url: string };

/** Resolves `db.url` to a dialect; the pattern above has already rejected anything else. */
export function dbTarget(settings: Pick<DbSettings, 'url'>): DbTarget {
  const url = settings.url.trim();
  if (url === '') return { dialect: 'sqlite', path: DEFAULT_SQLITE_PATH };
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    return { dialect: 'sqlite', path: path === '' ? DEFAULT_SQLITE_PATH : path };
  }
  return { dialect: 'postgresql', url };
}
