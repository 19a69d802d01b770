// One node population as an in-memory DuckDB table `neurons`, and the guarded query path over it
// (docs/circuit-analysis.md): every statement passes the SQL guard (sql-guard.ts) first, then runs
// under a row cap, a byte cap and a time limit.
// Must not import the LLM client, NATS or the task store: it only knows DuckDB and our error classes.
import {
  BIGINT,
  DOUBLE,
  type DuckDBConnection,
  DuckDBDataChunk,
  DuckDBInstance,
  type DuckDBType,
  DuckDBTypeId,
  type DuckDBValue,
  type DuckDBValueConverter,
  DuckDBVector,
  ENUM,
  FLOAT,
  INTEGER,
  type Json,
  JsonDuckDBValueConverter,
  quotedIdentifier,
  StatementType,
  VARCHAR,
} from '@duckdb/node-api';
import { ATTR, InfrastructureError, SpanKind, TaskFailedError, withSpan } from '@neuroagent/platform';
import { duckdbMessage, guardSql } from './sql-guard.ts';
import { type NodePopulation, type PopulationColumn, type QueryResult, TABLE_NAME } from './types.ts';

export { TABLE_NAME };

const QUERY_SPAN = {
  kind: SpanKind.CLIENT,
  attributes: { [ATTR.dbSystem]: 'duckdb', [ATTR.dbOperation]: 'SELECT', [ATTR.dbCollection]: TABLE_NAME },
};

/** What the LLM is shown about the table: column names and SQL types, and the first 5 rows. */
export interface SchemaSummary {
  columns: { name: string; type: string }[];
  sample: Record<string, unknown>[];
}

export interface QueryLimits {
  /** Rows returned at most; one more is fetched to tell whether the result was cut. */
  maxRows: number;
  timeoutMs: number;
  /** Bytes of the rows as JSON at most; one row can hold gigabytes (repeat, list, string_agg). */
  maxResultBytes: number;
}

export interface PopulationDb {
  schemaSummary(): SchemaSummary;
  /** Throws TaskFailedError('invalid_sql') unless `sql` is exactly one read-only SELECT; returns it normalized. */
  checkSql(sql: string): Promise<string>;
  /** Guards `sql` itself (callers cannot skip the guard), then runs it under the row cap and time limit. */
  query(sql: string, limits: QueryLimits): Promise<QueryResult>;
  /** Interrupts running queries and frees the instance. Idempotent. */
  close(): void;
}

export interface OpenPopulationDbOptions {
  memoryLimitMb: number;
  threads?: number;
}

/** Table functions a query may use in FROM; file readers (read_csv, glob, …) and query() are refused. */
const DICTIONARY_MAX_VALUES = 4096;
const SAMPLE_ROWS = 5;

// ------------------------------------------------------------------------------------------------
// Opening and loading
// ------------------------------------------------------------------------------------------------

export async function openPopulationDb(
  population: NodePopulation,
  opts: OpenPopulationDbOptions,
): Promise<PopulationDb> {
  const plans = planColumns(population);
  // MUST keep enable_external_access last: DuckDB refuses some options (temp_directory) once it is off.
  // temp_directory '' means a query over the memory limit fails instead of spilling to the worker's disk.
  const instance = await DuckDBInstance.create(':memory:', {
    memory_limit: `${opts.memoryLimitMb}MB`,
    ...(opts.threads === undefined ? {} : { threads: String(opts.threads) }),
    temp_directory: '',
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
    allow_community_extensions: 'false',
    enable_external_access: 'false',
  });
  let summary: SchemaSummary;
  try {
    const conn = await instance.connect();
    try {
      await loadTable(conn, plans, population.count);
      summary = await readSchemaSummary(conn);
      // After this, a query cannot SET its way around the limits above.
      await conn.run('SET lock_configuration = true');
    } finally {
      conn.closeSync();
    }
  } catch (err) {
    instance.closeSync();
    throw err;
  }
  return createPopulationDb(instance, summary);
}

interface ColumnPlan {
  name: string;
  /** Type of the column in the load table. */
  loadType: DuckDBType;
  /** Loaded as an ENUM, cast to VARCHAR in the final table. */
  viaEnum: boolean;
  write(vector: DuckDBVector, offset: number, rowCount: number): void;
}

