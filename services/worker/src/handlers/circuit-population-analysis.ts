// circuit_population_analysis: answer a question (the LLM writes one guarded SELECT) or run the
// caller's own SQL over one node population of a SONATA circuit. The circuit is downloaded,
// extracted and loaded once per object and cached (circuit/circuit-cache.ts). Failures the task
// itself reports (bad archive, invalid SQL, …) are TaskFailedErrors with the contract's codes.
import { DEFAULT_POPULATION } from '@neuroagent/contracts';
import { createCircuitCache } from '../circuit/circuit-cache.ts';
import { toColumnsJson } from '../circuit/duckdb-population.ts';
import { answerQuestion, createSqlWriter, requireLlmKey } from '../circuit/sql-writer.ts';
import type { HandlerFactory } from './types.ts';

const MB = 1024 * 1024;

export const createCircuitHandler: HandlerFactory<'circuit_population_analysis'> = async ({
  config,
  log,
}) => {
  const c = config.circuit;
  const cache = createCircuitCache({
    dir: c.cache_dir,
    maxDiskBytes: c.cache_max_disk_mb * MB,
    maxLoaded: c.cache_max_loaded,
    download: {
      maxBytes: c.max_download_mb * MB,
      connectTimeoutMs: c.connect_timeout_s * 1000,
      readTimeoutMs: c.read_timeout_s * 1000,
      maxRedirects: c.max_redirects,
      allowPrivate: c.allow_private_urls,
    },
    extract: { maxBytes: c.max_extract_mb * MB, maxEntries: c.max_archive_entries },
    duckdbMemoryMb: c.duckdb_memory_mb,
    hdf5: { timeoutMs: c.hdf5_timeout_s * 1000, memoryMb: c.hdf5_memory_mb, maxElements: c.max_nodes },
    log: log.child({ module: 'circuit-cache' }),
  });
  const llm = config.llm;
  const writer =
    llm.openai_token === ''
      ? null
      : createSqlWriter({
          apiKey: llm.openai_token,
          model: llm.model,
          timeoutMs: llm.timeout_s * 1000,
          ...(llm.openai_base_url ? { baseUrl: llm.openai_base_url } : {}),
        });
  const limits = {
    maxRows: c.max_rows,
    timeoutMs: c.query_timeout_s * 1000,
    maxResultBytes: c.max_result_kb * 1024,
  };

  return {
    concurrency: c.concurrency,
    async run(input, ctx) {
      // Without a key a question cannot be answered: say so before downloading anything.
      if ('question' in input) requireLlmKey(llm.openai_token);
      const lease = await cache.population(
        input.presigned_url,
        input.population_name ?? DEFAULT_POPULATION,
        ctx.signal,
      );
      try {
        if ('sql' in input) {
          const sql = await lease.db.checkSql(input.sql);
          const result = await lease.db.query(sql, limits);
          return {
            result_data: toColumnsJson(result),
            query_executed: sql,
            token_consumption: null,
            truncated: result.truncated,
          };
        }
        const answer = await answerQuestion(lease.db, writer!, input.question, limits);
        return {
          result_data: toColumnsJson(answer.result),
          query_executed: answer.sql,
          token_consumption: answer.usage,
          truncated: answer.result.truncated,
        };
      } finally {
        lease.release();
      }
    },
    async close() {
      cache.close();
    },
  };
};
