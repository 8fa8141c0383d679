//! The producer side of `brook bench`: a BaseProducer whose delivery
//! callback records per-record latency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::{progress_bar, update_progress, ProduceSettings, MB};
use crate::client::ClientOpts;

/// Delivery callback state: latencies and outcome counters.
struct BenchContext {
    start: Instant,
    latencies_us: Mutex<Histogram<u64>>,
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for BenchContext {}

impl ProducerContext for BenchContext {
    /// Send time in microseconds since `start`; a plain integer avoids an
    /// allocation per record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at_us: usize) {
        let now_us = self.start.elapsed().as_micros() as u64;
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut hist) = self.latencies_us.lock() {
                    hist.saturating_record(now_us.saturating_sub(sent_at_us as u64).max(1));
                }
            }
            Err((err, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| err.to_string());
                }
            }
        }
    }
}

/// Outcome of a producer run.
pub(super) struct ProduceStats {
    wanted: u64,
    acked: u64,
    failed: u64,
    first_error: Option<String>,
    record_size: usize,
    elapsed: Duration,
    latencies_us: Histogram<u64>,
}

impl ProduceStats {
    /// Prints throughput and latency, then fails if records were lost.
    pub(super) fn report(&self) -> Result<()> {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let ms = |us: u64| us as f64 / 1000.0;
        let h = &self.latencies_us;
        println!(
            "{} records sent in {:.2} s: {:.1} records/sec ({:.2} MB/sec)",
            self.acked,
            secs,
            self.acked as f64 / secs,
            (self.acked as f64 * self.record_size as f64) / MB / secs
        );
        println!(
            "latency ms: avg {:.2}, p50 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
            h.mean() / 1000.0,
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max())
        );
        self.check_complete()
    }

    /// Fails unless every wanted record was acknowledged.
    pub(super) fn check_complete(&self) -> Result<()> {
        if self.failed > 0 {
            let first = self.first_error.as_deref().unwrap_or("unknown error");
            bail!("{} records failed (first error: {first})", self.failed);
        }
        if self.acked < self.wanted {
            bail!("stopped after {} of {} records", self.acked, self.wanted);
        }
        Ok(())
    }
}

/// Produces `s.num_records` records, measuring send-to-ack latency.
pub(super) fn produce_records(
    client: &ClientOpts,
    s: &ProduceSettings,
    stop: &AtomicBool,
) -> Result<ProduceStats> {
    let mut config = client.config();
    config
        .set("acks", &s.acks)
        .set("linger.ms", s.linger_ms.to_string())
        .set("compression.type", &s.compression)
        // Deep local queues so the benchmark measures the broker, not
        // back-pressure from librdkafka's default limits.
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    if let Some(batch_size) = s.batch_size {
        config.set("batch.size", batch_size.to_string());
    }
    for (key, value) in &client.client_config {
        config.set(key, value);
    }
    let histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .context("could not create the latency histogram")?;
    let producer: BaseProducer<BenchContext> = config
        .create_with_context(BenchContext {
            start: Instant::now(),
            latencies_us: Mutex::new(histogram),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
        })
        .context("could not create the Kafka producer")?;
    let ctx = producer.context().clone();
    let payload = make_payload(s.record_size);
    let progress = progress_bar(s.num_records, "acked")?;
    let start = Instant::now();
    let mut sent: u64 = 0;
    while sent < s.num_records && !stop.load(Ordering::Relaxed) {
        if let Some(rate) = s.throughput.filter(|r| *r > 0) {
            // Ahead of schedule: wait, serving delivery callbacks meanwhile.
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                producer.poll(ahead.min(Duration::from_millis(10)));
                continue;
            }
        }
        let sent_at = ctx.start.elapsed().as_micros() as usize;
        let mut record =
            BaseRecord::<(), [u8], usize>::with_opaque_to(&s.topic, sent_at).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e).context("could not enqueue a record"),
            }
        }
        sent += 1;
        // Serving callbacks after every send costs the client more than the broker spends per record.
        if sent.is_multiple_of(256) {
            producer.poll(Duration::ZERO);
        }
        if sent.is_multiple_of(1024) {
            update_progress(
                &progress,
                ctx.acked.load(Ordering::Relaxed),
                s.record_size,
                start,
            );
        }
    }
    // Wait for the outstanding deliveries; librdkafka's message.timeout.ms
    // guarantees each one eventually succeeds or fails.
    while producer.in_flight_count() > 0 && !stop.load(Ordering::Relaxed) {
        producer.poll(Duration::from_millis(100));
        update_progress(
            &progress,
            ctx.acked.load(Ordering::Relaxed),
            s.record_size,
            start,
        );
    }
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    let latencies_us = ctx
        .latencies_us
        .lock()
        .map_err(|_| anyhow!("latency histogram lock poisoned"))?
        .clone();
    let first_error = ctx.first_error.lock().ok().and_then(|e| e.clone());
    Ok(ProduceStats {
        wanted: s.num_records,
        acked: ctx.acked.load(Ordering::Relaxed),
        failed: ctx.failed.load(Ordering::Relaxed),
        first_error,
        record_size: s.record_size,
        elapsed,
        latencies_us,
    })
}

/// A payload of random-looking letters, generated once like
/// kafka-producer-perf-test; a tiny xorshift avoids a `rand` dependency.
fn make_payload(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}