function planColumns(population: NodePopulation): ColumnPlan[] {
  if (population.columns.length === 0) {
    throw new TaskFailedError('bad_archive', `population ${population.name} has no columns`);
  }
  const seen = new Set<string>();
  return population.columns.map((column) => {
    // SQL identifiers are case-insensitive: "Layer" and "layer" cannot both be columns.
    const key = column.name.toLowerCase();
    if (seen.has(key)) {
      throw new TaskFailedError(
        'bad_archive',
        `population ${population.name} has two columns named ${column.name}`,
      );
    }
    seen.add(key);
    if (column.values.length !== population.count) {
      throw new TaskFailedError(
        'bad_archive',
        `column ${column.name} has ${column.values.length} values, population ${population.name} has ${population.count} nodes`,
      );
    }
    return planColumn(column);
  });
}

function planColumn(column: PopulationColumn): ColumnPlan {
  const { name } = column;
  if (column.type === 'string') return planStringColumn(name, column.values);
  const values = column.values;
  if (values instanceof Int32Array) return plain(name, INTEGER, (i) => values[i]!);
  if (values instanceof Float64Array) return plain(name, DOUBLE, (i) => values[i]!);
  if (values instanceof Float32Array) return plain(name, FLOAT, (i) => values[i]!);
  if (values instanceof BigInt64Array) return plain(name, BIGINT, (i) => values[i]!);
  if (values instanceof Uint32Array) return plain(name, BIGINT, (i) => BigInt(values[i]!));
  // A plain number[]: pick the narrowest type that holds every value.
  const nullable = (i: number): number | null => values[i] ?? null;
  if (column.type === 'float') return plain(name, DOUBLE, nullable);
  let int32 = true;
  let safe = true;
  for (const v of values) {
    if (v == null) continue;
    if (!Number.isSafeInteger(v)) safe = false;
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) int32 = false;
  }
  if (int32) return plain(name, INTEGER, nullable);
  // Non-integers in an "integer" dataset would be rounded by BIGINT: keep them exact as DOUBLE.
  if (!safe) return plain(name, DOUBLE, nullable);
  return plain(name, BIGINT, (i) => (values[i] == null ? null : BigInt(values[i]!)));
}

function plain(name: string, loadType: DuckDBType, valueAt: (row: number) => DuckDBValue): ColumnPlan {
  return {
    name,
    loadType,
    viaEnum: false,
    write(vector, offset, rowCount) {
      for (let r = 0; r < rowCount; r++) vector.setItem(r, valueAt(offset + r));
      vector.flush();
    },
  };
}

/**
 * SONATA string columns are mostly @library values (mtype, etype, region: a few dozen distinct
 * strings). Writing a VARCHAR vector costs one native call per value; an ENUM vector is one copy
 * per chunk, so such columns load several times faster and are cast to VARCHAR afterwards.
 */
function planStringColumn(name: string, values: string[]): ColumnPlan {
  const distinct = new Set<string>();
  for (const v of values) {
    if (v == null) continue;
    distinct.add(v);
    if (distinct.size > DICTIONARY_MAX_VALUES) break;
  }
  const viaEnum = distinct.size > 0 && distinct.size <= DICTIONARY_MAX_VALUES;
  return {
    name,
    loadType: viaEnum ? ENUM([...distinct]) : VARCHAR,
    viaEnum,
    write(vector, offset, rowCount) {
      for (let r = 0; r < rowCount; r++) vector.setItem(r, values[offset + r] ?? null);
      vector.flush();
    },
  };
}

