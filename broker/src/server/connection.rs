//! One client connection: framing, header parsing, version negotiation, in-order responses.
//!
//! A reader task splits the byte stream into frames so the next request is read while the
//! current one is handled; responses are written strictly in request order, as Kafka clients
//! require. Anything malformed ends the connection with one log line; the broker carries on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::limits::{Held, RequestMemory};
use super::request::{self, Head};
use crate::handlers::{self, api_versions, Conn};
use crate::state::BrokerState;

/// Frames read ahead of the one being handled, per connection.
const READ_AHEAD: usize = 4;

/// Response buffers above this are released after use rather than kept per connection.
const MAX_KEPT_BUFFER: usize = 8 << 20;

/// Runs a connection until the client closes it, it misbehaves, or the broker shuts down.
pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    memory: Arc<RequestMemory>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    // Read-ahead is what lets pipelined requests overlap with handling, but every queued frame
    // can be up to socket.request.max.bytes: keep the queue short to bound memory per connection,
    // and account every frame against the broker-wide queued.max.request.bytes.
    let (tx, mut rx) = mpsc::channel::<(Bytes, Held)>(READ_AHEAD);
    let max_frame = state.config.settings().socket_request_max_bytes;
    let reader = tokio::spawn(read_frames(rd, tx, max_frame, peer, memory));
    let idle = state.config.settings().connections_max_idle;
    let mut out = BytesMut::new();
    let mut conn = Conn {
        peer,
        client_id: String::new(),
    };
    loop {
        let (frame, held) = tokio::select! {
            f = rx.recv() => match f { Some(f) => f, None => break },
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(idle) => {
                tracing::debug!(%peer, "closing idle connection");
                break;
            }
        };
        let processed = process(&state, &mut conn, frame, &mut out).await;
        // The request is handled (its records copied into the log): its memory is free again.
        drop(held);
        match processed {
            Ok(true) => {
                let written = write_all_progressing(&mut wr, &out, idle).await;
                // Keep the buffer for the next response (fresh megabyte buffers cost page
                // faults on every fetch), unless one huge response inflated it.
                out.clear();
                if out.capacity() > MAX_KEPT_BUFFER {
                    out = BytesMut::new();
                }
                if let Err(e) = written {
                    tracing::debug!(%peer, error = %e, "write failed; closing connection");
                    break;
                }
            }
            Ok(false) => {}
            Err(reason) => {
                tracing::warn!(%peer, client_id = %conn.client_id, "closing connection: {reason}");
                break;
            }
        }
    }
    reader.abort();
    let _ = wr.shutdown().await;
}

/// Writes all of `buf`, failing once a write makes no progress for `timeout`
/// (connections.max.idle.ms): a client that stops reading must not pin the response (and this
/// task) forever. The limit is on progress, not on the whole response: a slow client that keeps
/// reading a large Fetch response gets all of it however long that takes.
async fn write_all_progressing<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut buf: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    while !buf.is_empty() {
        // Each write returns as soon as the socket took some bytes; only a full send buffer
        // that the client does not drain for `timeout` makes it time out.
        match tokio::time::timeout(timeout, wr.write(buf)).await {
            Ok(Ok(0)) => return Err(ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => buf = &buf[n..],
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let unsent = buf.len();
                let message = format!(
                    "no progress for {timeout:?} (connections.max.idle.ms), {unsent} bytes unsent"
                );
                return Err(Error::new(ErrorKind::TimedOut, message));
            }
        }
    }
    Ok(())
}

async fn read_frames(
    mut rd: OwnedReadHalf,
    tx: mpsc::Sender<(Bytes, Held)>,
    max_frame: usize,
    peer: SocketAddr,
    memory: Arc<RequestMemory>,
) {
    loop {
        let size = match rd.read_i32().await {
            Ok(n) => n,
            Err(_) => return, // closed between frames: normal
        };
        if size < 8 || size as usize > max_frame {
            tracing::warn!(
                %peer,
                size,
                "closing connection: frame size outside 8..={max_frame} (socket.request.max.bytes)"
            );
            return;
        }
        // Wait for room before reading the body: until then the client's bytes stay in the socket.
        let held = memory.reserve(size as usize).await;
        // Read into uninitialised capacity: zeroing megabyte frames first showed up in profiles.
        let mut buf = BytesMut::with_capacity(size as usize);
        let mut limited = (&mut rd).take(size as u64);
        while buf.len() < size as usize {
            match limited.read_buf(&mut buf).await {
                Ok(0) | Err(_) => {
                    tracing::warn!(%peer, size, got = buf.len(), "closing connection: truncated frame");
                    return;
                }
                Ok(_) => {}
            }
        }
        if tx.send((buf.freeze(), held)).await.is_err() {
            return;
        }
    }
}

