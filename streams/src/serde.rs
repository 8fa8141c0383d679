//! Serdes: how keys and values become bytes and back.
//!
//! Every operation that reads or writes bytes (sources, sinks, stores,
//! repartition topics) takes a [`Serde`]. Where none is given, the type's
//! [`DefaultSerde`] is used, so `builder.stream::<String, i64>("t")` just works.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::SerdeError;

/// Converts a `T` to and from the bytes of a Kafka key or value (`None` = null).
pub trait Serde<T>: Send + Sync + 'static {
    /// Encodes a value; `None` writes a null.
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError>;
    /// Decodes bytes; `data` is `None` for a null key or value.
    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError>;
}

/// A shareable serde for `T`.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

/// Types with a serde used when an operation does not name one.
pub trait DefaultSerde: Sized + 'static {
    /// The serde for this type.
    fn default_serde() -> SerdeRef<Self>;
}

fn need<'a>(data: Option<&'a [u8]>, what: &'static str) -> Result<&'a [u8], SerdeError> {
    data.ok_or(SerdeError::Null(what))
}

fn decode_err(what: &str, reason: impl ToString) -> SerdeError {
    SerdeError::Decode {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// UTF-8 strings.
#[derive(Debug, Default, Clone, Copy)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.as_bytes().to_vec()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<String, SerdeError> {
        String::from_utf8(need(data, "string")?.to_vec()).map_err(|e| decode_err("string", e))
    }
}

/// Raw bytes, unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct BytesSerde;

impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.clone()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Vec<u8>, SerdeError> {
        Ok(need(data, "bytes")?.to_vec())
    }
}

/// Fixed-width big-endian integers, as Kafka's `LongSerde`/`IntegerSerde` write them.
#[derive(Debug, Default, Clone, Copy)]
pub struct IntSerde;

macro_rules! int_serde {
    ($($t:ty),*) => {$(
        impl Serde<$t> for IntSerde {
            fn serialize(&self, value: &$t) -> Result<Option<Vec<u8>>, SerdeError> {
                Ok(Some(value.to_be_bytes().to_vec()))
            }
            fn deserialize(&self, data: Option<&[u8]>) -> Result<$t, SerdeError> {
                let b = need(data, stringify!($t))?;
                let arr: [u8; std::mem::size_of::<$t>()] = b
                    .try_into()
                    .map_err(|_| decode_err(stringify!($t), format!("expected {} bytes, got {}", std::mem::size_of::<$t>(), b.len())))?;
                Ok(<$t>::from_be_bytes(arr))
            }
        }
        impl DefaultSerde for $t {
            fn default_serde() -> SerdeRef<Self> { Arc::new(IntSerde) }
        }
    )*};
}
int_serde!(i16, i32, i64, u16, u32, u64);

/// Integers written as UTF-8 decimal text (so `kcat` shows them), e.g. word counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct DecimalSerde;

macro_rules! decimal_serde {
    ($($t:ty),*) => {$(
        impl Serde<$t> for DecimalSerde {
            fn serialize(&self, value: &$t) -> Result<Option<Vec<u8>>, SerdeError> {
                Ok(Some(value.to_string().into_bytes()))
            }
            fn deserialize(&self, data: Option<&[u8]>) -> Result<$t, SerdeError> {
                let b = need(data, stringify!($t))?;
                std::str::from_utf8(b)
                    .map_err(|e| decode_err(stringify!($t), e))?
                    .trim()
                    .parse()
                    .map_err(|e| decode_err(stringify!($t), e))
            }
        }
    )*};
}
decimal_serde!(i32, i64, u32, u64, f64);

/// `f64` as 8 big-endian bytes (Kafka's `DoubleSerde`).
impl Serde<f64> for IntSerde {
    fn serialize(&self, value: &f64) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.to_be_bytes().to_vec()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<f64, SerdeError> {
        let b = need(data, "f64")?;
        let arr: [u8; 8] = b
            .try_into()
            .map_err(|_| decode_err("f64", format!("expected 8 bytes, got {}", b.len())))?;
        Ok(f64::from_be_bytes(arr))
    }
}

/// Any serde-serialisable type as JSON.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> JsonSerde<T> {
    /// A JSON serde for `T`.
    pub fn new() -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for JsonSerde<T> {
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        serde_json::to_vec(value)
            .map(Some)
            .map_err(|e| SerdeError::Encode(e.to_string()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError> {
        serde_json::from_slice(need(data, "json")?)
            .map_err(|e| decode_err(std::any::type_name::<T>(), e))
    }
}

/// Nullable data: `None` is a Kafka null, `Some` goes through the inner serde.
pub struct OptionSerde<T>(pub SerdeRef<T>);

impl<T: 'static> Serde<Option<T>> for OptionSerde<T> {
    fn serialize(&self, value: &Option<T>) -> Result<Option<Vec<u8>>, SerdeError> {
        match value {
            None => Ok(None),
            Some(v) => self.0.serialize(v),
        }
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match data {
            None => Ok(None),
            Some(_) => self.0.deserialize(data).map(Some),
        }
    }
}

/// The unit type reads any key and writes null: for streams whose keys do not matter.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize(&self, _: &()) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(None)
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<(), SerdeError> {
        Ok(())
    }
}

impl DefaultSerde for () {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(UnitSerde)
    }
}

impl DefaultSerde for String {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(StringSerde)
    }
}

impl DefaultSerde for Vec<u8> {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(BytesSerde)
    }
}