async function loadTable(conn: DuckDBConnection, plans: ColumnPlan[], count: number): Promise<void> {
  const staged = plans.some((p) => p.viaEnum);
  const loadTableName = staged ? `${TABLE_NAME}_load` : TABLE_NAME;
  const columnsSql = plans.map((p) => `${quotedIdentifier(p.name)} ${p.loadType.toString()}`).join(', ');
  await conn.run(`CREATE TABLE ${loadTableName} (${columnsSql})`);

  const appender = await conn.createAppender(loadTableName);
  try {
    const types = plans.map((p) => p.loadType);
    const chunkSize = DuckDBVector.standardSize();
    for (let offset = 0; offset < count; offset += chunkSize) {
      const rowCount = Math.min(chunkSize, count - offset);
      const chunk = DuckDBDataChunk.create(types, rowCount);
      for (let c = 0; c < plans.length; c++) plans[c]!.write(chunk.getColumnVector(c), offset, rowCount);
      appender.appendDataChunk(chunk);
    }
  } finally {
    appender.closeSync();
  }

  if (staged) {
    // insertion order is preserved (DuckDB's default), so row i is still node i.
    const select = plans
      .map((p) =>
        p.viaEnum
          ? `${quotedIdentifier(p.name)}::VARCHAR AS ${quotedIdentifier(p.name)}`
          : quotedIdentifier(p.name),
      )
      .join(', ');
    await conn.run(`CREATE TABLE ${TABLE_NAME} AS SELECT ${select} FROM ${loadTableName}`);
    await conn.run(`DROP TABLE ${loadTableName}`);
  }
}

async function readSchemaSummary(conn: DuckDBConnection): Promise<SchemaSummary> {
  const described = await conn.runAndReadAll(
    `SELECT column_name, data_type FROM information_schema.columns
     WHERE table_schema = 'main' AND table_name = '${TABLE_NAME}' ORDER BY ordinal_position`,
  );
  const columns = described.getRows().map(([name, type]) => ({ name: String(name), type: String(type) }));
  const head = await conn.runAndReadAll(`SELECT * FROM ${TABLE_NAME} LIMIT ${SAMPLE_ROWS}`);
  const names = head.columnNames();
  // fromEntries defines own properties, so even a column named __proto__ stays a plain key.
  const sample = head
    .convertRows(jsonReady)
    .map((row) => Object.fromEntries(names.map((name, i) => [name, row[i]])));
  return { columns, sample };
}

// ------------------------------------------------------------------------------------------------
// The guard and the query path
// ------------------------------------------------------------------------------------------------

