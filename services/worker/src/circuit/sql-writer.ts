// The LLM half of circuit_q (docs/circuit-analysis.md): a chat model with structured output writes
// one DuckDB SELECT for a question, and answerQuestion runs it through the guard, asking once more
// with DuckDB's error attached. Must not import DuckDB: the database is reached through PopulationDb.
import type { TokenConsumption } from '@neuroagent/contracts';
import { ATTR, InfrastructureError, SpanKind, TaskFailedError, withSpan } from '@neuroagent/platform';
import OpenAI, { APIConnectionError, APIError } from 'openai';
import type { PopulationDb, QueryLimits, SchemaSummary } from './duckdb-population.ts';
import { TABLE_NAME } from './duckdb-population.ts';
import type { QueryResult } from './types.ts';

export interface SqlWriterOptions {
  apiKey: string;
  /** OpenAI-compatible base URL ending in /v1; undefined or '' uses the SDK's default. */
  baseUrl?: string;
  model: string;
  timeoutMs: number;
}

export interface PreviousAttempt {
  sql: string;
  error: string;
}

export interface SqlWriter {
  write(
    question: string,
    schema: SchemaSummary,
    previous?: PreviousAttempt,
  ): Promise<{ sql: string; usage: TokenConsumption }>;
}

/** Structured output: the reply must be `{"sql_statement": "..."}` and nothing else. */
const SQL_STATEMENT_FORMAT = {
  type: 'json_schema',
  json_schema: {
    name: 'sql_statement',
    strict: true,
    schema: {
      type: 'object',
      properties: { sql_statement: { type: 'string' } },
      required: ['sql_statement'],
      additionalProperties: false,
    },
  },
} as const;

export const SYSTEM_PROMPT = `You are an expert SQL writer for neuroscience data. You answer questions about one node population of a SONATA circuit (a model of brain tissue) by writing one DuckDB SQL query.

The table \`${TABLE_NAME}\` has one row per node (neuron). Its columns come from the SONATA nodes file; the usual ones are:
- node_id: index of the node in the population, from 0.
- node_type_id: SONATA node type id (-1 when node types are not used).
- model_type: kind of model, e.g. biophysical, point_neuron, virtual.
- x, y, z: soma position in micrometres, in the circuit's coordinate system.
- orientation_w, orientation_x, orientation_y, orientation_z: soma orientation as a quaternion.
- rotation_angle_xaxis, rotation_angle_yaxis, rotation_angle_zaxis: soma rotation as Euler angles, in radians.
- morphology: name of the morphology file of the cell (without extension).
- model_template: electrical model template, e.g. hoc:cADpyr_L5TPC.
- layer: cortical layer, often a string such as '1' to '6' (compare with the type shown below).
- mtype: morphological type, e.g. L5_TPC:A, L23_BP, L4_SSC.
- etype: electrical type, e.g. cADpyr, cNAC, bAC, dSTUT.
- region: brain region acronym, e.g. S1HL, S1FL.
- synapse_class: EXC (excitatory) or INH (inhibitory).
- ei or exc/inh flags, where present: excitatory versus inhibitory.
- morph_class: PYR (pyramidal) or INT (interneuron).
- hemisphere: left or right.
- me_combo, emodel: the combined morpho-electrical model of the cell.
- Columns named like @dynamics:holding_current or threshold_current hold per-cell model parameters (currents in nA).
Only the columns listed in the user message exist; use their exact names and the value formats shown in the sample rows. String comparisons are case-sensitive.

Rules:
- Write exactly one read-only SELECT statement (a WITH ... SELECT or a UNION of SELECTs is fine) over the table ${TABLE_NAME}.
- Use DuckDB SQL syntax and DuckDB functions.
- Quote an identifier with double quotes when it is not a plain lower-case word, e.g. "@dynamics:holding_current", or when it is an SQL keyword.
- Never write DDL or DML (CREATE, INSERT, UPDATE, DELETE, DROP, ALTER), PRAGMA, SET, ATTACH, COPY, INSTALL or LOAD.
- Never read files or URLs (read_csv, read_parquet, read_json, glob and the like) and never use other tables.
- Results are capped to a limited number of rows: aggregate (count, avg, min, max, GROUP BY) when the question asks for numbers, and add ORDER BY so the answer is deterministic.

Reply with JSON: {"sql_statement": "<the query>"}.`;

