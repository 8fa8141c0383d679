"""kafka-python against a Brook broker: admin, producer, consumer group, committed offsets.

Usage: python3 roundtrip.py HOST:PORT   (exit code 0 = every check passed)
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions, NewTopic

bootstrap = sys.argv[1]
topic = "kafka-python-%d" % int(time.time() * 1000)
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic(topic, 2, 1)])
admin.create_partitions({topic: NewPartitions(3)})
assert len(admin.describe_topics([topic])[0]["partitions"]) == 3, "create_partitions"

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip")
for i in range(30):
    producer.send(topic, key=b"k%d" % (i % 7), value=b"v%d" % i, headers=[("h", b"x%d" % i)])
producer.flush()

consumer = KafkaConsumer(
    bootstrap_servers=bootstrap,
    group_id="kafka-python-group",
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    consumer_timeout_ms=10000,
)
consumer.subscribe([topic])
values = set()
for message in consumer:
    assert dict(message.headers)["h"] == b"x" + message.value[1:], "header mismatch"
    values.add(message.value)
    if len(values) == 30:
        break
consumer.commit()
committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3))
consumer.close()
assert len(values) == 30, "consumed %d of 30" % len(values)
assert committed == 30, "committed offsets sum to %d" % committed
admin.delete_topics([topic])
print("kafka-python: ok")