function createPopulationDb(instance: DuckDBInstance, summary: SchemaSummary): PopulationDb {
  const open = new Set<DuckDBConnection>();
  let closed = false;

  // One connection per operation: interrupt() acts on a connection, so a timeout must not be able
  // to cancel another task's query on the same cached population.
  async function withConnection<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    if (closed) throw new InfrastructureError('population_db_closed', 'the population database was closed');
    const conn = await instance.connect();
    open.add(conn);
    try {
      return await fn(conn);
    } finally {
      open.delete(conn);
      conn.closeSync();
    }
  }

  async function checkSql(sql: string): Promise<string> {
    return withConnection((conn) => guardSql(conn, sql));
  }

  /** The query in a span that says how many rows came back, never the SQL (the user's, or the LLM's). */
  function query(sql: string, limits: QueryLimits): Promise<QueryResult> {
    return withSpan('circuit query', QUERY_SPAN, async (span) => {
      const result = await runQuery(sql, limits);
      span?.setAttributes({
        [ATTR.dbReturnedRows]: result.rows.length,
        'neuroagent.circuit.truncated': result.truncated,
      });
      return result;
    });
  }

  async function runQuery(sql: string, limits: QueryLimits): Promise<QueryResult> {
    if (!Number.isInteger(limits.maxRows) || limits.maxRows < 1) throw new RangeError('maxRows must be >= 1');
    const normalized = await checkSql(sql);
    // The cap wraps the normalized SQL (one statement, no comments, no trailing semicolon), so the
    // statement cannot close the subquery early or hide the LIMIT behind a comment.
    const wrapped = `SELECT * FROM (${normalized}) AS q LIMIT ${limits.maxRows + 1}`;
    return withConnection(async (conn) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        conn.interrupt();
      }, limits.timeoutMs);
      try {
        const prepared = await conn.prepare(wrapped);
        if (prepared.statementType !== StatementType.SELECT) {
          throw new TaskFailedError('invalid_sql', 'only one SELECT statement is allowed');
        }
        // Streamed chunk by chunk, so the byte cap and the time limit hold while converting too:
        // the interrupt only reaches DuckDB, and a conversion runs in our own thread.
        const deadline = performance.now() + limits.timeoutMs;
        const result = await prepared.stream();
        const rows: Json[][] = [];
        let bytes = 0;
        for (let chunk = await result.fetchChunk(); chunk !== null && chunk.rowCount > 0; ) {
          for (const row of chunk.convertRows(jsonReady)) {
            if (rows.length === limits.maxRows + 1) break;
            bytes += Buffer.byteLength(JSON.stringify(row));
            if (bytes > limits.maxResultBytes) {
              throw new TaskFailedError(
                'result_too_large',
                `the result is larger than ${limits.maxResultBytes} bytes (TASKS_CIRCUIT__MAX_RESULT_KB); select fewer or smaller values`,
              );
            }
            rows.push(row as Json[]);
          }
          if (performance.now() > deadline) {
            timedOut = true;
            throw new Error('conversion past the time limit');
          }
          if (rows.length > limits.maxRows) break;
          chunk = await result.fetchChunk();
        }
        const truncated = rows.length > limits.maxRows;
        if (truncated) rows.length = limits.maxRows;
        return { columns: result.deduplicatedColumnNames(), rows, truncated };
      } catch (err) {
        if (err instanceof TaskFailedError) throw err;
        if (closed) {
          throw new InfrastructureError(
            'population_db_closed',
            'the population database was closed during the query',
            {
              cause: err,
            },
          );
        }
        if (timedOut) {
          throw new TaskFailedError(
            'timeout',
            `the query ran longer than ${limits.timeoutMs} ms and was stopped`,
            {
              cause: err,
            },
          );
        }
        throw new TaskFailedError('query_failed', duckdbMessage(err), { cause: err });
      } finally {
        clearTimeout(timer);
      }
    });
  }

  return {
    schemaSummary: () => summary,
    checkSql,
    query,
    close() {
      if (closed) return;
      closed = true;
      for (const conn of open) conn.interrupt();
      instance.closeSync();
    },
  };
}

// ------------------------------------------------------------------------------------------------
// JSON-ready values and the pandas "columns" shape
// ------------------------------------------------------------------------------------------------

/**
 * DuckDB values as JSON values: 64/128-bit integers become numbers when exact, else strings;
 * FLOAT prints as its shortest float32 form (0.1, not 0.10000000149011612); NaN and ±Infinity
 * become null as pandas writes them; DECIMAL, dates and times are strings; nested types recurse.
 */
export const jsonReady: DuckDBValueConverter<Json> = (value, type, converter) => {
  if (value === null) return null;
  switch (type.typeId) {
    case DuckDBTypeId.BIGINT:
    case DuckDBTypeId.UBIGINT:
    case DuckDBTypeId.HUGEINT:
    case DuckDBTypeId.UHUGEINT: {
      const n = value as bigint;
      return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(n)
        : n.toString();
    }
    case DuckDBTypeId.FLOAT:
      return shortestFloat32(value as number);
    case DuckDBTypeId.DOUBLE:
      return Number.isFinite(value as number) ? (value as number) : null;
    default:
      return JsonDuckDBValueConverter(value, type, converter);
  }
};

function shortestFloat32(v: number): number | null {
  if (!Number.isFinite(v)) return null;
  for (let digits = 1; digits < 9; digits++) {
    const candidate = Number(v.toPrecision(digits));
    if (Math.fround(candidate) === v) return candidate;
  }
  return v;
}

/**
 * The rows as pandas' default `DataFrame.to_json()` (orient "columns"), the original's
 * `result_data`: `{"col": {"0": v0, "1": v1}, ...}`. Built as text so that a column named "0"
 * keeps its place (a JS object would move integer-like keys first).
 */
export function toColumnsJson(result: QueryResult): string {
  const columns = result.columns.map((name, c) => {
    const cells = result.rows.map((row, r) => `"${r}":${JSON.stringify(row[c] ?? null)}`);
    return `${JSON.stringify(name)}:{${cells.join(',')}}`;
  });
  return `{${columns.join(',')}}`;
}
