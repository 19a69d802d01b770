// circuit_population_analysis on circuit_q: a natural-language question,
// or a SQL query, about one node population of a SONATA circuit fetched from a pre-signed URL.
import { type Static, Type } from '@sinclair/typebox';
import { defineTask } from './task-definition.ts';

export const CIRCUIT_TASK = 'circuit_population_analysis';
export const CIRCUIT_QUEUE = 'circuit_q';
export const DEFAULT_POPULATION = 'S1nonbarrel_neurons';

/** Failure codes of this task (task status `failed`, `error.code`). */
export const CIRCUIT_ERROR_CODES = [
  'download_failed',
  'too_large',
  'bad_archive',
  'population_not_found',
  'llm_unavailable',
  'invalid_sql',
  'query_failed',
  'result_too_large',
  'timeout',
] as const;
export type CircuitErrorCode = (typeof CIRCUIT_ERROR_CODES)[number];

const common = {
  presigned_url: Type.String({
    minLength: 1,
    maxLength: 8192,
    pattern: '^[Hh][Tt][Tt][Pp][Ss]?://',
    description: 'http(s) URL of the circuit.gz archive (a pre-signed S3 URL)',
  }),
  population_name: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 256,
      description: `Node population to query (default ${DEFAULT_POPULATION})`,
    }),
  ),
};

export const CircuitQuestionInput = Type.Object(
  {
    ...common,
    question: Type.String({ minLength: 1, maxLength: 4000, description: 'The question, in plain language' }),
  },
  { additionalProperties: false },
);
export const CircuitSqlInput = Type.Object(
  {
    ...common,
    sql: Type.String({
      minLength: 1,
      maxLength: 20000,
      description: 'One read-only DuckDB SELECT over the table `neurons` (no LLM involved)',
    }),
  },
  { additionalProperties: false },
);
export const CircuitAnalysisInput = Type.Union([CircuitQuestionInput, CircuitSqlInput], {
  $id: 'CircuitAnalysisInput',
});
export type CircuitAnalysisInput = Static<typeof CircuitAnalysisInput>;

export const TokenConsumption = Type.Object({
  input_cached: Type.Integer({ minimum: 0 }),
  input_noncached: Type.Integer({ minimum: 0 }),
  completion: Type.Integer({ minimum: 0 }),
  model: Type.String(),
});
export type TokenConsumption = Static<typeof TokenConsumption>;

export const CircuitAnalysisOutput = Type.Object(
  {
    result_data: Type.String({
      description: 'The rows as JSON, column by column (pandas "columns" orient, as the original)',
    }),
    query_executed: Type.String(),
    token_consumption: Type.Union([TokenConsumption, Type.Null()], {
      description: 'Summed over every LLM call of the task; null in SQL mode',
    }),
    truncated: Type.Boolean({
      description: 'True when the query returned more rows than TASKS_CIRCUIT__MAX_ROWS',
    }),
  },
  { $id: 'CircuitAnalysisOutput' },
);
export type CircuitAnalysisOutput = Static<typeof CircuitAnalysisOutput>;

export const circuitPopulationAnalysis = defineTask({
  name: CIRCUIT_TASK,
  queue: CIRCUIT_QUEUE,
  description:
    'Answer a question (the LLM writes one read-only SELECT) or run SQL over a node population of a SONATA circuit',
  input: CircuitAnalysisInput,
  output: CircuitAnalysisOutput,
  failureCodes: CIRCUIT_ERROR_CODES,
  tool: {
    id: 'circuit',
    path: '/tools/circuit-population-analysis',
    operationId: 'analyzeCircuitPopulation',
    summary: 'Answer a question (or run SQL) about a circuit population and wait for the result',
    defaultWaitS: 300,
    rateLimit: {
      points: 50,
      windowS: 3600,
      why:
        'Unlimited in the original; lower than run_python because each analysis downloads and scans a ' +
        'circuit (minutes of worker time)',
    },
  },
  agent: {
    description:
      'Answer a question about one node population (neurons) of a SONATA circuit: the tool downloads the circuit ' +
      'from presigned_url, writes one read-only SQL query for the question and returns the rows (result_data, ' +
      'JSON by column) and the query it ran. Only call it with a presigned_url the user gave you; the URL expires, ' +
      'so ask the user for a fresh one when the tool reports download_failed.',
    // The question form only: the model asks in words; SQL mode stays with POST /tasks.
    parameters: CircuitQuestionInput,
  },
  ledger: { tokenUsage: (output) => output.token_consumption },
});
