//! A bounded pre-pass over a request body, run before the protocol codec decodes it.
//!
//! The codec sizes every array from its count field before reading the elements, so four bytes
//! claiming two billion elements make it reserve hundreds of gigabytes and the process aborts.
//! This walk follows the body's layout for its API and version (see `schema`) and refuses,
//! before anything is decoded, a body in which a count or length claims more than is there:
//! an array count above the bytes that remain (each element takes at least one), a negative
//! count or length other than null, a string, bytes, records or tagged field that runs past the
//! end, or a truncated body. A body that passes has every array element it claims, so decoding
//! it allocates in proportion to its size.
//!
//! The walk reads lengths only to skip past what they cover: it allocates nothing, and a
//! Produce request's records are one length check. It is no stricter than the decoder about
//! what the protocol allows: nulls are accepted everywhere (the decoder refuses them where
//! they are not allowed), and bytes after the body are ignored, as the decoder ignores them.

mod schema;
#[cfg(test)]
pub(crate) mod tests;

use kafka_protocol::messages::ApiKey;

use schema::{Field, Ty};

/// Refuses `body` (the request after its header) if a length or count in it is out of bounds.
pub(crate) fn check(api: ApiKey, version: i16, body: &[u8]) -> Result<(), String> {
    walk(api, version, body).map(|_| ())
}

/// Walks `body` as `check` does and returns how many bytes the request body took.
pub(crate) fn walk(api: ApiKey, version: i16, body: &[u8]) -> Result<usize, String> {
    let layout = schema::body_of(api).ok_or_else(|| format!("no body layout for {api:?}"))?;
    if version < layout.min || version > layout.max {
        return Err(format!(
            "no body layout for {api:?} v{version} (known {}..={})",
            layout.min, layout.max
        ));
    }
    let mut walker = Walker {
        buf: body,
        pos: 0,
        version,
        flexible: version >= layout.flexible,
    };
    walker.fields("body", layout.fields)?;
    Ok(walker.pos)
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// One struct: its fields present in this version, then its tagged fields if flexible.
    fn fields(&mut self, owner: &str, fields: &'static [Field]) -> Result<(), String> {
        let version = self.version;
        for field in fields.iter().filter(|f| f.present_in(version)) {
            self.value(field.name, field.ty)?;
        }
        if self.flexible {
            self.tagged_fields(owner)?;
        }
        Ok(())
    }

    fn value(&mut self, name: &str, ty: Ty) -> Result<(), String> {
        match ty {
            Ty::Fixed(n) => self.skip(name, n as usize),
            Ty::Str => match self.length(name, false)? {
                Some(n) => self.skip(name, n),
                None => Ok(()),
            },
            Ty::Bytes => match self.length(name, true)? {
                Some(n) => self.skip(name, n),
                None => Ok(()),
            },
            Ty::Array(&Ty::Fixed(size)) => {
                let n = self.count(name)?;
                self.skip(name, n.saturating_mul(size as usize))
            }
            Ty::Array(element) => {
                for _ in 0..self.count(name)? {
                    self.value(name, *element)?;
                }
                Ok(())
            }
            Ty::Structs(fields) => {
                for _ in 0..self.count(name)? {
                    self.fields(name, fields)?;
                }
                Ok(())
            }
        }
    }

    /// An array's element count (0 for null), refused if more elements than bytes remain.
    fn count(&mut self, name: &str) -> Result<usize, String> {
        let at = self.pos;
        let n = self.length(name, true)?.unwrap_or(0);
        if n > self.left() {
            return Err(format!(
                "array {name} at byte {at} claims {n} elements but only {} bytes remain",
                self.left()
            ));
        }
        Ok(n)
    }

    /// A string (Int16), bytes or array (Int32) length, or its compact form when flexible;
    /// `None` for null.
    fn length(&mut self, name: &str, wide: bool) -> Result<Option<usize>, String> {
        if self.flexible {
            // Compact: length + 1, 0 for null.
            return Ok(self.varint(name)?.checked_sub(1).map(|n| n as usize));
        }
        let at = self.pos;
        let n = if wide {
            i32::from_be_bytes(self.array(name)?)
        } else {
            i16::from_be_bytes(self.array(name)?) as i32
        };
        match n {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as usize)),
            n => Err(format!("{name} at byte {at} has negative length {n}")),
        }
    }

    /// The tagged-field section: a count, then per field a tag, a size and `size` bytes.
    fn tagged_fields(&mut self, owner: &str) -> Result<(), String> {
        let at = self.pos;
        let count = self.varint(owner)? as usize;
        // Each tagged field takes at least two bytes (tag and size).
        if count > self.left() / 2 {
            return Err(format!(
                "tagged fields of {owner} at byte {at}: {count} claimed but only {} bytes remain",
                self.left()
            ));
        }
        for _ in 0..count {
            let at = self.pos;
            let tag = self.varint(owner)?;
            let size = self.varint(owner)? as usize;
            if size > self.left() {
                return Err(format!(
                    "tagged field {tag} of {owner} at byte {at} claims {size} bytes but only {} remain",
                    self.left()
                ));
            }
            self.pos += size;
        }
        Ok(())
    }

    /// An UnsignedVarInt as the codec reads it: at most five bytes, excess bits dropped.
    fn varint(&mut self, name: &str) -> Result<u32, String> {
        let mut value = 0u32;
        for i in 0..5 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.truncated(name, 1));
            };
            self.pos += 1;
            value |= ((b & 0x7f) as u32) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    fn array<const N: usize>(&mut self, name: &str) -> Result<[u8; N], String> {
        let Some(bytes) = self.buf.get(self.pos..self.pos + N) else {
            return Err(self.truncated(name, N));
        };
        self.pos += N;
        Ok(bytes.try_into().expect("slice of N bytes"))
    }

    fn skip(&mut self, name: &str, n: usize) -> Result<(), String> {
        if n > self.left() {
            return Err(self.truncated(name, n));
        }
        self.pos += n;
        Ok(())
    }

    fn truncated(&self, name: &str, needed: usize) -> String {
        format!(
            "{name} at byte {} needs {needed} bytes but only {} remain",
            self.pos,
            self.left()
        )
    }
}
