//! Repartition topics are the application's own buffers: once their records
//! are committed they are deleted (DeleteRecords), as Kafka Streams does every
//! `repartition.purge.interval.ms`. Their retention is infinite, so without
//! this they would grow without bound.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::rebalance::Tp;
use crate::error::StreamsError;

/// Deletes committed records of repartition topics, at most every `every`.
pub(crate) struct Purger {
    admin: AdminClient<DefaultClientContext>,
    topics: HashSet<String>,
    every: Duration,
    last: Instant,
    /// Committed offsets not purged yet.
    pending: HashMap<Tp, i64>,
}

impl Purger {
    pub fn new(
        config: &ClientConfig,
        topics: HashSet<String>,
        every: Duration,
    ) -> Result<Self, StreamsError> {
        Ok(Purger {
            admin: config.create()?,
            topics,
            every,
            last: Instant::now(),
            pending: HashMap::new(),
        })
    }

    /// Notes offsets that were just committed.
    pub fn committed(&mut self, offsets: &[(Tp, i64)]) {
        for (tp, o) in offsets {
            if self.topics.contains(&tp.0) {
                self.pending.insert(tp.clone(), *o);
            }
        }
    }

    /// Deletes what is due. Failures are logged: a purge is retried with the
    /// next committed offsets and never stops processing.
    pub fn maybe_purge(&mut self) {
        if self.pending.is_empty() || self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in self.pending.drain() {
            if tpl.add_partition_offset(&t, p, Offset::Offset(o)).is_err() {
                continue;
            }
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        match futures::executor::block_on(self.admin.delete_records(&tpl, &opts)) {
            Ok(result) => {
                for e in result.elements() {
                    if let Err(err) = e.error() {
                        tracing::warn!(
                            topic = e.topic(),
                            partition = e.partition(),
                            "purging the repartition topic failed: {err}"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!("purging repartition topics failed: {e}"),
        }
    }
}
