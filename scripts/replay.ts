// `npm run replay -- <command> …`: inspect and replay jobs stored in the JetStream task stream and
// re-drive dead letters (docs/operations.md). Argument parsing and output only; the logic is in
// lib/replay.ts. Reads the workers' settings (TASKS_NATS__*) from the environment and .env.tasks.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isQueueName, QUEUES, type QueueName } from '@neuroagent/contracts';
import { ConfigError, errorMessage, loadTaskSigner, SigningKeyError } from '@neuroagent/platform';
import {
  connectForReplay,
  createReplayContext,
  type JobSummary,
  listJobs,
  parseTimeArg,
  type ReplayContext,
  ReplayError,
  type ReplayErrorCode,
  type ReplayReport,
  type ReplayResult,
  redriveDlq,
  replayTask,
  replayWindow,
  showTask,
} from '../services/platform/src/job-log.ts';
import { loadWorkerConfig } from '../services/worker/src/config.ts';
import { readEnvFile, WORKER_ENV_FILE } from './lib/dev-config.ts';

const EXIT: Record<ReplayErrorCode | 'ok' | 'skipped' | 'internal' | 'config_invalid', number> = {
  ok: 0,
  internal: 1,
  bad_arguments: 64,
  skipped: 65,
  task_not_found: 66,
  stream_not_found: 67,
  nats_unreachable: 69,
  publish_failed: 75,
  config_invalid: 78,
};

const USAGE = `usage: npm run replay -- <command> [options]

Inspect and replay the jobs kept in the JetStream task stream, and re-drive dead letters. Reading
uses ordered consumers and message gets only: the workers' durable consumers are never touched.

Commands:
  list [--queue Q] [--since T] [--until T] [--limit N]
        jobs in the stream, oldest first: seq, time, queue, task id, task, owner
  show <task-id>
        one job (found by subject <prefix>.*.<task-id>): headers and body
  task <task-id> [--dry-run] [--accept-unsigned]
        replay one job under a new task id
  window --since T [--until T] [--queue Q] [--dry-run] [--accept-unsigned]
        replay every job whose JetStream timestamp is in [since, until] (until: now)
  dlq [--reason R] [--task-id ID] [--queue Q] [--dry-run | --purge] [--accept-unsigned]
        re-drive dead letters (stream <stream>_DLQ) to their original queue under new ids

Options:
  T             a duration before now (90s, 15m, 1h30m, 2d, 1w) or an ISO-8601 time
  --queue Q     ${QUEUES.join(' | ')}
  --limit N     list at most N jobs (default 100)
  --reason R    dlq: only dead letters with this Dlq-Reason (max_deliveries, invalid_message, …)
  --task-id ID  dlq: only the dead letter of this task id
  --dry-run     show what would be replayed; publish nothing
  --purge       dlq: delete each dead letter once its replay is acknowledged (never before, and
                never a skipped one)
  --accept-unsigned
                replay messages whose Task-Signature does not verify (bad_signature): only for
                messages you have checked yourself, e.g. after a key mismatch; re-signing a
                forged message would make it trusted
  --json        JSON lines on stdout (one object per job or result, then a summary line)
  --env-file F  read TASKS_* variables from F instead of ${WORKER_ENV_FILE} (the environment wins)
  -h, --help    this text

Connection: the workers' settings TASKS_NATS__URL, TASKS_NATS__STREAM and
TASKS_NATS__SUBJECT_PREFIX (every TASKS_* variable is validated as the worker does). The workers'
signing key (TASKS_NATS__SIGNING_KEY, or the file TASKS_NATS__SIGNING_KEY_FILE) verifies stored
messages and signs every replay for its new id.

A replay publishes the stored body to <prefix>.<queue>.<new id>: a new UUIDv7 task id; the same
input, owner (userId), thread and request id; submittedAt set to the replay time; headers
Nats-Msg-Id, Task-Name, Schema-Version, Request-Id (if any), Replay-Of: <old id> and
Task-Signature. Each publish
waits for its PubAck. Running a replay twice replays twice. A poison message (bad signature, not
JSON, not a task envelope, unknown task, invalid input, wrong queue) cannot be replayed as it is: it is reported and
skipped, and the exit code is then 65.

Exit codes:
  0   done                         66  task_not_found (no message with that id)
  65  something was skipped        67  stream_not_found
  64  bad_arguments                69  nats_unreachable
  75  publish_failed (no PubAck)   78  config_invalid (a TASKS_* variable, or no signing key)
  1   any other error
`;

