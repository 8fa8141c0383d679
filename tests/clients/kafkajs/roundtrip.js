// kafkajs against a Brook broker: admin, idempotent producer, consumer group, offsets.
// Usage: node roundtrip.js HOST:PORT   (exit code 0 = every check passed)
const { Kafka, logLevel, Partitioners } = require('kafkajs');

const fail = (msg) => { console.error('FAILED: ' + msg); process.exit(1); };

(async () => {
  const kafka = new Kafka({ clientId: 'kjs', brokers: [process.argv[2]], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  const topic = 'kafkajs-' + Date.now();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  if (meta.topics[0].partitions.length !== 3) fail('expected 3 partitions');
  const cfg = await admin.describeConfigs({ resources: [{ type: 2, name: topic }], includeSynonyms: false });
  const names = cfg.resources[0].configEntries.map((e) => e.configName);
  for (const n of ['retention.ms', 'cleanup.policy', 'min.insync.replicas']) {
    if (!names.includes(n)) fail('describeConfigs lacks ' + n);
  }

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const messages = Array.from({ length: 30 }, (_, i) => ({ key: 'k' + (i % 7), value: 'v' + i, headers: { h: 'x' + i } }));
  await producer.send({ topic, messages, acks: -1 });

  const groupId = 'kafkajs-group-' + topic;
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = new Set();
  let timer;
  await new Promise((resolve) => {
    timer = setTimeout(resolve, 30000);
    consumer.run({
      eachMessage: async ({ message }) => {
        if (message.headers.h.toString() !== 'x' + message.value.toString().slice(1)) fail('header mismatch');
        seen.add(message.value.toString());
        if (seen.size === 30) resolve();
      },
    });
  });
  // A pending timer would keep node alive for its full 30 s after success.
  clearTimeout(timer);
  await consumer.disconnect();
  if (seen.size !== 30) fail('consumed ' + seen.size + ' of 30');

  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
  const committed = offsets[0].partitions.reduce((sum, p) => sum + Number(p.offset), 0);
  if (committed !== 30) fail('committed offsets sum to ' + committed);
  await admin.deleteTopics({ topics: [topic] });
  await producer.disconnect();
  await admin.disconnect();
  console.log('kafkajs: ok');
})().catch((e) => fail(e && e.stack ? e.stack : String(e)));
