//! Turns consumed messages into sink records, applying the error policy to
//! records that cannot be converted or that the task refuses.

use rdkafka::message::OwnedMessage;
use rdkafka::Message;

use crate::config::{ConnectorSettings, ErrorTolerance};
use crate::connector::{ConnectError, SinkRecord};
use crate::converter::Converter;
use crate::errors::{send_to_dlq, with_retries, FailedRecord};
use crate::producer::Producer;

/// Converters and error policy of one sink task.
pub(crate) struct Decoder {
    pub connector: String,
    pub settings: ConnectorSettings,
    pub key_converter: Converter,
    pub value_converter: Converter,
    /// Writes the dead letter queue.
    pub producer: Producer,
}

/// A consumed batch and its records, ready for `put`.
#[derive(Default)]
pub(crate) struct Prepared {
    pub messages: Vec<OwnedMessage>,
    pub records: Vec<SinkRecord>,
    /// Index in `messages` of each record.
    pub origin: Vec<usize>,
    /// Messages left out (failed conversion, or refused by the task).
    pub skipped: Vec<bool>,
    /// False when `records` must be converted again from `messages`.
    pub converted: bool,
}

impl Decoder {
    /// Converts a freshly consumed batch.
    pub async fn prepare(&self, messages: Vec<OwnedMessage>) -> Result<Prepared, ConnectError> {
        let mut skipped = vec![false; messages.len()];
        let (records, origin) = self.convert(&messages, &mut skipped).await?;
        Ok(Prepared {
            messages,
            records,
            origin,
            skipped,
            converted: true,
        })
    }

    /// Converts the messages not skipped yet; returns the records and, for
    /// each, the index of its message in the batch.
    pub async fn convert(
        &self,
        batch: &[OwnedMessage],
        skipped: &mut [bool],
    ) -> Result<(Vec<SinkRecord>, Vec<usize>), ConnectError> {
        let mut records = Vec::with_capacity(batch.len());
        let mut origin = Vec::with_capacity(batch.len());
        for (i, msg) in batch.iter().enumerate() {
            if skipped[i] {
                continue;
            }
            let converted = match self.key_converter.from_bytes(msg.key()) {
                Ok(key) => self
                    .value_converter
                    .from_bytes(msg.payload())
                    .map(|value| (key, value))
                    .map_err(|e| ("VALUE_CONVERTER", e)),
                Err(e) => Err(("KEY_CONVERTER", e)),
            };
            match converted {
                Ok((key, value)) => {
                    records.push(SinkRecord {
                        topic: msg.topic().to_string(),
                        partition: msg.partition(),
                        offset: msg.offset(),
                        key: if key.is_null() { None } else { Some(key) },
                        value,
                    });
                    origin.push(i);
                }
                Err((stage, e)) if self.settings.errors_tolerance == ErrorTolerance::All => {
                    self.tolerate(msg, stage, &e.to_string()).await?;
                    skipped[i] = true;
                }
                Err((_, e)) => {
                    return Err(ConnectError::Fatal(format!(
                        "converting record {}-{}@{}: {e}",
                        msg.topic(),
                        msg.partition(),
                        msg.offset()
                    )))
                }
            }
        }
        Ok((records, origin))
    }

    /// A record failed with errors.tolerance=all: log it and, if
    /// configured, send its original bytes to the dead letter queue.
    pub async fn tolerate(
        &self,
        msg: &OwnedMessage,
        stage: &str,
        error: &str,
    ) -> Result<(), ConnectError> {
        tracing::warn!(connector = %self.connector, topic = msg.topic(), offset = msg.offset(), stage, error, "skipping bad record");
        let Some(dlq) = &self.settings.dlq_topic else {
            return Ok(());
        };
        let failed = FailedRecord {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key(),
            value: msg.payload(),
            connector: &self.connector,
            stage,
            error,
        };
        let headers = self.settings.dlq_context_headers.unwrap_or(false);
        with_retries(&self.settings, || {
            send_to_dlq(&self.producer, dlq, headers, &failed)
        })
        .await
    }
}