type Command = 'list' | 'show' | 'task' | 'window' | 'dlq';

/** Options each command accepts (besides --json, --env-file and --help). */
const ALLOWED: Record<Command, string[]> = {
  list: ['queue', 'since', 'until', 'limit'],
  show: [],
  task: ['dry-run', 'accept-unsigned'],
  window: ['since', 'until', 'queue', 'dry-run', 'accept-unsigned'],
  dlq: ['reason', 'task-id', 'queue', 'dry-run', 'purge', 'accept-unsigned'],
};
const POSITIONALS: Record<Command, number> = { list: 0, show: 1, task: 1, window: 0, dlq: 0 };

function isCommand(value: string | undefined): value is Command {
  return value !== undefined && Object.hasOwn(ALLOWED, value);
}

function bad(message: string): ReplayError {
  return new ReplayError('bad_arguments', `${message} (see --help)`);
}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        queue: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        limit: { type: 'string' },
        reason: { type: 'string' },
        'task-id': { type: 'string' },
        'dry-run': { type: 'boolean' },
        purge: { type: 'boolean' },
        'accept-unsigned': { type: 'boolean' },
        json: { type: 'boolean' },
        'env-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw bad(errorMessage(err));
  }
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function pad(value: string | number | null, width: number): string {
  return String(value ?? '-').padEnd(width);
}

function printJob(job: JobSummary): void {
  const line = [
    pad(job.seq, 8),
    pad(job.time, 25),
    pad(job.queue, 10),
    pad(job.taskId, 37),
    pad(job.task, 28),
    job.owner ?? '-',
  ].join(' ');
  out(job.poison ? `${line}  POISON ${job.poison}` : line);
}

function describeResult(r: ReplayResult): string {
  const facts = `${r.queue ?? '?'}, ${r.task ?? '?'}, owner ${r.owner ?? '?'}`;
  const from = r.dlqReason === undefined ? `seq ${r.sourceSeq}` : `dlq seq ${r.sourceSeq}, ${r.dlqReason}`;
  switch (r.status) {
    case 'replayed':
      return `replayed ${r.oldId} → ${r.newId} (${facts}; ${from} → seq ${r.seq})${r.purged ? ', dead letter deleted' : ''}`;
    case 'would_replay':
      return `would replay ${r.oldId} (${facts}; ${from})`;
    default:
      return `SKIPPED ${r.oldId ?? '(no task id)'} (${from}): ${r.reason}`;
  }
}

function printResult(json: boolean): (r: ReplayResult) => void {
  return (r) => out(json ? JSON.stringify(r) : describeResult(r));
}

function printSummary(json: boolean, rep: ReplayReport, dryRun: boolean): void {
  const summary = { replayed: rep.replayed, skipped: rep.skipped, purged: rep.purged, dry_run: dryRun };
  if (json) out(JSON.stringify({ summary }));
  else {
    const verb = dryRun ? 'would be replayed' : 'replayed';
    out(
      `${rep.replayed} ${verb}, ${rep.skipped} skipped${rep.purged > 0 ? `, ${rep.purged} dead letters deleted` : ''}`,
    );
  }
  if (rep.skipped > 0) {
    process.stderr.write(
      `replay: ${rep.skipped} message(s) skipped: not valid tasks (poison), they cannot be replayed as they are\n`,
    );
  }
}

