// `npm run provision [-- --update]`: creates the JetStream streams and the consumers of every
// queue from the worker configuration (.env.tasks + environment). Without --update it only creates
// what is absent; with --update it also applies the configured limits to existing ones. It never
// deletes or recreates a consumer: that would re-run every retained job (docs/reliability.md).
import { QUEUES } from '@neuroagent/contracts';
import { connectNats, createLogger } from '@neuroagent/platform';
import { loadWorkerConfig } from '../services/worker/src/config.ts';
import { provisionQueues, workerNames } from '../services/worker/src/provisioning.ts';

const update = process.argv.includes('--update');
const config = loadWorkerConfig(process.env);
const log = createLogger('provision', config.log.level);
const nc = await connectNats(config.nats, 'provision', log);
try {
  await provisionQueues(nc, config, QUEUES, log, update);
  log.info({ stream: workerNames(config).stream, update }, 'provisioning done');
} finally {
  await nc.close();
}
