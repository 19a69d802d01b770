import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TokenConsumption } from '@neuroagent/contracts';
import { InfrastructureError, isRetryable, TaskFailedError } from '@neuroagent/platform';
import type { PopulationDb } from '../src/circuit/duckdb-population.ts';
import { openPopulationDb, toColumnsJson } from '../src/circuit/duckdb-population.ts';
import { addUsage, answerQuestion, createSqlWriter, requireLlmKey } from '../src/circuit/sql-writer.ts';
import type { NodePopulation } from '../src/circuit/types.ts';
import { type OpenAiTestServer, type ScriptedReply, startOpenAiTestServer } from './openai-test-server.ts';

const MTYPES = ['L5_TPC:A', 'L23_BP', 'L4_SSC', 'L6_IPC'];

/** 100 neurons; `created` and `updated` are column names the original's keyword guard rejected. */
function smallPopulation(): NodePopulation {
  const count = 100;
  return {
    name: 'S1nonbarrel_neurons',
    count,
    columns: [
      {
        name: 'node_id',
        type: 'integer',
        values: BigInt64Array.from({ length: count }, (_, i) => BigInt(i)),
      },
      { name: 'node_type_id', type: 'integer', values: new Int32Array(count).fill(-1) },
      { name: 'x', type: 'float', values: Float32Array.from({ length: count }, (_, i) => i + 0.1) },
      { name: 'y', type: 'float', values: Float64Array.from({ length: count }, (_, i) => i * 2.5) },
      { name: 'layer', type: 'string', values: Array.from({ length: count }, (_, i) => String(1 + (i % 6))) },
      { name: 'mtype', type: 'string', values: Array.from({ length: count }, (_, i) => MTYPES[i % 4]!) },
      {
        name: 'synapse_class',
        type: 'string',
        values: Array.from({ length: count }, (_, i) => (i % 5 ? 'EXC' : 'INH')),
      },
      { name: 'morphology', type: 'string', values: Array.from({ length: count }, (_, i) => `morph_${i}`) },
      { name: 'created', type: 'integer', values: Array.from({ length: count }, (_, i) => 1000 + i) },
      {
        name: 'updated',
        type: 'integer',
        values: Uint32Array.from({ length: count }, (_, i) => 4_000_000_000 + i),
      },
    ],
  };
}

const LIMITS = { maxRows: 50, timeoutMs: 5000, maxResultBytes: 1 << 20 };
const sqlReply = (sql: string, usage?: ScriptedReply['usage']): ScriptedReply => ({
  content: JSON.stringify({ sql_statement: sql }),
  ...(usage ? { usage } : {}),
});

async function assertCode(
  promise: Promise<unknown>,
  code: string,
  message?: RegExp,
): Promise<TaskFailedError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof TaskFailedError, `expected TaskFailedError(${code}), got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected TaskFailedError(${code}), but it succeeded`);
}

describe('openPopulationDb', () => {
  let db: PopulationDb;
  before(async () => {
    db = await openPopulationDb(smallPopulation(), { memoryLimitMb: 256, threads: 2 });
  });
  after(() => db.close());

  it('loads one typed column per population column and summarises the schema with 5 sample rows', async () => {
    const { columns, sample } = db.schemaSummary();
    assert.deepEqual(columns, [
      { name: 'node_id', type: 'BIGINT' },
      { name: 'node_type_id', type: 'INTEGER' },
      { name: 'x', type: 'FLOAT' },
      { name: 'y', type: 'DOUBLE' },
      { name: 'layer', type: 'VARCHAR' },
      { name: 'mtype', type: 'VARCHAR' },
      { name: 'synapse_class', type: 'VARCHAR' },
      { name: 'morphology', type: 'VARCHAR' },
      { name: 'created', type: 'INTEGER' },
      { name: 'updated', type: 'BIGINT' },
    ]);
    assert.equal(sample.length, 5);
    assert.deepEqual(sample[1], {
      node_id: 1,
      node_type_id: -1,
      x: 1.1,
      y: 2.5,
      layer: '2',
      mtype: 'L23_BP',
      synapse_class: 'EXC',
      morphology: 'morph_1',
      created: 1001,
      updated: 4_000_000_001,
    });
    const all = await db.query(
      'SELECT count(*) AS n, count(DISTINCT mtype) AS m, sum(node_id) AS s FROM neurons',
      LIMITS,
    );
    assert.deepEqual(all.rows, [[100, 4, 4950]]);
  });

  it('keeps node order through the load (row i is node i)', async () => {
    const r = await db.query('SELECT node_id, mtype, morphology FROM neurons LIMIT 5 OFFSET 40', LIMITS);
    assert.deepEqual(
      r.rows.map((row) => row[0]),
      [40, 41, 42, 43, 44],
    );
    assert.deepEqual(r.rows[1], [41, 'L23_BP', 'morph_41']);
  });

  it('refuses a population whose columns disagree with its count', async () => {
    const bad = smallPopulation();
    bad.count = 99;
    await assertCode(openPopulationDb(bad, { memoryLimitMb: 64 }), 'bad_archive', /node_id has 100 values/);
  });
});