function queueOption(value: string | undefined): QueueName | undefined {
  if (value === undefined) return undefined;
  if (!isQueueName(value)) throw bad(`--queue must be one of ${QUEUES.join(', ')} (got "${value}")`);
  return value;
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv);
  if (values.help) {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  const [command, ...args] = positionals;
  if (!isCommand(command)) {
    throw bad(command === undefined ? 'a command is required' : `unknown command "${command}"`);
  }
  for (const name of Object.keys(values)) {
    if (!['json', 'env-file', 'help', ...ALLOWED[command]].includes(name)) {
      throw bad(`${command} does not take --${name}`);
    }
  }
  if (args.length !== POSITIONALS[command]) {
    throw bad(POSITIONALS[command] === 1 ? `${command} takes one task id` : `${command} takes no arguments`);
  }
  const json = values.json === true;
  const dryRun = values['dry-run'] === true;
  const now = new Date();
  const queue = queueOption(values.queue);
  const since = values.since === undefined ? undefined : parseTimeArg('--since', values.since, now);
  const until = values.until === undefined ? undefined : parseTimeArg('--until', values.until, now);
  let limit: number | undefined;
  if (values.limit !== undefined) {
    limit = Number(values.limit);
    if (!/^\d+$/.test(values.limit) || limit < 1) throw bad(`--limit must be a positive integer`);
  }
  if (command === 'window' && since === undefined) throw bad('window needs --since');
  if (values.purge && dryRun) throw bad('--purge and --dry-run exclude each other');

  // The workers' env file and their own loader and schema: the same variables, defaults and
  // validation; a variable set in the environment wins over the file (as with node --env-file).
  const envFile = values['env-file'];
  if (envFile !== undefined && !existsSync(envFile)) throw bad(`--env-file ${envFile} does not exist`);
  let fileVars: NodeJS.Dict<string>;
  try {
    fileVars = readEnvFile(envFile ?? WORKER_ENV_FILE);
  } catch (err) {
    throw bad(`cannot read the env file: ${errorMessage(err)}`);
  }
  const config = loadWorkerConfig({ ...fileVars, ...process.env });

  // Before connecting: a replay is signed with the workers' key, and stored messages verified by it.
  const signer = loadTaskSigner(config.nats, 'TASKS_');
  const nc = await connectForReplay(config.nats.url);
  try {
    const ctx: ReplayContext = await createReplayContext(
      nc,
      { stream: config.nats.stream, subjectPrefix: config.nats.subject_prefix },
      { signer, acceptUnsigned: values['accept-unsigned'] === true },
    );
    switch (command) {
      case 'list': {
        const { jobs, truncated } = await listJobs(ctx, { queue, since, until, limit });
        if (json) {
          for (const job of jobs) out(JSON.stringify(job));
          out(JSON.stringify({ summary: { count: jobs.length, truncated } }));
        } else {
          out(
            [
              'SEQ'.padEnd(8),
              'TIME'.padEnd(25),
              'QUEUE'.padEnd(10),
              'TASK ID'.padEnd(37),
              'TASK'.padEnd(28),
              'OWNER',
            ].join(' '),
          );
          for (const job of jobs) printJob(job);
          out(
            `${jobs.length} job(s)${truncated ? ` — more match: raise --limit or narrow --since/--until` : ''}`,
          );
        }
        return EXIT.ok;
      }
      case 'show': {
        const job = await showTask(ctx, args[0] as string);
        if (json) out(JSON.stringify(job));
        else {
          out(`stream ${job.stream} seq ${job.seq} at ${job.time}`);
          out(`subject ${job.subject}`);
          out('headers:');
          for (const [k, vs] of Object.entries(job.headers)) for (const v of vs) out(`  ${k}: ${v}`);
          out('body:');
          out(typeof job.body === 'string' ? job.body : JSON.stringify(job.body, null, 2));
          if (job.poison) out(`POISON (cannot be replayed as it is): ${job.poison}`);
        }
        return EXIT.ok;
      }
      case 'task': {
        const result = await replayTask(ctx, args[0] as string, { dryRun, onResult: printResult(json) });
        if (result.status === 'skipped') {
          process.stderr.write('replay: skipped: the message is not a valid task (poison)\n');
          return EXIT.skipped;
        }
        return EXIT.ok;
      }
      case 'window': {
        const rep = await replayWindow(ctx, {
          since: since as Date,
          until: until ?? now,
          queue,
          dryRun,
          onResult: printResult(json),
        });
        printSummary(json, rep, dryRun);
        return rep.skipped > 0 ? EXIT.skipped : EXIT.ok;
      }
      case 'dlq': {
        const rep = await redriveDlq(ctx, {
          reason: values.reason,
          taskId: values['task-id'],
          queue,
          dryRun,
          purge: values.purge === true,
          onResult: printResult(json),
        });
        printSummary(json, rep, dryRun);
        return rep.skipped > 0 ? EXIT.skipped : EXIT.ok;
      }
    }
  } finally {
    await nc.close();
  }
}

try {
  process.exitCode = await run(process.argv.slice(2));
} catch (err) {
  if (err instanceof ReplayError) {
    process.stderr.write(`replay: ${err.code}: ${err.message}\n`);
    process.exitCode = EXIT[err.code];
  } else if (err instanceof ConfigError || err instanceof SigningKeyError) {
    process.stderr.write(`replay: config_invalid: ${err.message}\n`);
    process.exitCode = EXIT.config_invalid;
  } else {
    process.stderr.write(`replay: internal: ${errorMessage(err)}\n`);
    process.exitCode = EXIT.internal;
  }
}
