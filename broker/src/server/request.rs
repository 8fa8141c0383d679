//! Reading one request frame up to the decoded request: the API key and version against what
//! this broker serves, the header, the bounded pre-pass over the body, then the codec.
//! Connections use it for every frame; the fuzz entry points (`crate::fuzzing`) call the same
//! functions, so what is fuzzed is what the broker runs.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use super::bounds;
use super::versions::supported_range;

/// The start of a frame, as far as it decides how the request is handled.
pub(crate) enum Head {
    /// A served API in a supported version, its header decoded; the frame now holds the body.
    Request {
        api_key: ApiKey,
        version: i16,
        header: RequestHeader,
    },
    /// ApiVersions in a version this broker does not serve: it is answered in v0 with the
    /// supported list, so the client retries with a version it finds there.
    UnsupportedApiVersions { correlation_id: i32 },
}

/// Reads the API key, version and header at the start of `frame` (the bytes after the size),
/// leaving the body in it. `Err` gives the reason to close the connection.
pub(crate) fn head(frame: &mut Bytes) -> Result<Head, String> {
    // The reader refuses frames below 8 bytes; callers outside it get the same refusal.
    if frame.len() < 8 {
        return Err(format!(
            "frame of {} bytes is shorter than a request header",
            frame.len()
        ));
    }
    let raw_key = (&frame[0..2]).get_i16();
    let version = (&frame[2..4]).get_i16();
    let correlation_id = (&frame[4..8]).get_i32();
    let api_key = ApiKey::try_from(raw_key).map_err(|_| format!("unknown API key {raw_key}"))?;
    let Some((min, max)) = supported_range(api_key) else {
        return Err(format!("API {api_key:?} ({raw_key}) is not supported"));
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            return Ok(Head::UnsupportedApiVersions { correlation_id });
        }
        return Err(format!(
            "{api_key:?} v{version} is not supported (supported {min}..={max})"
        ));
    }
    let header_version = api_key.request_header_version(version);
    // The codec decodes header v2's tagged fields into a map: bound them as the body's.
    bounds::check_header(header_version, frame)
        .map_err(|e| format!("malformed {api_key:?} v{version} request header: {e}"))?;
    let header = RequestHeader::decode(frame, header_version)
        .map_err(|e| format!("malformed {api_key:?} v{version} request header: {e}"))?;
    Ok(Head::Request {
        api_key,
        version,
        header,
    })
}

/// Decodes the request body left in `frame` by [`head`].
pub(crate) fn body(
    api_key: ApiKey,
    version: i16,
    frame: &mut Bytes,
) -> Result<RequestKind, String> {
    // The codec sizes arrays from their counts before reading them: refuse hostile counts and
    // lengths first, so that decoding allocates in proportion to the frame.
    bounds::check(api_key, version, frame)
        .map_err(|e| format!("malformed {api_key:?} v{version} request: {e}"))?;
    RequestKind::decode(api_key, frame, version)
        .map_err(|e| format!("malformed {api_key:?} v{version} request: {e}"))
}