describe('PopulationDb.checkSql', () => {
  let db: PopulationDb;
  before(async () => {
    db = await openPopulationDb(smallPopulation(), { memoryLimitMb: 256 });
  });
  after(() => db.close());

  it('accepts a SELECT, a WITH … SELECT and a UNION, and returns them normalized', async () => {
    assert.equal(
      await db.checkSql("select mtype from neurons where layer = '5' ;  -- trailing comment"),
      "SELECT mtype FROM neurons WHERE (layer = '5')",
    );
    assert.match(await db.checkSql('WITH e AS (SELECT * FROM neurons) SELECT count(*) FROM e'), /^WITH e AS/);
    assert.match(await db.checkSql('SELECT 1 AS a UNION ALL SELECT 2'), /UNION/);
  });

  it('accepts a column named created', async () => {
    assert.equal(await db.checkSql('SELECT created FROM neurons'), 'SELECT created FROM neurons');
    const r = await db.query('SELECT created, updated FROM neurons ORDER BY node_id LIMIT 2', LIMITS);
    assert.deepEqual(r.rows, [
      [1000, 4_000_000_000],
      [1001, 4_000_000_001],
    ]);
  });

  it('refuses every statement that is not one SELECT with invalid_sql', async () => {
    const refused = [
      'INSERT INTO neurons (node_id) VALUES (1)',
      "UPDATE neurons SET mtype = 'x'",
      'DELETE FROM neurons',
      'CREATE TABLE t AS SELECT * FROM neurons',
      'DROP TABLE neurons',
      "ATTACH '/tmp/x.db' AS x",
      "COPY neurons TO '/tmp/neurons.csv'",
      'PRAGMA version',
      'SET threads = 1',
      'SELECT 1; SELECT 2',
      'SELECT 1; DROP TABLE neurons',
      'SELEC mtype FROM neurons',
      '',
      'SELECT $1',
    ];
    for (const sql of refused) await assertCode(db.checkSql(sql), 'invalid_sql');
    await assertCode(db.checkSql('SELECT 1; SELECT 2'), 'invalid_sql', /one SELECT statement, got 2/);
    await assertCode(db.checkSql('SELEC mtype FROM neurons'), 'invalid_sql', /syntax error/);
    // query() guards by itself: the table is untouched.
    await assertCode(db.query('DROP TABLE neurons', LIMITS), 'invalid_sql');
    assert.deepEqual((await db.query('SELECT count(*) FROM neurons', LIMITS)).rows, [[100]]);
  });

  it('refuses file-reading table functions, and DuckDB refuses host files anyway', async () => {
    await assertCode(db.checkSql("SELECT * FROM read_csv('/etc/passwd')"), 'invalid_sql', /read_csv/);
    await assertCode(db.query("SELECT * FROM read_text('/etc/passwd')", LIMITS), 'invalid_sql', /read_text/);
    await assertCode(
      db.query("SELECT * FROM neurons WHERE mtype IN (SELECT column0 FROM read_csv('/etc/hosts'))", LIMITS),
      'invalid_sql',
    );
    // A replacement scan on a path is not a table function; external access is off, so it fails at execution.
    await assertCode(db.query("SELECT * FROM '/etc/passwd'", LIMITS), 'query_failed', /passwd/);
    assert.deepEqual((await db.query('SELECT count(*) FROM range(3)', LIMITS)).rows, [[3]]);
  });
});