/// Handles one frame, encoding any response into `out`: `Ok(true)` to send it, `Ok(false)`
/// for no response (acks=0), `Err(reason)` to close the connection.
async fn process(
    state: &Arc<BrokerState>,
    conn: &mut Conn,
    mut frame: Bytes,
    out: &mut BytesMut,
) -> Result<bool, String> {
    let (api_key, version, header) = match request::head(&mut frame)? {
        Head::Request {
            api_key,
            version,
            header,
        } => (api_key, version, header),
        Head::UnsupportedApiVersions { correlation_id } => {
            // Answer in v0 with the supported list so the client retries with a version it finds there.
            let body = api_versions::unsupported_version_response();
            return encode(out, correlation_id, 0, 0, &ResponseKind::ApiVersions(body))
                .map(|_| true);
        }
    };
    let correlation_id = header.correlation_id;
    if let Some(id) = &header.client_id {
        if conn.client_id != id.as_str() {
            conn.client_id = id.to_string();
        }
    }
    let request = request::body(api_key, version, &mut frame)?;
    let Some(response) = handlers::handle(state, conn, &header, request).await else {
        return Ok(false);
    };
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    encode(out, correlation_id, header_version, version, &response).map(|_| true)
}

fn encode(
    buf: &mut BytesMut,
    correlation_id: i32,
    header_version: i16,
    version: i16,
    response: &ResponseKind,
) -> Result<(), String> {
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(buf, header_version)
        .map_err(|e| format!("cannot encode response header: {e}"))?;
    response
        .encode(buf, version)
        .map_err(|e| format!("cannot encode response v{version}: {e}"))?;
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::BytesMut;
    use kafka_protocol::messages::{ApiKey, RequestHeader};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Sends one request frame, `body` after a proper header, on a new connection; returns the
    /// response, or `None` if the broker closed the connection instead.
    async fn exchange(
        addr: std::net::SocketAddr,
        api: ApiKey,
        version: i16,
        body: &[u8],
    ) -> Option<Vec<u8>> {
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("bounds-test")))
            .encode(&mut frame, api.request_header_version(version))
            .unwrap();
        frame.extend_from_slice(body);
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&(frame.len() as i32).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&frame).await.unwrap();
        let mut size = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut size))
            .await
            .expect("the broker neither answered nor closed the connection");
        read.ok()?;
        let mut response = vec![0; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut response).await.unwrap();
        Some(response)
    }

    /// Without a guarding global allocator (this test binary has none), a count of 2^31-1
    /// would make the codec reserve hundreds of gigabytes and abort the process.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_counts_close_the_connection_and_the_broker_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::Broker::builder()
            .data_dir(dir.path())
            .listen("127.0.0.1:0")
            .start()
            .await
            .unwrap();
        let addr = broker.local_addr();
        let huge = i32::MAX.to_be_bytes();
        // Metadata v1: the topic array is the whole body.
        assert_eq!(exchange(addr, ApiKey::Metadata, 1, &huge).await, None);
        // CreateTopics v7: compact count 2^31 (2^31-1 elements) as an UnsignedVarInt.
        let compact = [0x80, 0x80, 0x80, 0x80, 0x08, 0, 0, 0, 0];
        assert_eq!(
            exchange(addr, ApiKey::CreateTopics, 7, &compact).await,
            None
        );
        // DescribeGroups v4: an Int32 count of 2^31-1 group names.
        assert_eq!(exchange(addr, ApiKey::DescribeGroups, 4, &huge).await, None);
        let answer = exchange(addr, ApiKey::ApiVersions, 0, &[]).await;
        assert!(answer.is_some(), "the broker stopped serving");
        broker.shutdown().await.unwrap();
    }
}
