//! Processor implementations behind the DSL operators.

pub(crate) mod aggregate;
pub(crate) mod emit;
pub(crate) mod session;
pub(crate) mod sliding;
pub(crate) mod stream_join;
pub(crate) mod suppress;
pub(crate) mod table;
pub(crate) mod table_join;
pub(crate) mod window;

use crate::error::StreamsError;
use crate::processor::Ctx;
use crate::serde::SerdeRef;

/// Encodes a key or value for a store; a null would be ambiguous there.
pub(crate) fn to_bytes<T: 'static>(
    serde: &SerdeRef<T>,
    v: &T,
    store: &str,
) -> Result<Vec<u8>, StreamsError> {
    serde
        .serialize(v)
        .map_err(|e| StreamsError::Store {
            store: store.to_string(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| StreamsError::Store {
            store: store.to_string(),
            reason: "a null key or value cannot be stored".into(),
        })
}

/// The store key of a record, or `None` when its key is null (serialises to nothing). A null
/// key cannot be aggregated or stored; as Kafka's aggregations and tables, the record is then
/// dropped, counted and logged rather than failing the task (which would fail again on the same
/// record after every restart).
pub(crate) fn key_bytes<K: 'static>(
    ctx: &Ctx<'_>,
    serde: &SerdeRef<K>,
    key: &K,
    store: &str,
) -> Result<Option<Vec<u8>>, StreamsError> {
    match serde.serialize(key) {
        Ok(Some(b)) => Ok(Some(b)),
        Ok(None) => {
            drop_null_key(ctx);
            Ok(None)
        }
        Err(e) => Err(StreamsError::Store {
            store: store.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Drops the current record for its null key: Kafka's `dropped-records` sensor and warning.
pub(crate) fn drop_null_key(ctx: &Ctx<'_>) {
    match &ctx.shared.meta {
        Some((topic, partition, offset)) => tracing::warn!(
            processor = ctx.node_name,
            %topic,
            partition,
            offset,
            "skipping record due to null key"
        ),
        None => tracing::warn!(processor = ctx.node_name, "skipping record due to null key"),
    }
    ctx.record_dropped("null-key");
}

pub(crate) fn from_bytes<T: 'static>(
    serde: &SerdeRef<T>,
    b: &[u8],
    store: &str,
) -> Result<T, StreamsError> {
    serde.deserialize(Some(b)).map_err(|e| StreamsError::Store {
        store: store.to_string(),
        reason: e.to_string(),
    })
}
