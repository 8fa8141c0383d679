//! Converters between record data (`serde_json::Value`) and the bytes stored
//! in Kafka: JSON (with or without the schema envelope), string and bytes.

use serde_json::{json, Map, Value};

/// A conversion failure; with errors.tolerance=all the record is skipped.
#[derive(Debug, thiserror::Error)]
pub enum ConverterError {
    /// The converter class is not one Brook provides.
    #[error(
        "unknown converter class {0:?} (use JsonConverter, StringConverter or ByteArrayConverter)"
    )]
    UnknownClass(String),
    /// Bytes read from Kafka could not be decoded.
    #[error("cannot decode record: {0}")]
    Decode(String),
    /// A value could not be encoded by this converter.
    #[error("cannot encode record: {0}")]
    Encode(String),
}

/// How record keys or values are turned into bytes and back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converter {
    /// JSON; with `schemas_enable` records travel as `{"schema": .., "payload": ..}`.
    Json {
        /// Whether the schema envelope is written and expected.
        schemas_enable: bool,
    },
    /// UTF-8 text; non-string values are written as their JSON text.
    String,
    /// Raw bytes: strings are written as their UTF-8 bytes, arrays of 0..=255 as bytes.
    Bytes,
}

impl Default for Converter {
    /// Kafka Connect's default: JSON with schemas enabled.
    fn default() -> Self {
        Converter::Json {
            schemas_enable: true,
        }
    }
}

impl Converter {
    /// Resolves a converter class name (Kafka's full names or short names).
    pub fn from_class(class: &str, schemas_enable: bool) -> Result<Self, ConverterError> {
        let short = class.rsplit('.').next().unwrap_or(class);
        match short {
            "JsonConverter" | "json" => Ok(Converter::Json { schemas_enable }),
            "StringConverter" | "string" => Ok(Converter::String),
            "ByteArrayConverter" | "bytes" => Ok(Converter::Bytes),
            _ => Err(ConverterError::UnknownClass(class.to_string())),
        }
    }

    /// Like [`Converter::to_bytes`], reusing a string's buffer instead of
    /// copying it where the format allows.
    pub fn into_bytes(&self, value: Value) -> Result<Option<Vec<u8>>, ConverterError> {
        match (self, value) {
            (Converter::String | Converter::Bytes, Value::String(s)) => Ok(Some(s.into_bytes())),
            (_, v) => self.to_bytes(&v),
        }
    }

