//! Time segments shared by window and session stores: engine keys start with
//! a segment id, and a whole segment is deleted once every entry in it is
//! older than the retention period (Kafka's segmented stores).

use super::engine::Engine;
use crate::error::StreamsError;

pub(crate) struct Segments {
    retention: i64,
    interval: i64,
    /// Largest time written so far.
    observed: i64,
    /// Segments below this id have been dropped.
    live_from: i64,
}

impl Segments {
    /// Segment length is max(retention / 2, 60 s), as in Kafka.
    pub fn new(retention: i64) -> Self {
        Segments {
            retention,
            interval: (retention / 2).max(60_000),
            observed: i64::MIN,
            live_from: 0,
        }
    }

    pub fn id(&self, ts: i64) -> i64 {
        ts.max(0) / self.interval
    }

    /// The segment id prefix of an engine key.
    pub fn prefix(&self, ts: i64) -> [u8; 8] {
        (self.id(ts) as u64).to_be_bytes()
    }

    /// Earliest time still retained.
    pub fn min_live(&self) -> i64 {
        self.live_from * self.interval
    }

    pub fn observed(&self) -> i64 {
        self.observed
    }

    /// Advances observed time and drops segments that fell out of retention.
    pub fn observe(&mut self, ts: i64, engine: &mut dyn Engine) -> Result<(), StreamsError> {
        if ts <= self.observed {
            return Ok(());
        }
        self.observed = ts;
        let floor = ts - self.retention + 1;
        let drop_below = if floor <= 0 { 0 } else { floor / self.interval };
        if drop_below > self.live_from {
            engine.delete_range(
                &(self.live_from as u64).to_be_bytes(),
                &(drop_below as u64).to_be_bytes(),
            )?;
            self.live_from = drop_below;
        }
        Ok(())
    }
}
