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
