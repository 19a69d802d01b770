// `npm run sign -- <task-id> [--body-file F]`: prints the Task-Signature header value for a task
// message that an operator publishes by hand (`nats pub`, docs/operations.md). Workers dead-letter
// an unsigned message as bad_signature. Reads the workers' key (TASKS_NATS__SIGNING_KEY, or the
// file TASKS_NATS__SIGNING_KEY_FILE) from the environment and .env.tasks, like `npm run replay`.
// Sign only a body you have checked: the signature makes the worker trust its userId.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isTaskId } from '@neuroagent/contracts';
import { ConfigError, errorMessage, loadTaskSigner, SigningKeyError } from '@neuroagent/platform';
import { loadWorkerConfig } from '../services/worker/src/config.ts';
import { readEnvFile, WORKER_ENV_FILE } from './lib/dev-config.ts';

const USAGE = `usage: npm run -s sign -- <task-id> [--body-file F]

Prints the Task-Signature header value (v1=<base64url>) for the message body in F (default: stdin)
published on <prefix>.<queue>.<task-id>. Example:
  id=$(node -e 'console.log(crypto.randomUUID())')
  nats pub "tasks.echo_q.$id" --header "Nats-Msg-Id:$id" \\
    --header "Task-Signature:$(npm run -s sign -- "$id" --body-file body.json)" < body.json
Exit codes: 0 printed, 64 bad arguments, 78 no usable signing key or a bad TASKS_* variable.
`;

function parse() {
  return parseArgs({
    allowPositionals: true,
    options: { 'body-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
}

function main(): number {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse();
  } catch (err) {
    process.stderr.write(`sign: bad_arguments: ${errorMessage(err)}\n${USAGE}`);
    return 64;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const [taskId, ...rest] = positionals;
  if (taskId === undefined || rest.length > 0 || !isTaskId(taskId)) {
    process.stderr.write(`sign: bad_arguments: one task id ([A-Za-z0-9_-]{1,64}) is required\n${USAGE}`);
    return 64;
  }
  try {
    const config = loadWorkerConfig({ ...readEnvFile(WORKER_ENV_FILE), ...process.env });
    const signer = loadTaskSigner(config.nats, 'TASKS_');
    const body = readFileSync(values['body-file'] ?? 0);
    process.stdout.write(`${signer.sign(taskId, body)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof SigningKeyError) {
      process.stderr.write(`sign: config_invalid: ${err.message}\n`);
      return 78;
    }
    process.stderr.write(`sign: ${errorMessage(err)}\n`);
    return 1;
  }
}

process.exitCode = main();
