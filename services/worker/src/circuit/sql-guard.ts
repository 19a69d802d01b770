// The SQL guard of circuit_q (docs/circuit-analysis.md): the SQL comes from the caller or from an
// LLM the caller can steer, so it is parsed by DuckDB's own parser (json_serialize_sql), never by
// keyword matching, and accepted only as exactly one read-only SELECT over the population table,
// without parameters and without table functions that could read files or the network. What runs
// is DuckDB's normalized rendering of that one statement (no comments, no trailing semicolon).
import type { DuckDBConnection } from '@duckdb/node-api';
import { TaskFailedError } from '@neuroagent/platform';
import { TABLE_NAME } from './types.ts';

const ALLOWED_TABLE_FUNCTIONS = new Set(['range', 'generate_series', 'unnest']);
/** Top-level nodes json_serialize_sql produces for a SELECT statement. */
const SELECT_NODE_TYPES = new Set(['SELECT_NODE', 'SET_OPERATION_NODE', 'RECURSIVE_CTE_NODE', 'CTE_NODE']);
/** String columns with at most this many distinct values are loaded through an ENUM (see planStringColumn). */

/** Throws TaskFailedError('invalid_sql') unless `sql` is exactly one read-only SELECT; returns it normalized. */
export async function guardSql(conn: DuckDBConnection, sql: string): Promise<string> {
  const serialized = await runScalar(conn, 'SELECT json_serialize_sql($1::VARCHAR)', sql);
  checkSerialized(serialized);
  return runScalar(conn, 'SELECT json_deserialize_sql(json_serialize_sql($1::VARCHAR))', sql);
}

async function runScalar(conn: DuckDBConnection, sql: string, param: string): Promise<string> {
  try {
    const reader = await conn.runAndReadAll(sql, [param]);
    return String(reader.getRows()[0]?.[0]);
  } catch (err) {
    throw new TaskFailedError('invalid_sql', duckdbMessage(err), { cause: err });
  }
}

/** Reads json_serialize_sql's answer: an error, or exactly one SELECT using no file-reading table function. */
function checkSerialized(serialized: string): void {
  const parsed: unknown = JSON.parse(serialized);
  const answer = (parsed ?? {}) as {
    error?: boolean;
    error_type?: string;
    error_message?: string;
    statements?: unknown;
  };
  if (answer.error) {
    const message = answer.error_message ?? 'unknown error';
    if (answer.error_type === 'not implemented') {
      // json_serialize_sql refuses everything that is not a SELECT (INSERT, PRAGMA, SET, COPY, …).
      throw new TaskFailedError(
        'invalid_sql',
        `only one read-only SELECT statement is allowed (DuckDB: ${message})`,
      );
    }
    throw new TaskFailedError(
      'invalid_sql',
      `${capitalize(answer.error_type ?? 'parser')} Error: ${message}`,
    );
  }
  const statements = Array.isArray(answer.statements) ? (answer.statements as unknown[]) : [];
  if (statements.length !== 1) {
    throw new TaskFailedError(
      'invalid_sql',
      statements.length === 0
        ? 'the SQL is empty'
        : `expected one SELECT statement, got ${statements.length}`,
    );
  }
  const statement = statements[0] as { node?: { type?: unknown }; named_param_map?: unknown };
  const nodeType = statement.node?.type;
  if (typeof nodeType !== 'string' || !SELECT_NODE_TYPES.has(nodeType)) {
    throw new TaskFailedError('invalid_sql', `only a SELECT statement is allowed, got ${String(nodeType)}`);
  }
  if (Array.isArray(statement.named_param_map) && statement.named_param_map.length > 0) {
    throw new TaskFailedError(
      'invalid_sql',
      'the SQL must not have parameters ($1, ?): write the values inline',
    );
  }
  for (const name of tableFunctionNames(statement.node)) {
    if (!ALLOWED_TABLE_FUNCTIONS.has(name.toLowerCase())) {
      throw new TaskFailedError(
        'invalid_sql',
        `table function ${name}() is not allowed: query the table ${TABLE_NAME} (allowed table functions: ${[...ALLOWED_TABLE_FUNCTIONS].join(', ')})`,
      );
    }
  }
}

/** Names of every table function in the serialized tree, subqueries and CTEs included. */
function tableFunctionNames(node: unknown, names: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const child of node) tableFunctionNames(child, names);
  } else if (node !== null && typeof node === 'object') {
    const record = node as Record<string, unknown>;
    if (record.type === 'TABLE_FUNCTION') {
      const fn = record.function as { function_name?: unknown } | undefined;
      names.push(typeof fn?.function_name === 'string' ? fn.function_name : '(unknown)');
    }
    for (const child of Object.values(record)) tableFunctionNames(child, names);
  }
  return names;
}

export function duckdbMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