describe('PopulationDb.query', () => {
  let db: PopulationDb;
  before(async () => {
    db = await openPopulationDb(smallPopulation(), { memoryLimitMb: 256 });
  });
  after(() => db.close());

  it('caps the rows, sets truncated, and cannot be dodged by the query own LIMIT', async () => {
    const capped = await db.query('SELECT node_id FROM neurons ORDER BY node_id DESC', {
      maxRows: 10,
      timeoutMs: 5000,
      maxResultBytes: 1 << 20,
    });
    assert.equal(capped.rows.length, 10);
    assert.equal(capped.truncated, true);
    assert.deepEqual(capped.rows[0], [99]);
    const bigLimit = await db.query('SELECT node_id FROM neurons LIMIT 1000', {
      maxRows: 10,
      timeoutMs: 5000,
      maxResultBytes: 1 << 20,
    });
    assert.equal(bigLimit.rows.length, 10);
    assert.equal(bigLimit.truncated, true);
    const exact = await db.query('SELECT node_id FROM neurons LIMIT 10', {
      maxRows: 10,
      timeoutMs: 5000,
      maxResultBytes: 1 << 20,
    });
    assert.equal(exact.rows.length, 10);
    assert.equal(exact.truncated, false);
  });

  it('refuses a result over its byte cap with result_too_large, even from one row', async () => {
    const limits = { maxRows: 10, timeoutMs: 10_000, maxResultBytes: 100_000 };
    await assertCode(db.query("SELECT repeat('x', 50000000) AS big", limits), 'result_too_large');
    await assertCode(
      db.query('SELECT list(node_id) AS ids FROM range(1000000) t(node_id)', limits),
      'result_too_large',
    );
    await assertCode(
      db.query("SELECT string_agg(repeat('y', 1000), ',') AS s FROM range(200)", limits),
      'result_too_large',
    );
    // Under the cap the same shapes still answer.
    const small = await db.query("SELECT repeat('x', 1000) AS big", limits);
    assert.equal(String(small.rows[0]?.[0]).length, 1000);
  });

  it('stops a slow query with timeout', async () => {
    const started = performance.now();
    await assertCode(
      db.query('SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b', {
        maxRows: 10,
        timeoutMs: 200,
        maxResultBytes: 1 << 20,
      }),
      'timeout',
    );
    assert.ok(performance.now() - started < 5000);
    // The database is still usable after the interrupt.
    assert.deepEqual((await db.query('SELECT count(*) FROM neurons', LIMITS)).rows, [[100]]);
  });

  it('interrupts a running query on close() with a retryable error', async () => {
    const other = await openPopulationDb(smallPopulation(), { memoryLimitMb: 64 });
    const running = other.query(
      'SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b',
      LIMITS,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    other.close();
    const err = await running.then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InfrastructureError, String(err));
    assert.equal(isRetryable(err), true);
    await assert.rejects(other.query('SELECT 1', LIMITS), InfrastructureError);
  });

  it('reports DuckDB execution errors as query_failed with DuckDB message', async () => {
    await assertCode(
      db.query('SELECT no_such_column FROM neurons', LIMITS),
      'query_failed',
      /no_such_column/,
    );
    await assertCode(db.query("SELECT CAST('abc' AS INTEGER)", LIMITS), 'query_failed', /Conversion Error/);
  });

  it('returns JSON-ready values', async () => {
    const r = await db.query(
      `SELECT 9007199254740993::BIGINT AS big, 42::HUGEINT AS huge, 1.50::DECIMAL(4,2) AS dec, DATE '2024-01-02' AS day,
              0.1::FLOAT AS f, 'nan'::DOUBLE AS nan, [1, 2] AS list, {'a': 1} AS rec, NULL AS nothing, 1 AS big`,
      LIMITS,
    );
    // The row-cap subquery makes duplicate names unique the DuckDB way.
    assert.deepEqual(r.columns, ['big', 'huge', 'dec', 'day', 'f', 'nan', 'list', 'rec', 'nothing', 'big_1']);
    assert.deepEqual(r.rows, [
      ['9007199254740993', 42, '1.50', '2024-01-02', 0.1, null, [1, 2], { a: 1 }, null, 1],
    ]);
  });
});

