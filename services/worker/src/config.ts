// WorkerConfig: every TASKS_* variable a worker reads, one description each. Parsed once in
// main.ts; handlers receive the frozen object through their context.
import { QUEUES } from '@neuroagent/contracts';
import {
  LogSettings,
  loadConfig,
  NatsSettings,
  RedisSettings,
  redisTopology,
  StorageSettings,
} from '@neuroagent/platform';
import { type Static, Type } from '@sinclair/typebox';

export const WORKER_ENV_PREFIX = 'TASKS';

export const WorkerConfig = Type.Object({
  queues: Type.Array(Type.Union(QUEUES.map((q) => Type.Literal(q))), {
    default: ['python_q'],
    minItems: 1,
    uniqueItems: true,
    description: 'Comma-separated queues this process consumes (`python_q`, `circuit_q`, `echo_q`)',
  }),
  result_ttl_s: Type.Integer({
    default: 86400,
    minimum: 60,
    description: 'Lifetime of task:{id}:result, :progress and :meta after the task ends',
  }),
  nats: Type.Composite([
    NatsSettings,
    Type.Object({
      ack_wait_s: Type.Integer({
        default: 60,
        minimum: 1,
        description:
          'Consumer AckWait: an unacked, silent message is redelivered after this (set at creation)',
      }),
      max_deliver: Type.Integer({
        default: 5,
        minimum: 1,
        description: 'Consumer MaxDeliver (set at creation)',
      }),
      max_ack_pending: Type.Integer({
        default: 64,
        minimum: 1,
        description: 'Consumer MaxAckPending: total worker slots across every replica (set at creation)',
      }),
      fetch_expires_ms: Type.Integer({
        default: 5000,
        minimum: 1000,
        description: 'How long one pull request waits for messages before the loop re-issues it',
      }),
      retry_base_ms: Type.Integer({
        default: 1000,
        minimum: 10,
        description: 'First nak delay after an infrastructure error; doubles per delivery, with jitter',
      }),
      retry_max_ms: Type.Integer({ default: 60000, minimum: 10, description: 'Largest nak delay' }),
    }),
  ]),
  redis: Type.Composite([
    RedisSettings,
    Type.Object({
      progress_maxlen: Type.Integer({
        default: 100,
        minimum: 10,
        description: 'Approximate cap of each progress stream',
      }),
      events_maxlen: Type.Integer({
        default: 100000,
        minimum: 100,
        description: 'Approximate cap of the global tasks:events stream',
      }),
      event_record_max_bytes: Type.Integer({
        default: 1024,
        minimum: 0,
        maximum: 65536,
        description:
          'A finished task whose record (JSON) is at most this size travels in its tasks:events entry, so a waiting gateway answers without reading it back; 0 never (bounds tasks:events memory: EVENTS_MAXLEN × this)',
      }),
      wait_replicas: Type.Integer({
        default: 0,
        minimum: 0,
        maximum: 16,
        description:
          'Replicas that must confirm a result (Redis WAIT) before its message is acked, so a failover cannot lose it; fewer within WAIT_TIMEOUT_MS retries the message. 0: ack once the primary has it',
      }),
      wait_timeout_ms: Type.Integer({
        default: 1000,
        minimum: 1,
        maximum: 60000,
        description: 'Longest Redis WAIT for WAIT_REPLICAS',
      }),
    }),
  ]),
  python: Type.Object({
    threads: Type.Integer({
      default: 2,
      minimum: 1,
      maximum: 64,
      description: 'Pyodide threads in the sandbox pool = python_q tasks run at once by this process',
    }),
    timeout_s: Type.Number({ default: 60, minimum: 0.1, description: 'Wall-clock limit of one Python run' }),
    kill_grace_ms: Type.Integer({
      default: 500,
      minimum: 10,
      description: 'After the soft interrupt, how long before the thread is killed and replaced',
    }),
    memory_mb: Type.Integer({
      default: 512,
      minimum: 64,
      maximum: 4096,
      description:
        "Cap on one interpreter's WebAssembly memory; past it Python gets MemoryError (memory-limit)",
    }),
    max_output_kb: Type.Integer({
      default: 1024,
      minimum: 1,
      description: 'Cap on captured stdout and on stderr (each); the rest is dropped with a marker',
    }),
    max_return_kb: Type.Integer({
      default: 1024,
      minimum: 1,
      description: 'Cap on the JSON of the return value; larger values give output-limit',
    }),
    recycle_after_runs: Type.Integer({
      default: 1000,
      minimum: 1,
      description:
        'A thread is replaced after this many runs, which bounds what a long-lived thread accumulates outside the interpreter (each run already gets a pristine interpreter)',
    }),
    isolation: Type.Union([Type.Literal('reset'), Type.Literal('restore')], {
      default: 'reset',
      description:
        'How each run gets a pristine interpreter: reset = one interpreter per thread returned in place to its post-restore image after every run (~3 ms); restore = a fresh interpreter restored from the snapshot for every run (~200 ms of CPU). See docs/python-sandbox.md',
    }),
    reset_max_growth_mb: Type.Integer({
      default: 64,
      minimum: 0,
      description:
        'In reset mode, a run that grew the WebAssembly heap by more than this gets a freshly restored interpreter afterwards (memory never shrinks in place)',
    }),
    spare_interpreter: Type.Boolean({
      default: true,
      description:
        'In reset mode, keep one interpreter per thread restored ahead, so a run that cannot be reset in place does not make the next run wait for a restore (about 60 MB more per thread)',
    }),
    reuse_interpreter: Type.Boolean({
      default: false,
      description:
        'Trusted single-tenant deployments only: one interpreter serves many runs (fresh globals only, no reset), about 1.5x the throughput of the default reset mode, but imported modules, patched builtins and files persist from one run (and user) to the next',
    }),
    packages_url: Type.String({
      default: '',
      description:
        'Package source: a directory or http(s) base URL with pyodide-lock.json (see docs/pyodide-packages.md); empty = none, imports of Pyodide packages give install-error',
    }),
    package_cache_dir: Type.String({
      default: '.data/pyodide-packages',
      description:
        "Where packages downloaded from an http(s) source are cached (the sandbox's only writable folder)",
    }),
    preload: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Comma-separated packages loaded and imported into the snapshot (needs a package source)',
    }),
    install_timeout_s: Type.Number({
      default: 30,
      minimum: 0.1,
      description: 'Longest time installing the packages a script imports may take',
    }),
    allow_network: Type.Boolean({
      default: false,
      description:
        "Let Python open sockets (through Pyodide's WebSocket layer). Off: connect() fails with EHOSTUNREACH. Close egress at the OS level too",
    }),
    snapshot: Type.Boolean({
      default: true,
      description:
        'Start interpreters from a memory snapshot (built at first start); off = cold start, about 10x slower',
    }),
    snapshot_dir: Type.String({
      default: '.data/snapshots',
      description: 'Where Pyodide memory snapshots are kept',
    }),
    snapshot_build_timeout_s: Type.Integer({
      default: 300,
      minimum: 10,
      description: 'Longest time building a snapshot may take (preloading large packages is slow)',
    }),
    max_artifacts: Type.Integer({
      default: 10,
      minimum: 0,
      description: 'Most figures and /output files stored per run; more are skipped with a note on stderr',
    }),
    max_artifact_mb: Type.Integer({
      default: 10,
      minimum: 1,
      description: 'Largest single figure or /output file stored',
    }),
    max_artifacts_total_mb: Type.Integer({
      default: 50,
      minimum: 1,
      description: 'Most artifact bytes stored per run',
    }),
    sandbox_restart_ms: Type.Integer({
      default: 1000,
      minimum: 10,
      description: 'Delay before the sandbox process is restarted after it died',
    }),
  }),
  echo: Type.Object({
    concurrency: Type.Integer({
      default: 256,
      minimum: 1,
      maximum: 10000,
      description: 'echo_q tasks run at once by this process (an echo costs no CPU while it waits)',
    }),
  }),
  circuit: Type.Object({
    concurrency: Type.Integer({
      default: 2,
      minimum: 1,
      maximum: 64,
      description: 'circuit_q tasks run at once by this process',
    }),
    max_download_mb: Type.Integer({
      default: 2048,
      minimum: 1,
      description: 'Largest circuit archive downloaded; larger gives too_large',
    }),
    connect_timeout_s: Type.Number({
      default: 10,
      minimum: 0.1,
      description: 'Time limit to connect to the circuit URL',
    }),
    read_timeout_s: Type.Number({
      default: 60,
      minimum: 0.1,
      description: 'Longest silence while downloading (no bytes received) before download_failed',
    }),
    max_redirects: Type.Integer({
      default: 3,
      minimum: 0,
      maximum: 20,
      description: 'Redirects followed per download',
    }),
    allow_private_urls: Type.Boolean({
      default: false,
      description:
        'Allow circuit URLs on loopback, private and link-local addresses (tests, private deployments)',
    }),
    max_extract_mb: Type.Integer({
      default: 8192,
      minimum: 1,
      description: 'Largest total size of the extracted archive; larger gives too_large',
    }),
    max_archive_entries: Type.Integer({
      default: 10000,
      minimum: 1,
      description: 'Most entries in a circuit archive; more gives bad_archive',
    }),
    hdf5_timeout_s: Type.Number({
      default: 120,
      minimum: 1,
      description:
        'Time limit of the confined process that reads a nodes HDF5 file; longer gives bad_archive',
    }),
    hdf5_memory_mb: Type.Integer({
      default: 4096,
      minimum: 64,
      description: 'Heap cap (MB) of the confined HDF5 reader process',
    }),
    max_nodes: Type.Integer({
      default: 50_000_000,
      minimum: 1,
      description:
        'Most values one dataset of a nodes HDF5 file may declare (checked on its shape before reading); more gives bad_archive',
    }),
    cache_dir: Type.String({
      default: '.data/circuits',
      description: 'Where downloaded and extracted circuits are kept',
    }),
    cache_max_disk_mb: Type.Integer({
      default: 20480,
      minimum: 1,
      description: 'Disk budget of the circuit cache; least recently used circuits are removed past it',
    }),
    cache_max_loaded: Type.Integer({
      default: 4,
      minimum: 1,
      description: 'Populations kept loaded in DuckDB (memory); least recently used are closed past it',
    }),
    max_result_kb: Type.Integer({
      default: 1024,
      minimum: 1,
      description: 'Largest query result, in KB of JSON rows; larger gives result_too_large',
    }),
    max_rows: Type.Integer({
      default: 1000,
      minimum: 1,
      description: 'Rows returned at most; more are cut and `truncated` is set',
    }),
    query_timeout_s: Type.Number({
      default: 30,
      minimum: 0.1,
      description: 'Time limit of one SQL query (timeout)',
    }),
    duckdb_memory_mb: Type.Integer({
      default: 2048,
      minimum: 64,
      description: 'DuckDB memory limit per loaded population',
    }),
  }),
  llm: Type.Object({
    openai_token: Type.String({
      default: '',
      description:
        'API key for the LLM that writes SQL from questions (as the original); without it questions fail with llm_unavailable',
    }),
    openai_base_url: Type.String({
      default: '',
      description: 'OpenAI-compatible API base URL; empty uses OpenAI',
    }),
    model: Type.String({ default: 'gpt-4o-mini', minLength: 1, description: 'Model that writes the SQL' }),
    timeout_s: Type.Number({ default: 60, minimum: 1, description: 'Time limit of one LLM call' }),
  }),
  storage: Type.Composite([
    Type.Object({
      enabled: Type.Boolean({
        default: false,
        description: 'Store figures and /output files in S3; off, they are dropped with a note on stderr',
      }),
    }),
    StorageSettings,
  ]),
  health_file: Type.String({
    default: '',
    description: 'When set, touched every 10 s while the worker is healthy (for container health checks)',
  }),
  metrics: Type.Object({
    port: Type.Integer({
      default: -1,
      minimum: -1,
      maximum: 65535,
      description:
        'Serve Prometheus metrics (runs, durations, runs in flight, slot utilisation, queue lag, the python sandbox pool and its fallbacks) at GET /metrics on this port; -1 = off, 0 = any free port',
    }),
    host: Type.String({
      default: '127.0.0.1',
      description: 'Address the metrics server binds to (0.0.0.0 in a pod)',
    }),
  }),
  // Read by `npm run debug:worker` (scripts/debug.ts) only: the worker itself never opens it.
  debug: Type.Object({
    port: Type.Integer({
      default: 9230,
      minimum: 0,
      maximum: 65535,
      description:
        "Node inspector port of `npm run debug:worker` (0 = any free port; 9230 leaves the gateway's 9229 free)",
    }),
    host: Type.String({
      default: '127.0.0.1',
      minLength: 1,
      description:
        'Address the inspector of `npm run debug:worker` binds to; whoever reaches it runs code in the worker, with its credentials, so keep it on loopback. The python sandbox never has an inspector',
    }),
  }),
  heartbeat_interval_s: Type.Number({
    default: 5,
    minimum: 0.1,
    maximum: 300,
    description:
      "How often the worker writes its heartbeat (slots, busy, paused) to Redis, which the gateway's GET /admin/queues lists as the queue's workers",
  }),
  shutdown_grace_s: Type.Integer({
    default: 30,
    minimum: 0,
    description: 'On SIGTERM, how long in-flight tasks may run before they are handed back (nak)',
  }),
  log: LogSettings,
});
export type WorkerConfig = Static<typeof WorkerConfig>;

export function loadWorkerConfig(env: Record<string, string | undefined>): Readonly<WorkerConfig> {
  const config = loadConfig(WorkerConfig, WORKER_ENV_PREFIX, env);
  redisTopology(config.redis); // SENTINELS and CLUSTER_NODES together fail here, at boot
  return config;
}
