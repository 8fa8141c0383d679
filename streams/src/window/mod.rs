//! Window definitions and windowed keys.

mod definitions;

use std::sync::Arc;

pub use definitions::{JoinWindows, SessionWindows, SlidingWindows, TimeWindows};

use crate::error::SerdeError;
use crate::serde::{DefaultSerde, Serde, SerdeRef};

/// A time interval. Time windows are `[start, end)`; session and sliding
/// windows include both ends, as in Kafka Streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Start in ms.
    pub start: i64,
    /// End in ms.
    pub end: i64,
}

/// A key of a windowed aggregation: the grouping key and its window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The grouping key.
    pub key: K,
    /// The window.
    pub window: Window,
}

/// Serialises `Windowed<K>` as the inner key's bytes followed by the window
/// start and end, each 8 bytes big-endian.
pub struct WindowedSerde<K>(pub SerdeRef<K>);

impl<K: 'static> Serde<Windowed<K>> for WindowedSerde<K> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut b = self.0.serialize(&value.key)?.unwrap_or_default();
        b.extend_from_slice(&value.window.start.to_be_bytes());
        b.extend_from_slice(&value.window.end.to_be_bytes());
        Ok(Some(b))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let b = data.ok_or(SerdeError::Null("windowed key"))?;
        if b.len() < 16 {
            return Err(SerdeError::Decode {
                what: "windowed key".into(),
                reason: format!("{} bytes is shorter than the 16-byte window", b.len()),
            });
        }
        let n = b.len() - 16;
        let key = self.0.deserialize(Some(&b[..n]))?;
        let start = i64::from_be_bytes(b[n..n + 8].try_into().unwrap_or_default());
        let end = i64::from_be_bytes(b[n + 8..].try_into().unwrap_or_default());
        Ok(Windowed {
            key,
            window: Window { start, end },
        })
    }
}

impl<K: DefaultSerde> DefaultSerde for Windowed<K> {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(WindowedSerde(K::default_serde()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_serde_roundtrip() {
        let s = <Windowed<String>>::default_serde();
        let w = Windowed {
            key: "k".to_string(),
            window: Window { start: 10, end: 20 },
        };
        let b = s.serialize(&w).unwrap();
        assert_eq!(s.deserialize(b.as_deref()).unwrap(), w);
        assert!(s.deserialize(Some(b"short")).is_err());
    }
}