describe('toColumnsJson', () => {
  it('writes pandas DataFrame.to_json() default "columns" orient', () => {
    const json = toColumnsJson({
      columns: ['mtype', 'n', '0'],
      rows: [
        ['L23_BP', 3, true],
        ['L5_TPC:A', null, false],
      ],
      truncated: false,
    });
    assert.equal(
      json,
      '{"mtype":{"0":"L23_BP","1":"L5_TPC:A"},"n":{"0":3,"1":null},"0":{"0":true,"1":false}}',
    );
    assert.equal(toColumnsJson({ columns: ['a'], rows: [], truncated: false }), '{"a":{}}');
  });
});

// ------------------------------------------------------------------------------------------------
// The LLM path, through the real openai SDK against a local test server
// ------------------------------------------------------------------------------------------------

describe('answerQuestion', () => {
  let db: PopulationDb;
  let server: OpenAiTestServer | undefined;
  before(async () => {
    db = await openPopulationDb(smallPopulation(), { memoryLimitMb: 256 });
  });
  after(async () => {
    db.close();
    await server?.close();
  });

  async function writerFor(script: ScriptedReply[]) {
    await server?.close();
    server = await startOpenAiTestServer(script);
    return createSqlWriter({
      apiKey: 'sk-test',
      baseUrl: server.baseUrl,
      model: 'gpt-4o-mini',
      timeoutMs: 5000,
    });
  }

  it('writes SQL with structured output from the schema and the question, runs it, and counts tokens', async () => {
    const writer = await writerFor([
      sqlReply('SELECT mtype, count(*) AS n FROM neurons GROUP BY mtype ORDER BY mtype;', {
        prompt_tokens: 1200,
        completion_tokens: 30,
        cached_tokens: 1024,
      }),
    ]);
    const answer = await answerQuestion(db, writer, 'How many neurons of each mtype?', LIMITS);
    assert.deepEqual(answer.result.rows, [
      ['L23_BP', 25],
      ['L4_SSC', 25],
      ['L5_TPC:A', 25],
      ['L6_IPC', 25],
    ]);
    assert.equal(answer.sql, 'SELECT mtype, count_star() AS n FROM neurons GROUP BY mtype ORDER BY mtype');
    assert.deepEqual(answer.usage, {
      input_cached: 1024,
      input_noncached: 176,
      completion: 30,
      model: 'gpt-4o-mini',
    });

    assert.equal(server!.requests.length, 1);
    assert.equal(server!.authorizations[0], 'Bearer sk-test');
    const request = server!.requests[0]!;
    assert.equal(request.model, 'gpt-4o-mini');
    assert.deepEqual(request.response_format, {
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
    });
    const [system, user] = request.messages;
    assert.equal(system?.role, 'system');
    assert.match(system!.content, /SONATA/);
    assert.match(system!.content, /DuckDB/);
    assert.match(system!.content, /synapse_class/);
    assert.equal(user?.role, 'user');
    assert.match(user!.content, /- created: INTEGER/);
    assert.match(user!.content, /- mtype: VARCHAR/);
    assert.match(user!.content, /"morphology":"morph_4"/);
    assert.doesNotMatch(user!.content, /"morph_5"/);
    assert.match(user!.content, /Question: How many neurons of each mtype\?/);
  });

  it('asks once more with DuckDB error and sums the tokens of both calls', async () => {
    const writer = await writerFor([
      sqlReply('SELECT m_type, count(*) FROM neurons GROUP BY m_type', {
        prompt_tokens: 1000,
        completion_tokens: 20,
      }),
      sqlReply("SELECT count(*) AS n FROM neurons WHERE synapse_class = 'INH'", {
        prompt_tokens: 1100,
        completion_tokens: 25,
        cached_tokens: 1000,
      }),
    ]);
    const answer = await answerQuestion(db, writer, 'How many inhibitory neurons?', LIMITS);
    assert.deepEqual(answer.result.rows, [[20]]);
    assert.deepEqual(answer.usage, {
      input_cached: 1000,
      input_noncached: 1100,
      completion: 45,
      model: 'gpt-4o-mini',
    });
    assert.equal(server!.requests.length, 2);
    const retry = server!.requests[1]!.messages;
    assert.equal(retry.length, 4);
    assert.equal(retry[2]?.role, 'assistant');
    assert.match(retry[2]!.content, /m_type/);
    assert.equal(retry[3]?.role, 'user');
    assert.match(retry[3]!.content, /Binder Error/);
    assert.match(retry[3]!.content, /m_type/);
  });

  it('retries a guard refusal too, with the guard message', async () => {
    const writer = await writerFor([
      sqlReply('DELETE FROM neurons'),
      sqlReply('SELECT count(*) FROM neurons'),
    ]);
    const answer = await answerQuestion(db, writer, 'How many neurons?', LIMITS);
    assert.deepEqual(answer.result.rows, [[100]]);
    assert.match(server!.requests[1]!.messages[3]!.content, /only one read-only SELECT/);
  });

  it('gives up with the second error when the corrected query fails too', async () => {
    const writer = await writerFor([
      sqlReply('SELECT nope FROM neurons'),
      sqlReply('SELECT still_nope FROM neurons'),
      sqlReply('SELECT 1'),
    ]);
    await assertCode(answerQuestion(db, writer, 'q', LIMITS), 'query_failed', /still_nope/);
    assert.equal(server!.requests.length, 2);
  });

  it('does not retry a timeout', async () => {
    const writer = await writerFor([
      sqlReply('SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b'),
      sqlReply('SELECT 1'),
    ]);
    await assertCode(
      answerQuestion(db, writer, 'q', { maxRows: 10, timeoutMs: 200, maxResultBytes: 1 << 20 }),
      'timeout',
    );
    assert.equal(server!.requests.length, 1);
  });

  it('treats a refusal or malformed content as invalid_sql', async () => {
    const writer = await writerFor([{ refusal: 'I cannot help with that' }, { content: 'SELECT 1' }]);
    await assertCode(writer.write('q', db.schemaSummary()), 'invalid_sql', /refused/);
    await assertCode(writer.write('q', db.schemaSummary()), 'invalid_sql', /expected JSON/);
  });

  it('fails with llm_unavailable on 401, not retryable', async () => {
    const writer = await writerFor([{ status: 401 }, sqlReply('SELECT 1')]);
    const err = await assertCode(answerQuestion(db, writer, 'q', LIMITS), 'llm_unavailable', /401/);
    assert.equal(isRetryable(err), false);
    assert.equal(server!.requests.length, 1);
  });

  it('throws a retryable InfrastructureError on 500 after the SDK single retry', async () => {
    const writer = await writerFor([{ status: 500 }, { status: 503 }, sqlReply('SELECT 1')]);
    const err = await answerQuestion(db, writer, 'q', LIMITS).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InfrastructureError, String(err));
    assert.equal(err.code, 'llm_unavailable');
    assert.equal(isRetryable(err), true);
    assert.equal(server!.requests.length, 2);
  });

  it('throws a retryable InfrastructureError when the LLM cannot be reached', async () => {
    const closed = await startOpenAiTestServer([]);
    const baseUrl = closed.baseUrl;
    await closed.close();
    const writer = createSqlWriter({ apiKey: 'sk-test', baseUrl, model: 'gpt-4o-mini', timeoutMs: 2000 });
    const err = await writer.write('q', db.schemaSummary()).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InfrastructureError, String(err));
    assert.equal(err.code, 'llm_unavailable');
  });

  it('fails a quota 429 for good and other 429s for a retry', async () => {
    // The SDK retries every 429 once, hence two scripted replies each time.
    const quota: ScriptedReply = { status: 429, code: 'insufficient_quota' };
    let writer = await writerFor([quota, quota]);
    await assertCode(writer.write('q', db.schemaSummary()), 'llm_unavailable', /quota/);
    writer = await writerFor([{ status: 429 }, { status: 429 }]);
    const err = await writer.write('q', db.schemaSummary()).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InfrastructureError, String(err));
  });
});