impl DefaultSerde for f64 {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(IntSerde)
    }
}

impl DefaultSerde for serde_json::Value {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(JsonSerde::<serde_json::Value>::new())
    }
}

impl<T: DefaultSerde> DefaultSerde for Option<T> {
    fn default_serde() -> SerdeRef<Self> {
        Arc::new(OptionSerde(T::default_serde()))
    }
}

/// Wraps a closure pair as a serde, for one-off formats.
pub struct FnSerde<T> {
    ser: Box<SerFn<T>>,
    de: Box<DeFn<T>>,
}

type SerFn<T> = dyn Fn(&T) -> Result<Option<Vec<u8>>, SerdeError> + Send + Sync;
type DeFn<T> = dyn Fn(Option<&[u8]>) -> Result<T, SerdeError> + Send + Sync;

impl<T> FnSerde<T> {
    /// A serde from an encoder and a decoder.
    pub fn new(
        ser: impl Fn(&T) -> Result<Option<Vec<u8>>, SerdeError> + Send + Sync + 'static,
        de: impl Fn(Option<&[u8]>) -> Result<T, SerdeError> + Send + Sync + 'static,
    ) -> Self {
        FnSerde {
            ser: Box::new(ser),
            de: Box::new(de),
        }
    }
}

impl<T: 'static> Serde<T> for FnSerde<T> {
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        (self.ser)(value)
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError> {
        (self.de)(data)
    }
}

/// Table updates on a repartition topic: a flags byte (1 = old present,
/// 2 = new present), the old value's length (4 bytes) and bytes, then the new value.
pub(crate) struct ChangeSerde<V>(pub SerdeRef<V>);

impl<V: 'static> Serde<crate::record::Change<V>> for ChangeSerde<V> {
    fn serialize(&self, c: &crate::record::Change<V>) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = vec![0u8];
        let old = match &c.old {
            Some(v) => {
                out[0] |= 1;
                self.0.serialize(v)?.unwrap_or_default()
            }
            None => Vec::new(),
        };
        out.extend_from_slice(&(old.len() as u32).to_be_bytes());
        out.extend_from_slice(&old);
        if let Some(v) = &c.new {
            out[0] |= 2;
            out.extend_from_slice(&self.0.serialize(v)?.unwrap_or_default());
        }
        Ok(Some(out))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<crate::record::Change<V>, SerdeError> {
        let b = need(data, "change")?;
        if b.len() < 5 {
            return Err(decode_err("change", "shorter than its 5-byte header"));
        }
        let n = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        if b.len() < 5 + n {
            return Err(decode_err("change", "old value runs past the end"));
        }
        let old = if b[0] & 1 != 0 {
            Some(self.0.deserialize(Some(&b[5..5 + n]))?)
        } else {
            None
        };
        let new = if b[0] & 2 != 0 {
            Some(self.0.deserialize(Some(&b[5 + n..]))?)
        } else {
            None
        };
        Ok(crate::record::Change { new, old })
    }
}

/// Constructors for the built-in serdes.
pub struct Serdes;

impl Serdes {
    /// UTF-8 strings.
    pub fn string() -> SerdeRef<String> {
        Arc::new(StringSerde)
    }
    /// Raw bytes.
    pub fn bytes() -> SerdeRef<Vec<u8>> {
        Arc::new(BytesSerde)
    }
    /// 8-byte big-endian `i64` (Kafka's `LongSerde`).
    pub fn i64() -> SerdeRef<i64> {
        Arc::new(IntSerde)
    }
    /// 4-byte big-endian `i32` (Kafka's `IntegerSerde`).
    pub fn i32() -> SerdeRef<i32> {
        Arc::new(IntSerde)
    }
    /// Integers (or floats) as decimal text.
    pub fn decimal<T: 'static>() -> SerdeRef<T>
    where
        DecimalSerde: Serde<T>,
    {
        Arc::new(DecimalSerde)
    }
    /// JSON of any serde type.
    pub fn json<T: Serialize + DeserializeOwned + 'static>() -> SerdeRef<T> {
        Arc::new(JsonSerde::<T>::new())
    }
    /// Nullable wrapper around another serde.
    pub fn option<T: 'static>(inner: SerdeRef<T>) -> SerdeRef<Option<T>> {
        Arc::new(OptionSerde(inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips() {
        let s = Serdes::string();
        assert_eq!(
            s.deserialize(s.serialize(&"hé".to_string()).unwrap().as_deref())
                .unwrap(),
            "hé"
        );
        assert_eq!(s.deserialize(None), Err(SerdeError::Null("string")));
        let l = Serdes::i64();
        assert_eq!(
            l.serialize(&1).unwrap().unwrap(),
            vec![0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert!(l.deserialize(Some(&[1, 2])).is_err());
        let d = Serdes::decimal::<i64>();
        assert_eq!(d.serialize(&42).unwrap().unwrap(), b"42");
        assert_eq!(d.deserialize(Some(b"17")).unwrap(), 17);
        let o = <Option<String>>::default_serde();
        assert_eq!(o.serialize(&None).unwrap(), None);
        assert_eq!(o.deserialize(None).unwrap(), None);
        assert_eq!(o.deserialize(Some(b"x")).unwrap(), Some("x".into()));
        let j = Serdes::json::<Vec<u32>>();
        assert_eq!(j.serialize(&vec![1, 2]).unwrap().unwrap(), b"[1,2]");
        assert!(j.deserialize(Some(b"{")).is_err());
    }
}
