//! A bounded pre-pass over a request body, run before the protocol codec decodes it.
//!
//! The codec sizes every array from its count field before reading the elements, so four bytes
//! claiming two billion elements make it reserve hundreds of gigabytes and the process aborts.
//! This walk follows the body's layout for its API and version (see `schema`) and refuses,
//! before anything is decoded, a body in which a count or length claims more than is there:
//! an array count above the bytes that remain (each element takes at least one), a negative
//! count or length other than null, a string, bytes, records or tagged field that runs past the
//! end, or a truncated body.
//!
//! Having every element it claims is not enough: an element of one byte (an empty compact
//! string) decodes to a 32-byte handle, an element of four bytes to a struct of 32 to 100, so
//! a 100 MiB frame of empty group names would decode to 3.2 GB. The walk also adds up what the
//! decoded request will take in memory — per array element the size of its decoded type, per
//! non-empty array the allocator's overhead, per tagged field its map entry; strings and bytes
//! cost only their handle, since the codec slices them out of the frame instead of copying —
//! and refuses a body whose estimate exceeds [`decoded_budget`]: 8 times the body plus 4 MiB.
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

/// Decoded bytes allowed per byte of body, on top of [`DECODED_FLOOR`].
///
/// Requests clients send decode to well under this (`legitimate_requests_decode_within_the_budget`
/// measures them): Produce, a few structs around one `Bytes` of records per partition, 0.07x;
/// Fetch, ListOffsets, OffsetCommit, DeleteRecords, Metadata and DescribeGroups for 10,000
/// partitions, topics or groups 2.5–6x. What goes past it is arrays of empty strings or empty
/// structs (up to ~100x for three-byte structs), which no client sends in bulk — and explicit
/// replica assignments of one broker per partition (CreateTopics ~9x, CreatePartitions up to
/// 13x), which the floor admits up to ~130,000 partitions in one request.
pub(crate) const DECODED_PER_BODY_BYTE: usize = 8;

/// Decoded bytes every body may take whatever its size: small requests are never refused for
/// their ratio, and at most this much per request escapes the multiple.
pub(crate) const DECODED_FLOOR: usize = 4 << 20;

/// What the allocator adds to every non-empty array (glibc: an 8-byte header, 16-byte
/// rounding, 32-byte minimum chunk).
const ALLOCATION_OVERHEAD: usize = 16;
const MIN_ALLOCATION: usize = 32;

/// One unknown tagged field in the codec's `BTreeMap<i32, Bytes>`: a 32-byte handle and a 4-byte
/// key in 11-slot B-tree leaves (~410 bytes) that are half to two-thirds full when filled in
/// order, plus the internal nodes: ~70 bytes an entry, rounded up.
const TAGGED_FIELD_SIZE: usize = 80;

/// The most a body of `len` bytes may take in memory once decoded.
pub(crate) fn decoded_budget(len: usize) -> usize {
    len.saturating_mul(DECODED_PER_BODY_BYTE)
        .saturating_add(DECODED_FLOOR)
}

/// Refuses `body` (the request after its header) if a length or count in it is out of bounds,
/// or if it would take more than [`decoded_budget`] in memory once decoded.
pub(crate) fn check(api: ApiKey, version: i16, body: &[u8]) -> Result<(), String> {
    walk(api, version, body).map(|_| ())
}

/// Walks `body` as `check` does and returns how many bytes the request body took.
pub(crate) fn walk(api: ApiKey, version: i16, body: &[u8]) -> Result<usize, String> {
    walk_estimating(api, version, body).map(|(walked, _)| walked)
}

/// Walks `body` as `check` does and returns how many bytes the body took and the estimate of
/// what its decoded arrays and tagged fields take in memory.
pub(crate) fn walk_estimating(
    api: ApiKey,
    version: i16,
    body: &[u8],
) -> Result<(usize, usize), String> {
    let layout = schema::body_of(api).ok_or_else(|| format!("no body layout for {api:?}"))?;
    if version < layout.min || version > layout.max {
        return Err(format!(
            "no body layout for {api:?} v{version} (known {}..={})",
            layout.min, layout.max
        ));
    }
    let mut walker = Walker::new(body, version, version >= layout.flexible);
    walker.fields("body", layout.fields)?;
    Ok((walker.pos, walker.decoded))
}

/// Refuses a request header (the frame after its size) whose tagged fields would take more
/// than [`decoded_budget`] of the frame in memory: header v2 ends in a tagged-field section
/// the codec decodes into a map before the body is looked at. Versions 0 and 1 have no counts.
pub(crate) fn check_header(header_version: i16, frame: &[u8]) -> Result<(), String> {
    if header_version < 2 {
        return Ok(());
    }
    // API key, version and correlation id, then a client id that stays a non-compact string.
    let mut walker = Walker::new(frame, 0, false);
    walker.skip("header", 8)?;
    walker.value("client_id", Ty::Str)?;
    walker.flexible = true;
    walker.tagged_fields("header")
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
    /// The estimate so far of the decoded request's arrays and tagged fields in memory.
    decoded: usize,
    budget: usize,
}

impl<'a> Walker<'a> {
    fn new(buf: &'a [u8], version: i16, flexible: bool) -> Self {
        Walker {
            buf,
            pos: 0,
            version,
            flexible,
            decoded: 0,
            budget: decoded_budget(buf.len()),
        }
    }

    /// Adds `n` elements of `size` bytes each (one allocation, for an array) to the estimate of
    /// the decoded request, refused past the budget.
    fn decodes(
        &mut self,
        name: &str,
        at: usize,
        n: usize,
        size: usize,
        allocation: bool,
    ) -> Result<(), String> {
        if n == 0 {
            return Ok(());
        }
        let mut bytes = n.saturating_mul(size);
        if allocation {
            bytes = bytes
                .saturating_add(ALLOCATION_OVERHEAD)
                .max(MIN_ALLOCATION);
        }
        self.decoded = self.decoded.saturating_add(bytes);
        if self.decoded > self.budget {
            return Err(format!(
                "{name} at byte {at}: {n} elements take the decoded request to ~{} bytes in memory, \
                 over the {} allowed for a {}-byte body ({DECODED_PER_BODY_BYTE}x + {DECODED_FLOOR})",
                self.decoded,
                self.budget,
                self.buf.len()
            ));
        }
        Ok(())
    }

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
                let n = self.count(name, Ty::Fixed(size))?;
                self.skip(name, n.saturating_mul(size as usize))
            }
            Ty::Array(element) => {
                for _ in 0..self.count(name, *element)? {
                    self.value(name, *element)?;
                }
                Ok(())
            }
            Ty::Structs { fields, .. } => {
                for _ in 0..self.count(name, ty)? {
                    self.fields(name, fields)?;
                }
                Ok(())
            }
        }
    }

    /// An array's element count (0 for null), refused if more elements than bytes remain or if
    /// `n` elements of `element` take the decoded request over its budget.
    fn count(&mut self, name: &str, element: Ty) -> Result<usize, String> {
        let at = self.pos;
        let n = self.length(name, true)?.unwrap_or(0);
        if n > self.left() {
            return Err(format!(
                "array {name} at byte {at} claims {n} elements but only {} bytes remain",
                self.left()
            ));
        }
        self.decodes(name, at, n, element.decoded_size(), true)?;
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
        // Known tagged fields are decoded into their struct; counting every one as a map entry
        // overestimates only what no client sends in bulk.
        if count > 0 {
            let name = format!("tagged fields of {owner}");
            self.decodes(&name, at, count, TAGGED_FIELD_SIZE, false)?;
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
