//! Hand-built records and batches for tests, including ones no client would send.

/// Zigzag varint, as the record format writes it.
pub(crate) fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// A record to encode; the overrides write claims that do not match the content.
#[derive(Clone, Copy)]
pub(crate) struct TestRecord<'a> {
    pub offset_delta: i64,
    pub ts_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// Header count written instead of `headers.len()`.
    pub header_count: Option<i64>,
    /// Length prefix written instead of the real size.
    pub size: Option<i64>,
}

impl Default for TestRecord<'_> {
    fn default() -> Self {
        TestRecord {
            offset_delta: 0,
            ts_delta: 0,
            key: Some(b"k"),
            value: b"value",
            headers: &[],
            header_count: None,
            size: None,
        }
    }
}

impl TestRecord<'_> {
    /// The record in the wire format.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = vec![0u8];
        zigzag(self.ts_delta, &mut body);
        zigzag(self.offset_delta, &mut body);
        match self.key {
            Some(k) => {
                zigzag(k.len() as i64, &mut body);
                body.extend_from_slice(k);
            }
            None => zigzag(-1, &mut body),
        }
        zigzag(self.value.len() as i64, &mut body);
        body.extend_from_slice(self.value);
        zigzag(
            self.header_count.unwrap_or(self.headers.len() as i64),
            &mut body,
        );
        for (k, v) in self.headers {
            zigzag(k.len() as i64, &mut body);
            body.extend_from_slice(k);
            zigzag(v.len() as i64, &mut body);
            body.extend_from_slice(v);
        }
        let mut out = Vec::new();
        zigzag(self.size.unwrap_or(body.len() as i64), &mut out);
        out.extend_from_slice(&body);
        out
    }
}

/// A CRC-valid batch around `section` (already compressed with `codec_id`) claiming `count`.
pub(crate) fn batch(
    section: &[u8],
    codec_id: u8,
    count: i32,
    base_ts: i64,
    max_ts: i64,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(61 + section.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&(codec_id as i16).to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(section);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}