describe('requireLlmKey and addUsage', () => {
  it('names TASKS_LLM__OPENAI_TOKEN when no key is set', () => {
    assert.throws(
      () => requireLlmKey(''),
      (err: unknown) =>
        err instanceof TaskFailedError &&
        err.code === 'llm_unavailable' &&
        err.message === 'no LLM API key: set TASKS_LLM__OPENAI_TOKEN',
    );
    assert.throws(
      () => createSqlWriter({ apiKey: '', model: 'gpt-4o-mini', timeoutMs: 1000 }),
      /TASKS_LLM__OPENAI_TOKEN/,
    );
    assert.equal(requireLlmKey('sk-x'), 'sk-x');
  });

  it('sums two token counts', () => {
    const a: TokenConsumption = { input_cached: 1, input_noncached: 2, completion: 3, model: 'm' };
    assert.deepEqual(addUsage(a, { input_cached: 10, input_noncached: 20, completion: 30, model: 'm' }), {
      input_cached: 11,
      input_noncached: 22,
      completion: 33,
      model: 'm',
    });
  });
});

describe('loading a large population', () => {
  it('loads 1,000,000 rows × 12 columns in bulk', async () => {
    const count = 1_000_000;
    const mtypes = Array.from({ length: 60 }, (_, i) => `L${1 + (i % 6)}_MTYPE_${i}`);
    const random = () => Math.random() * 1000;
    const population: NodePopulation = {
      name: 'big',
      count,
      columns: [
        {
          name: 'node_id',
          type: 'integer',
          values: BigInt64Array.from({ length: count }, (_, i) => BigInt(i)),
        },
        { name: 'node_type_id', type: 'integer', values: new Int32Array(count).fill(-1) },
        { name: 'x', type: 'float', values: Float32Array.from({ length: count }, random) },
        { name: 'y', type: 'float', values: Float32Array.from({ length: count }, random) },
        { name: 'z', type: 'float', values: Float32Array.from({ length: count }, random) },
        { name: 'orientation_w', type: 'float', values: Float64Array.from({ length: count }, Math.random) },
        {
          name: 'layer',
          type: 'string',
          values: Array.from({ length: count }, (_, i) => String(1 + (i % 6))),
        },
        { name: 'mtype', type: 'string', values: Array.from({ length: count }, (_, i) => mtypes[i % 60]!) },
        {
          name: 'etype',
          type: 'string',
          values: Array.from({ length: count }, (_, i) => ['cADpyr', 'bNAC', 'cNAC'][i % 3]!),
        },
        {
          name: 'region',
          type: 'string',
          values: Array.from({ length: count }, (_, i) => ['S1HL', 'S1FL'][i % 2]!),
        },
        {
          name: 'synapse_class',
          type: 'string',
          values: Array.from({ length: count }, (_, i) => (i % 5 ? 'EXC' : 'INH')),
        },
        // Unique per row: too many distinct values for the ENUM path, so this one goes in as VARCHAR.
        { name: 'morphology', type: 'string', values: Array.from({ length: count }, (_, i) => `morph_${i}`) },
      ],
    };
    const started = performance.now();
    const db = await openPopulationDb(population, { memoryLimitMb: 1024 });
    const seconds = (performance.now() - started) / 1000;
    try {
      console.log(
        `loaded ${count} rows x ${population.columns.length} columns in ${seconds.toFixed(2)} s: ${Math.round(count / seconds)} rows/s`,
      );
      const r = await db.query(
        'SELECT count(*), count(DISTINCT mtype), max(node_id), min(morphology) FILTER (WHERE node_id = 999999) FROM neurons',
        LIMITS,
      );
      assert.deepEqual(r.rows, [[count, 60, count - 1, 'morph_999999']]);
    } finally {
      db.close();
    }
  });
});