/** The user message: the table's columns and types, 5 sample rows as JSON lines, the question. */
export function userPrompt(question: string, schema: SchemaSummary): string {
  const columns = schema.columns.map((c) => `- ${c.name}: ${c.type}`).join('\n');
  const sample = schema.sample.map((row) => JSON.stringify(row)).join('\n');
  return [
    `Columns of the table ${TABLE_NAME} (name: DuckDB type):`,
    columns,
    '',
    `The first ${schema.sample.length} rows, as JSON lines:`,
    sample,
    '',
    `Question: ${question}`,
  ].join('\n');
}

export function retryPrompt(previous: PreviousAttempt): string {
  return [
    'DuckDB rejected that query with this error:',
    previous.error,
    '',
    'Write a corrected query that answers the same question.',
  ].join('\n');
}

// ------------------------------------------------------------------------------------------------
// The writer
// ------------------------------------------------------------------------------------------------

/** Fails the task when no key is configured, before any LLM client is built. */
export function requireLlmKey(apiKey: string): string {
  if (apiKey.trim() === '') {
    throw new TaskFailedError('llm_unavailable', 'no LLM API key: set TASKS_LLM__OPENAI_TOKEN');
  }
  return apiKey;
}

export function createSqlWriter(opts: SqlWriterOptions): SqlWriter {
  const client = new OpenAI({
    apiKey: requireLlmKey(opts.apiKey),
    baseURL: opts.baseUrl === '' ? undefined : opts.baseUrl,
    timeout: opts.timeoutMs,
    // One quick retry in the SDK; longer outages surface as InfrastructureError and the consumer's backoff.
    maxRetries: 1,
  });
  const llmSpan = {
    kind: SpanKind.CLIENT,
    attributes: {
      [ATTR.genAiOperation]: 'chat',
      [ATTR.genAiProvider]: 'openai',
      [ATTR.genAiRequestModel]: opts.model,
    },
  };

  return {
    async write(question, schema, previous) {
      const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
        { role: 'system', content: SYSTEM_PROMPT },
        { role: 'user', content: userPrompt(question, schema) },
      ];
      if (previous) {
        messages.push(
          { role: 'assistant', content: JSON.stringify({ sql_statement: previous.sql }) },
          { role: 'user', content: retryPrompt(previous) },
        );
      }
      // The span says which model and how many tokens, never the prompt or the reply.
      return withSpan(`chat ${opts.model}`, llmSpan, async (span) => {
        let completion: OpenAI.Chat.Completions.ChatCompletion;
        try {
          completion = await client.chat.completions.create({
            model: opts.model,
            messages,
            response_format: SQL_STATEMENT_FORMAT,
          });
        } catch (err) {
          throw llmError(err);
        }
        const usage = tokenConsumption(completion.usage, opts.model);
        span?.setAttributes({
          [ATTR.genAiInputTokens]: usage.input_cached + usage.input_noncached,
          [ATTR.genAiOutputTokens]: usage.completion,
        });
        return { sql: sqlFromCompletion(completion), usage };
      });
    },
  };
}

function sqlFromCompletion(completion: OpenAI.Chat.Completions.ChatCompletion): string {
  const choice = completion.choices[0];
  const message = choice?.message;
  if (message?.refusal)
    throw new TaskFailedError('invalid_sql', `the LLM refused to write SQL: ${message.refusal}`);
  if (choice?.finish_reason === 'length') {
    throw new TaskFailedError('invalid_sql', 'the LLM reply was cut off before the SQL was complete');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(message?.content ?? '');
  } catch (err) {
    throw new TaskFailedError(
      'invalid_sql',
      'the LLM reply is not the expected JSON {"sql_statement": ...}',
      {
        cause: err,
      },
    );
  }
  const sql = (parsed as { sql_statement?: unknown } | null)?.sql_statement;
  if (typeof sql !== 'string' || sql.trim() === '') {
    throw new TaskFailedError('invalid_sql', 'the LLM reply has no sql_statement');
  }
  return sql.trim();
}

