// Shared types of the circuit_q pipeline: download → extract → read the SONATA population →
// load it into DuckDB → (LLM writes SQL) → guarded query. Types and the table's name only.

/** The one table a population is loaded into, and the only one a query may read. */
export const TABLE_NAME = 'neurons';

/** One column of a node population, in node order (node id = index). */
export type PopulationColumn =
  | { name: string; type: 'integer'; values: Int32Array | Uint32Array | BigInt64Array | number[] }
  | { name: string; type: 'float'; values: Float32Array | Float64Array | number[] }
  | { name: string; type: 'string'; values: string[] };

export interface NodePopulation {
  name: string;
  count: number;
  /** node_id, node_type_id, then every dataset under /nodes/<population>/0, @library resolved. */
  columns: PopulationColumn[];
}

export interface QueryResult {
  columns: string[];
  /** Row-major values, JSON-ready (bigint converted to number or string). */
  rows: unknown[][];
  truncated: boolean;
}