    /// Encodes a value; `Null` becomes an absent key/value (a tombstone).
    pub fn to_bytes(&self, value: &Value) -> Result<Option<Vec<u8>>, ConverterError> {
        match (self, value) {
            (
                Converter::Json {
                    schemas_enable: true,
                },
                Value::Null,
            ) => Ok(Some(
                json!({"schema": null, "payload": null})
                    .to_string()
                    .into_bytes(),
            )),
            (_, Value::Null) => Ok(None),
            (
                Converter::Json {
                    schemas_enable: true,
                },
                v,
            ) => Ok(Some(
                json!({"schema": schema_of(v), "payload": v})
                    .to_string()
                    .into_bytes(),
            )),
            (
                Converter::Json {
                    schemas_enable: false,
                },
                v,
            ) => Ok(Some(v.to_string().into_bytes())),
            (Converter::String, Value::String(s)) => Ok(Some(s.clone().into_bytes())),
            (Converter::String, v) => Ok(Some(v.to_string().into_bytes())),
            (Converter::Bytes, Value::String(s)) => Ok(Some(s.clone().into_bytes())),
            (Converter::Bytes, Value::Array(items)) => items
                .iter()
                .map(|i| i.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect::<Option<Vec<u8>>>()
                .map(Some)
                .ok_or_else(|| {
                    ConverterError::Encode("ByteArrayConverter needs an array of bytes".into())
                }),
            (Converter::Bytes, other) => Err(ConverterError::Encode(format!(
                "ByteArrayConverter cannot encode {}",
                kind(other)
            ))),
        }
    }

    /// Decodes bytes read from Kafka; an absent key/value decodes to `Null`.
    pub fn from_bytes(&self, bytes: Option<&[u8]>) -> Result<Value, ConverterError> {
        let Some(bytes) = bytes else {
            return Ok(Value::Null);
        };
        match self {
            Converter::Json { schemas_enable } => {
                let v: Value = serde_json::from_slice(bytes)
                    .map_err(|e| ConverterError::Decode(e.to_string()))?;
                if !schemas_enable {
                    return Ok(v);
                }
                match v {
                    Value::Object(mut m) if m.len() == 2 && m.contains_key("schema") && m.contains_key("payload") => {
                        Ok(m.remove("payload").unwrap_or(Value::Null))
                    }
                    _ => Err(ConverterError::Decode(
                        "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not \
                         contain additional fields; set schemas.enable=false for plain JSON"
                            .into(),
                    )),
                }
            }
            Converter::String => String::from_utf8(bytes.to_vec())
                .map(Value::String)
                .map_err(|e| ConverterError::Decode(e.to_string())),
            // Text stays text so line-oriented sinks can write it; other
            // bytes are kept losslessly as an array.
            Converter::Bytes => Ok(match std::str::from_utf8(bytes) {
                Ok(s) => Value::String(s.to_string()),
                Err(_) => Value::Array(bytes.iter().map(|b| Value::from(*b)).collect()),
            }),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Infers a Kafka Connect schema for a schemaless value.
fn schema_of(v: &Value) -> Value {
    match v {
        Value::Null => json!({"type": "string", "optional": true}),
        Value::Bool(_) => json!({"type": "boolean", "optional": false}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"type": "int64", "optional": false}),
        Value::Number(_) => json!({"type": "double", "optional": false}),
        Value::String(_) => json!({"type": "string", "optional": false}),
        Value::Array(items) => {
            let item = items
                .first()
                .map(schema_of)
                .unwrap_or_else(|| json!({"type": "string", "optional": true}));
            json!({"type": "array", "items": item, "optional": false})
        }
        Value::Object(fields) => {
            let fields: Vec<Value> = fields
                .iter()
                .map(|(name, value)| {
                    let mut field: Map<String, Value> =
                        schema_of(value).as_object().cloned().unwrap_or_default();
                    field.insert("field".into(), Value::String(name.clone()));
                    Value::Object(field)
                })
                .collect();
            json!({"type": "struct", "fields": fields, "optional": false})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_with_schema_roundtrip() {
        let c = Converter::Json {
            schemas_enable: true,
        };
        let bytes = c.to_bytes(&json!("hello")).unwrap().unwrap();
        let wire: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            wire,
            json!({"schema": {"type": "string", "optional": false}, "payload": "hello"})
        );
        assert_eq!(c.from_bytes(Some(&bytes)).unwrap(), json!("hello"));
        let obj = json!({"a": 1, "b": [true]});
        let bytes = c.to_bytes(&obj).unwrap().unwrap();
        let wire: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(wire["schema"]["type"], "struct");
        assert_eq!(wire["schema"]["fields"][0]["field"], "a");
        assert_eq!(c.from_bytes(Some(&bytes)).unwrap(), obj);
    }

    #[test]
    fn json_with_schema_rejects_bare_json() {
        let c = Converter::Json {
            schemas_enable: true,
        };
        let err = c.from_bytes(Some(br#"{"a":1}"#)).unwrap_err().to_string();
        assert!(err.contains("schemas.enable"), "{err}");
        assert!(c.from_bytes(Some(b"not json")).is_err());
    }

    #[test]
    fn json_without_schema() {
        let c = Converter::Json {
            schemas_enable: false,
        };
        assert_eq!(
            c.to_bytes(&json!({"a": 1})).unwrap().unwrap(),
            br#"{"a":1}"#
        );
        assert_eq!(c.from_bytes(Some(b"[1,2]")).unwrap(), json!([1, 2]));
        assert_eq!(c.to_bytes(&Value::Null).unwrap(), None);
        assert_eq!(c.from_bytes(None).unwrap(), Value::Null);
    }

    #[test]
    fn string_and_bytes() {
        assert_eq!(
            Converter::String.to_bytes(&json!("a b")).unwrap().unwrap(),
            b"a b"
        );
        assert_eq!(
            Converter::String.to_bytes(&json!(5)).unwrap().unwrap(),
            b"5"
        );
        assert_eq!(
            Converter::String.from_bytes(Some(b"x")).unwrap(),
            json!("x")
        );
        assert!(Converter::String.from_bytes(Some(&[0xff])).is_err());
        assert_eq!(
            Converter::Bytes
                .to_bytes(&json!([1, 255]))
                .unwrap()
                .unwrap(),
            vec![1, 255]
        );
        assert!(Converter::Bytes.to_bytes(&json!([256])).is_err());
        assert_eq!(
            Converter::Bytes.from_bytes(Some(&[0xff, 1])).unwrap(),
            json!([255, 1])
        );
        assert_eq!(
            Converter::Bytes.from_bytes(Some(b"hi")).unwrap(),
            json!("hi")
        );
    }

    #[test]
    fn class_names() {
        assert_eq!(
            Converter::from_class("org.apache.kafka.connect.json.JsonConverter", false).unwrap(),
            Converter::Json {
                schemas_enable: false
            }
        );
        assert_eq!(
            Converter::from_class(
                "org.apache.kafka.connect.converters.ByteArrayConverter",
                true
            )
            .unwrap(),
            Converter::Bytes
        );
        assert!(Converter::from_class("io.confluent.connect.avro.AvroConverter", true).is_err());
    }
}
