// `npm run provision [-- --update]`: creates the JetStream streams and the consumers of every
// queue from the worker configuration (.env.tasks + environment). Without --update it only creates
// what is absent; with --update it also applies the configured limits to existing ones. It never
// deletes or recreates a consumer: that would re-run every retained job (DESIGN §3).
import { createNames, QUEUES } from '@neuroagent/contracts';
import {
  connectNats,
  createLogger,
  ensureConsumer,
  ensureStreams,
  jetstreamManager,
} from '@neuroagent/platform';
import { loadWorkerConfig } from '../services/worker/src/config.ts';

const update = process.argv.includes('--update');
const config = loadWorkerConfig(process.env);
const log = createLogger('provision', config.log.level);
const names = createNames({
  stream: config.nats.stream,
  subjectPrefix: config.nats.subject_prefix,
  keyPrefix: config.redis.key_prefix,
});
const nc = await connectNats(config.nats, 'provision', log);
try {
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { names, nats: config.nats }, log, update);
  for (const queue of QUEUES) {
    await ensureConsumer(
      jsm,
      names,
      {
        queue,
        ackWaitMs: config.nats.ack_wait_s * 1000,
        maxDeliver: config.nats.max_deliver,
        maxAckPending: config.nats.max_ack_pending,
      },
      log,
      update,
    );
  }
  log.info({ stream: names.stream, update }, 'provisioning done');
} finally {
  await nc.close();
}