/** The original's token keys: prompt tokens split into cached and not cached. */
function tokenConsumption(usage: OpenAI.CompletionUsage | undefined, model: string): TokenConsumption {
  const prompt = usage?.prompt_tokens ?? 0;
  const cached = Math.min(usage?.prompt_tokens_details?.cached_tokens ?? 0, prompt);
  return {
    input_cached: cached,
    input_noncached: prompt - cached,
    completion: usage?.completion_tokens ?? 0,
    model,
  };
}

export function addUsage(a: TokenConsumption, b: TokenConsumption): TokenConsumption {
  return {
    input_cached: a.input_cached + b.input_cached,
    input_noncached: a.input_noncached + b.input_noncached,
    completion: a.completion + b.completion,
    model: a.model,
  };
}

/** A bad key or a refused request fails the task; rate limits, 5xx and network errors are retried later. */
function llmError(err: unknown): Error {
  if (err instanceof APIConnectionError) {
    return new InfrastructureError('llm_unavailable', `cannot reach the LLM: ${err.message}`, { cause: err });
  }
  if (err instanceof APIError) {
    const status = err.status ?? 0;
    if (status === 401 || status === 403) {
      return new TaskFailedError(
        'llm_unavailable',
        `the LLM refused the API key (${status}): ${err.message}`,
        {
          cause: err,
        },
      );
    }
    if (status === 429 && err.code === 'insufficient_quota') {
      return new TaskFailedError('llm_unavailable', `the LLM account has no quota left: ${err.message}`, {
        cause: err,
      });
    }
    if (status === 408 || status === 409 || status === 429 || status >= 500) {
      return new InfrastructureError(
        'llm_unavailable',
        `the LLM is unavailable (${status}): ${err.message}`,
        {
          cause: err,
        },
      );
    }
    return new TaskFailedError(
      'llm_unavailable',
      `the LLM rejected the request (${status}): ${err.message}`,
      {
        cause: err,
      },
    );
  }
  return err instanceof Error ? err : new Error(String(err));
}

// ------------------------------------------------------------------------------------------------
// Question → SQL → rows
// ------------------------------------------------------------------------------------------------

export interface Answer {
  result: QueryResult;
  /** The SQL that ran, as DuckDB normalized it (without the row cap wrapper). */
  sql: string;
  /** Summed over every LLM call, the failed attempt included. */
  usage: TokenConsumption;
}

/**
 * write → guard → query. When the guard or DuckDB rejects the SQL (invalid_sql, query_failed),
 * the writer is asked once more with the error; a second failure is the task's error. A timeout
 * is not retried: a rewritten query is as likely to be slow.
 */
export async function answerQuestion(
  db: PopulationDb,
  writer: SqlWriter,
  question: string,
  limits: QueryLimits,
): Promise<Answer> {
  const schema = db.schemaSummary();
  const first = await writer.write(question, schema);
  try {
    return { ...(await runGuarded(db, first.sql, limits)), usage: first.usage };
  } catch (err) {
    if (!isSqlError(err)) throw err;
    const second = await writer.write(question, schema, { sql: first.sql, error: err.message });
    const usage = addUsage(first.usage, second.usage);
    return { ...(await runGuarded(db, second.sql, limits)), usage };
  }
}

async function runGuarded(
  db: PopulationDb,
  sql: string,
  limits: QueryLimits,
): Promise<{ result: QueryResult; sql: string }> {
  const normalized = await db.checkSql(sql);
  return { result: await db.query(normalized, limits), sql: normalized };
}

function isSqlError(err: unknown): err is TaskFailedError {
  return err instanceof TaskFailedError && (err.code === 'invalid_sql' || err.code === 'query_failed');
}
