//! A purpose-built HTTP/2 client connection for unary gRPC load (RFC 9113).
//!
//! One task per connection (the driver) owns the socket: it writes whatever the calls have
//! queued in one write, reads, and parses frames. A call takes the connection's lock (all
//! users of a connection run on one thread, so it is uncontended), writes its HEADERS and
//! DATA frames into the shared output buffer, and waits for its stream to end. Nothing is
//! spawned or sent over a channel per call, and every call's request head is a header
//! block encoded once (HPACK literals without indexing, so it is valid on any connection
//! at any time). Replies are decoded with `loona-hpack`.
//!
//! What it does of the protocol: the connection preface and SETTINGS (the server's first
//! frame must be SETTINGS, or [`handshake`] fails), SETTINGS and PING acks, flow control
//! both ways (large receive windows, refreshed at half; request bodies wait for the
//! server's window), the server's MAX_CONCURRENT_STREAMS and MAX_FRAME_SIZE, CONTINUATION,
//! padding, RST_STREAM, GOAWAY (streams above its last id are reported unprocessed) and
//! cancellation (a dropped call resets its stream). Server push is disabled.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// Error codes (RFC 9113 section 7).
pub const NO_ERROR: u32 = 0;
pub const PROTOCOL_ERROR: u32 = 1;
pub const FLOW_CONTROL_ERROR: u32 = 3;
pub const FRAME_SIZE_ERROR: u32 = 6;
pub const REFUSED_STREAM: u32 = 7;
pub const CANCEL: u32 = 8;
pub const COMPRESSION_ERROR: u32 = 9;
pub const ENHANCE_YOUR_CALM: u32 = 11;
pub const INADEQUATE_SECURITY: u32 = 12;

/// Our receive windows: large, so that replies never wait for a WINDOW_UPDATE and few are
/// sent. The frame size we accept is the protocol's default.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;
const MAX_FRAME: usize = 16_384;
/// A reply body larger than this fails the call (`RESOURCE_EXHAUSTED`), as gRPC clients'
/// default maximum receive message size does; the stream is reset.
pub const MAX_REPLY: usize = 4 << 20;
/// A header block (with CONTINUATION frames) larger than this is a connection error.
const MAX_HEADER_BLOCK: usize = 256 << 10;
const MAX_STREAM_ID: u32 = (1 << 31) - 1;

/// Why a call did not get a whole reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// No stream was opened: the connection is closed or going away. Not processed.
    NotOpened(String),
    /// The server reset the stream with this error code.
    Reset(u32),
    /// The stream was above the last stream id of the server's GOAWAY: not processed.
    GoAway(u32),
    /// The connection failed while the stream was open.
    ConnectionLost(String),
    /// The reply was larger than [`MAX_REPLY`].
    TooLarge,
}

/// A complete reply: the HTTP status, grpc-status (from the trailers, or the headers of a
/// trailers-only reply), and the body.
#[derive(Debug, Default)]
pub struct Reply {
    pub status: u16,
    pub grpc_status: Option<u32>,
    /// grpc-status came in the response headers (no body).
    pub trailers_only: bool,
    pub body: BytesMut,
}

/// A request head, encoded once as HPACK header blocks in three forms: literals that add
/// each field to the server's dynamic table (the first request on a connection), indexed
/// references to those entries (every later request on it), and literals without indexing
/// (valid anywhere: a connection that indexes another head, or whose table is too small).
/// Fields that match the static table are indexed in all three; nothing is Huffman-coded.
#[derive(Clone, Debug)]
pub struct HeaderBlock {
    id: u64,
    first: Bytes,
    indexed: Bytes,
    literal: Bytes,
    /// Dynamic-table space the inserted fields take (RFC 7541 section 4.1).
    table_size: usize,
}

static NEXT_BLOCK_ID: AtomicU64 = AtomicU64::new(1);

impl HeaderBlock {
    /// Encode `fields` (names lower-case, pseudo-headers first).
    pub fn encode<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        let (mut first, mut literal) = (Vec::new(), Vec::new());
        let mut inserted = 0usize;
        let mut table_size = 0;
        let mut refs: Vec<Option<usize>> = Vec::new();
        for (name, value) in fields {
            let mut name_index = None;
            let mut full = None;
            for (i, (n, v)) in STATIC_TABLE.iter().enumerate() {
                if n.as_bytes() == name {
                    name_index.get_or_insert(i + 1);
                    if v.as_bytes() == value {
                        full = Some(i + 1);
                        break;
                    }
                }
            }
            if let Some(i) = full {
                encode_int(&mut first, i, 7, 0x80);
                encode_int(&mut literal, i, 7, 0x80);
                refs.push(Some(i));
                continue;
            }
            // Literal with incremental indexing (6-bit prefix, 0x40) in `first`, without
            // indexing (4-bit prefix, 0x00) in `literal`.
            for (out, prefix, flag) in [(&mut first, 6, 0x40), (&mut literal, 4, 0x00)] {
                match name_index {
                    Some(i) => encode_int(out, i, prefix, flag),
                    None => {
                        out.push(flag);
                        encode_int(out, name.len(), 7, 0);
                        out.extend_from_slice(name);
                    }
                }
                encode_int(out, value.len(), 7, 0);
                out.extend_from_slice(value);
            }
            table_size += 32 + name.len() + value.len();
            inserted += 1;
            refs.push(None);
        }
        // The k-th of n inserted entries (0-based) ends at dynamic index 62 + (n - 1 - k).
        let mut indexed = Vec::new();
        let mut k = 0;
        for r in refs {
            let i = r.unwrap_or_else(|| {
                k += 1;
                62 + (inserted - k)
            });
            encode_int(&mut indexed, i, 7, 0x80);
        }
        HeaderBlock {
            id: NEXT_BLOCK_ID.fetch_add(1, Ordering::Relaxed),
            first: first.into(),
            indexed: indexed.into(),
            literal: literal.into(),
            table_size,
        }
    }
}

/// How a connection uses the server's HPACK dynamic table for our request heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Indexing {
    /// Nothing inserted yet.
    Unused,
    /// The fields of this head (by id) are in the table.
    Head(u64),
    /// The server shrank its table after we inserted: the next block starts with a size
    /// update to 0, then literals only.
    MustClear,
    /// Literals only.
    Off,
}

/// HPACK integer with an N-bit prefix (RFC 7541 section 5.1).
fn encode_int(out: &mut Vec<u8>, mut v: usize, prefix: u8, flags: u8) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// The entries of the HPACK static table we may index (RFC 7541 appendix A, in order).
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// One open (or finished, not yet collected) stream.
#[derive(Default)]
struct Stream {
    waker: Option<Waker>,
    reply: Reply,
    /// Response headers (not 1xx) were received; the next HEADERS are trailers.
    got_headers: bool,
    done: Option<Result<(), StreamError>>,
    /// Bytes received since the last WINDOW_UPDATE of this stream.
    recv_unacked: u32,
    send_window: i64,
    /// Request bytes waiting for flow-control window.
    pending: Bytes,
}

/// The connection's state, shared by its calls and its driver.
struct State {
    /// Frames to write.
    out: BytesMut,
    driver: Option<Waker>,
    streams: HashMap<u32, Stream>,
    /// Streams opened and not yet ended (the server's concurrency limit counts them).
    open: usize,
    next_id: u32,
    /// Calls waiting for the number of open streams to drop below the server's limit.
    waiting: Vec<Waker>,
    /// Streams whose request bytes wait for window, in order.
    blocked: VecDeque<u32>,
    peer_max_streams: usize,
    peer_max_frame: usize,
    peer_initial_window: i64,
    send_window: i64,
    recv_unacked: u32,
    /// The server sent GOAWAY (its last stream id): no new streams.
    goaway: Option<u32>,
    /// The connection has failed or ended: why.
    closed: Option<String>,
    decoder: loona_hpack::Decoder<'static>,
    /// The highest stream id whose frames went to the socket (the rest are still in `out`).
    handed_out: u32,
    /// The server's SETTINGS_HEADER_TABLE_SIZE and our use of its table.
    peer_table_size: usize,
    indexing: Indexing,
}

struct Shared {
    state: Mutex<State>,
    /// Live [`Connection`] handles; the driver ends when none is left.
    handles: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves consistent-enough state for counting.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle on a live HTTP/2 connection; clones share it.
pub struct Connection(Arc<Shared>);

impl Clone for Connection {
    fn clone(&self) -> Self {
        self.0.handles.fetch_add(1, Ordering::Relaxed);
        Connection(self.0.clone())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.0.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(w) = self.0.lock().driver.take() {
                w.wake();
            }
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

fn frame_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    out.put_uint(len as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
}

/// Start HTTP/2 on `io` (TCP, or TLS after ALPN): send the preface with our SETTINGS and
/// connection window, and wait for the server's SETTINGS. Then the driver is spawned on the
/// current Tokio runtime and runs until the connection fails or the last handle is dropped.
pub async fn handshake<T>(mut io: T) -> Result<Connection, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut out = BytesMut::with_capacity(64);
    out.extend_from_slice(PREFACE);
    frame_head(&mut out, 12, SETTINGS, 0, 0);
    out.put_u16(2); // ENABLE_PUSH
    out.put_u32(0);
    out.put_u16(4); // INITIAL_WINDOW_SIZE
    out.put_u32(STREAM_WINDOW);
    frame_head(&mut out, 4, WINDOW_UPDATE, 0, 0);
    out.put_u32(CONNECTION_WINDOW - 65_535);
    io.write_all(&out)
        .await
        .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
    io.flush()
        .await
        .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;

    let mut rbuf = vec![0u8; READ_BUF];
    let mut end = 0;
    read_at_least(&mut io, &mut rbuf, &mut end, 9).await?;
    if rbuf.starts_with(b"HTTP/1") {
        return Err(
            "HTTP/2 handshake failed: the server answered in HTTP/1.x (not a gRPC server, or \
             it needs TLS)"
                .into(),
        );
    }
    if rbuf[3] != SETTINGS || rbuf[4] & ACK != 0 {
        return Err(format!(
            "HTTP/2 handshake failed: the server's first frame is type {} (expected SETTINGS)",
            rbuf[3]
        ));
    }
    let len = frame_len(&rbuf);
    if len > MAX_FRAME || len % 6 != 0 {
        return Err(format!(
            "HTTP/2 handshake failed: bad SETTINGS frame of {len} bytes"
        ));
    }
    read_at_least(&mut io, &mut rbuf, &mut end, 9 + len).await?;
    let state = State {
        out: BytesMut::with_capacity(16 << 10),
        driver: None,
        streams: HashMap::new(),
        open: 0,
        next_id: 1,
        waiting: Vec::new(),
        blocked: VecDeque::new(),
        peer_max_streams: usize::MAX,
        peer_max_frame: MAX_FRAME,
        peer_initial_window: 65_535,
        send_window: 65_535,
        recv_unacked: 0,
        goaway: None,
        closed: None,
        decoder: loona_hpack::Decoder::new(),
        handed_out: 0,
        peer_table_size: 4096,
        indexing: Indexing::Unused,
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        handles: AtomicUsize::new(1),
    });
    {
        // The limits the server's SETTINGS set must be known before the first call.
        let mut st = shared.lock();
        st.settings(&rbuf[9..9 + len])
            .map_err(|e| format!("HTTP/2 handshake failed: {}", e.1))?;
        frame_head(&mut st.out, 0, SETTINGS, ACK, 0);
    }
    let mut driver = Driver {
        io,
        shared: shared.clone(),
        rbuf,
        rstart: 9 + len,
        rend: end,
        wbuf: BytesMut::with_capacity(16 << 10),
        header_block: None,
        write_error: None,
        done: false,
    };
    // Frames that came with the SETTINGS (a GOAWAY, say) count before the first call.
    let parsed = driver.parse(&mut shared.lock());
    if let Err((code, why)) = parsed {
        driver.fail(code, why);
    }
    tokio::spawn(driver);
    Ok(Connection(shared))
}

/// The read buffer: room for several whole frames of the largest size we accept.
const READ_BUF: usize = 64 << 10;

fn frame_len(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

async fn read_at_least<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut [u8],
    end: &mut usize,
    n: usize,
) -> Result<(), String> {
    while *end < n {
        let got = io
            .read(&mut buf[*end..])
            .await
            .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
        if got == 0 {
            return Err("HTTP/2 handshake failed: the server closed the connection".into());
        }
        *end += got;
    }
    Ok(())
}

/// A connection error: the code sent in our GOAWAY, and the message calls get.
type ConnError = (u32, String);

impl State {
    /// Apply the server's SETTINGS payload.
    fn settings(&mut self, payload: &[u8]) -> Result<(), ConnError> {
        for p in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([p[0], p[1]]);
            let v = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            match id {
                1 => {
                    let v = v as usize;
                    if let Indexing::Head(_) = self.indexing {
                        if v < self.peer_table_size {
                            self.indexing = Indexing::MustClear;
                        }
                    }
                    self.peer_table_size = v;
                }
                3 => self.peer_max_streams = v as usize,
                4 => {
                    if v > MAX_STREAM_ID {
                        return Err((FLOW_CONTROL_ERROR, "initial window too large".into()));
                    }
                    let delta = i64::from(v) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(v);
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                    }
                }
                5 => {
                    if !(16_384..=16_777_215).contains(&v) {
                        return Err((PROTOCOL_ERROR, format!("bad max frame size {v}")));
                    }
                    self.peer_max_frame = v as usize;
                }
                _ => {}
            }
        }
        self.send_blocked();
        Ok(())
    }

    fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// Write DATA frames for `id` as far as both windows allow; what is left waits.
    fn send_data(&mut self, id: u32) -> bool {
        let Some(s) = self.streams.get_mut(&id) else {
            return true;
        };
        while !s.pending.is_empty() {
            let room = self.send_window.min(s.send_window).max(0) as usize;
            let n = s.pending.len().min(self.peer_max_frame).min(room);
            if n == 0 {
                return false;
            }
            let chunk = s.pending.split_to(n);
            let flags = if s.pending.is_empty() { END_STREAM } else { 0 };
            frame_head(&mut self.out, n, DATA, flags, id);
            self.out.extend_from_slice(&chunk);
            self.send_window -= n as i64;
            s.send_window -= n as i64;
        }
        true
    }

    fn send_blocked(&mut self) {
        while let Some(&id) = self.blocked.front() {
            if !self.send_data(id) {
                break;
            }
            self.blocked.pop_front();
        }
    }

    /// End a stream (the server ended it, reset it, or the connection failed).
    fn finish(&mut self, id: u32, result: Result<(), StreamError>) {
        if let Some(s) = self.streams.get_mut(&id) {
            if s.done.is_some() {
                return;
            }
            s.done = Some(result);
            s.pending = Bytes::new();
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            self.open -= 1;
            for w in self.waiting.drain(..) {
                w.wake();
            }
        }
    }

    fn rst(&mut self, id: u32, code: u32) {
        frame_head(&mut self.out, 4, RST_STREAM, 0, id);
        self.out.put_u32(code);
    }

    /// The connection is over: every open stream fails with `why`.
    fn close(&mut self, why: String) {
        if self.closed.is_some() {
            return;
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            // A stream whose HEADERS never left us was certainly not processed.
            let e = if id > self.handed_out {
                StreamError::NotOpened(why.clone())
            } else {
                StreamError::ConnectionLost(why.clone())
            };
            self.finish(id, Err(e));
        }
        self.closed = Some(why);
        for w in self.waiting.drain(..) {
            w.wake();
        }
    }

    /// Handle one whole frame from the server.
    fn on_frame(
        &mut self,
        kind: u8,
        flags: u8,
        id: u32,
        payload: &[u8],
        block: &mut Option<(u32, u8, Vec<u8>)>,
    ) -> Result<(), ConnError> {
        if let Some((bid, bflags, buf)) = block {
            // Only CONTINUATION of the same stream may follow an unfinished header block.
            if kind != CONTINUATION || id != *bid {
                return Err((PROTOCOL_ERROR, "header block interrupted".into()));
            }
            if buf.len() + payload.len() > MAX_HEADER_BLOCK {
                return Err((PROTOCOL_ERROR, "header block too large".into()));
            }
            buf.extend_from_slice(payload);
            if flags & END_HEADERS != 0 {
                let (bid, bflags, buf) = (*bid, *bflags, std::mem::take(buf));
                *block = None;
                return self.on_headers(bid, bflags, &buf);
            }
            return Ok(());
        }
        match kind {
            DATA => {
                if id == 0 {
                    return Err((PROTOCOL_ERROR, "DATA on stream 0".into()));
                }
                self.recv_unacked += payload.len() as u32;
                if self.recv_unacked >= CONNECTION_WINDOW / 2 {
                    frame_head(&mut self.out, 4, WINDOW_UPDATE, 0, 0);
                    self.out.put_u32(self.recv_unacked);
                    self.recv_unacked = 0;
                }
                let data = unpad(flags, payload)?;
                let mut too_large = false;
                if let Some(s) = self.streams.get_mut(&id) {
                    if s.done.is_none() {
                        s.reply.body.extend_from_slice(data);
                        too_large = s.reply.body.len() > MAX_REPLY + 5;
                        s.recv_unacked += payload.len() as u32;
                        if flags & END_STREAM == 0 && s.recv_unacked >= STREAM_WINDOW / 2 {
                            frame_head(&mut self.out, 4, WINDOW_UPDATE, 0, id);
                            self.out.put_u32(s.recv_unacked);
                            s.recv_unacked = 0;
                        }
                    }
                }
                if too_large {
                    self.rst(id, CANCEL);
                    self.finish(id, Err(StreamError::TooLarge));
                } else if flags & END_STREAM != 0 {
                    self.finish(id, Ok(()));
                }
            }
            HEADERS => {
                let mut data = unpad(flags, payload)?;
                if flags & PRIORITY_FLAG != 0 {
                    data = data
                        .get(5..)
                        .ok_or((FRAME_SIZE_ERROR, "short HEADERS frame".to_string()))?;
                }
                if flags & END_HEADERS != 0 {
                    return self.on_headers(id, flags, data);
                }
                *block = Some((id, flags, data.to_vec()));
            }
            PRIORITY => {}
            RST_STREAM => {
                if payload.len() != 4 {
                    return Err((FRAME_SIZE_ERROR, "bad RST_STREAM frame".into()));
                }
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                self.finish(id, Err(StreamError::Reset(code)));
            }
            SETTINGS if flags & ACK != 0 => {}
            SETTINGS => {
                if payload.len() % 6 != 0 {
                    return Err((FRAME_SIZE_ERROR, "bad SETTINGS frame".into()));
                }
                self.settings(payload)?;
                frame_head(&mut self.out, 0, SETTINGS, ACK, 0);
            }
            PUSH_PROMISE => return Err((PROTOCOL_ERROR, "PUSH_PROMISE, push is off".into())),
            PING => {
                if payload.len() != 8 {
                    return Err((FRAME_SIZE_ERROR, "bad PING frame".into()));
                }
                if flags & ACK == 0 {
                    frame_head(&mut self.out, 8, PING, ACK, 0);
                    self.out.extend_from_slice(payload);
                }
            }
            GOAWAY => {
                if payload.len() < 8 {
                    return Err((FRAME_SIZE_ERROR, "bad GOAWAY frame".into()));
                }
                let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                    & MAX_STREAM_ID;
                let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                self.goaway = Some(last);
                let above: Vec<u32> = self.streams.keys().copied().filter(|&s| s > last).collect();
                for s in above {
                    self.finish(s, Err(StreamError::GoAway(code)));
                }
                if self.open == 0 {
                    // Nothing left to wait for on this connection.
                    return Err((NO_ERROR, format!("the server went away (code {code})")));
                }
            }
            WINDOW_UPDATE => {
                if payload.len() != 4 {
                    return Err((FRAME_SIZE_ERROR, "bad WINDOW_UPDATE frame".into()));
                }
                let inc = i64::from(
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & MAX_STREAM_ID,
                );
                if id == 0 {
                    self.send_window += inc;
                    if self.send_window > i64::from(MAX_STREAM_ID) {
                        return Err((FLOW_CONTROL_ERROR, "connection window overflow".into()));
                    }
                } else if let Some(s) = self.streams.get_mut(&id) {
                    s.send_window += inc;
                }
                self.send_blocked();
            }
            CONTINUATION => return Err((PROTOCOL_ERROR, "unexpected CONTINUATION".into())),
            _ => {}
        }
        Ok(())
    }

    /// A whole header block: response headers, 1xx, or trailers.
    fn on_headers(&mut self, id: u32, flags: u8, block: &[u8]) -> Result<(), ConnError> {
        let mut status = None;
        let mut grpc_status = None;
        // Decode even for streams we no longer track: the dynamic table must follow.
        self.decoder
            .decode_with_cb(block, |name: Cow<[u8]>, value: Cow<[u8]>| match &name[..] {
                b":status" => status = parse_u32(&value),
                b"grpc-status" => grpc_status = Some(parse_u32(&value).unwrap_or(2)),
                _ => {}
            })
            .map_err(|e| (COMPRESSION_ERROR, format!("bad header block: {e}")))?;
        let end = flags & END_STREAM != 0;
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if s.done.is_some() {
            return Ok(());
        }
        let malformed = if !s.got_headers {
            match status {
                // Informational: the real response headers follow.
                Some(c) if (100..200).contains(&c) && !end => return Ok(()),
                Some(c) => {
                    s.reply.status = c as u16;
                    s.got_headers = true;
                    s.reply.trailers_only = grpc_status.is_some();
                    false
                }
                None => true,
            }
        } else {
            // Trailers end the stream.
            !end
        };
        if malformed {
            self.rst(id, PROTOCOL_ERROR);
            self.finish(id, Err(StreamError::Reset(PROTOCOL_ERROR)));
            return Ok(());
        }
        if grpc_status.is_some() {
            s.reply.grpc_status = grpc_status;
        }
        if end {
            self.finish(id, Ok(()));
        }
        Ok(())
    }
}

fn parse_u32(v: &[u8]) -> Option<u32> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The payload of a frame without its padding.
fn unpad(flags: u8, payload: &[u8]) -> Result<&[u8], ConnError> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let pad = usize::from(
        *payload
            .first()
            .ok_or((PROTOCOL_ERROR, "bad padding".to_string()))?,
    );
    payload
        .get(1..payload.len().saturating_sub(pad))
        .filter(|_| pad < payload.len())
        .ok_or((PROTOCOL_ERROR, "bad padding".to_string()))
}

impl Connection {
    /// Whether new calls can be made (not closed, no GOAWAY, stream ids left).
    pub fn is_usable(&self) -> bool {
        let st = self.0.lock();
        st.closed.is_none() && st.goaway.is_none() && st.next_id < MAX_STREAM_ID
    }

    /// One request (its header block and body) on a new stream; resolves with the whole
    /// reply. Dropping the future before then resets the stream (CANCEL).
    pub async fn call(&self, head: &HeaderBlock, body: &Bytes) -> Result<Reply, StreamError> {
        let id = std::future::poll_fn(|cx| self.open(cx, head, body)).await?;
        let mut guard = Open {
            shared: &self.0,
            id,
            collected: false,
        };
        let reply = std::future::poll_fn(|cx| guard.poll_reply(cx)).await;
        guard.collected = true;
        reply
    }

    fn open(
        &self,
        cx: &mut Context<'_>,
        head: &HeaderBlock,
        body: &Bytes,
    ) -> Poll<Result<u32, StreamError>> {
        let mut st = self.0.lock();
        if let Some(why) = &st.closed {
            return Poll::Ready(Err(StreamError::NotOpened(why.clone())));
        }
        if st.goaway.is_some() {
            return Poll::Ready(Err(StreamError::NotOpened(
                "the server is going away".into(),
            )));
        }
        if st.next_id >= MAX_STREAM_ID {
            return Poll::Ready(Err(StreamError::NotOpened("stream ids exhausted".into())));
        }
        if st.open >= st.peer_max_streams {
            st.waiting.push(cx.waker().clone());
            return Poll::Pending;
        }
        let id = st.next_id;
        st.next_id += 2;
        st.open += 1;
        let st = &mut *st;
        // HEADERS (and CONTINUATION when the block exceeds the server's frame size).
        let cleared;
        let block: &[u8] = match st.indexing {
            Indexing::Head(h) if h == head.id => &head.indexed,
            Indexing::Unused if head.table_size <= st.peer_table_size => {
                st.indexing = Indexing::Head(head.id);
                &head.first
            }
            Indexing::MustClear => {
                // Dynamic table size update to 0 (RFC 7541 section 6.3), then literals.
                st.indexing = Indexing::Off;
                cleared = [&[0x20u8][..], &head.literal].concat();
                &cleared
            }
            _ => &head.literal,
        };
        let end = if body.is_empty() { END_STREAM } else { 0 };
        let mut chunks = block.chunks(st.peer_max_frame).peekable();
        let first = chunks.next().unwrap_or(&[]);
        let last = chunks.peek().is_none();
        frame_head(
            &mut st.out,
            first.len(),
            HEADERS,
            end | if last { END_HEADERS } else { 0 },
            id,
        );
        st.out.extend_from_slice(first);
        while let Some(c) = chunks.next() {
            let flags = if chunks.peek().is_none() {
                END_HEADERS
            } else {
                0
            };
            frame_head(&mut st.out, c.len(), CONTINUATION, flags, id);
            st.out.extend_from_slice(c);
        }
        st.streams.insert(
            id,
            Stream {
                send_window: st.peer_initial_window,
                pending: body.clone(),
                ..Stream::default()
            },
        );
        if !st.blocked.is_empty() || !st.send_data(id) {
            st.blocked.push_back(id);
        }
        st.wake_driver();
        Poll::Ready(Ok(id))
    }
}

/// A call's open stream; resets it when the call is dropped before its reply.
struct Open<'a> {
    shared: &'a Arc<Shared>,
    id: u32,
    collected: bool,
}

impl Open<'_> {
    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reply, StreamError>> {
        let mut st = self.shared.lock();
        let Some(s) = st.streams.get_mut(&self.id) else {
            return Poll::Ready(Err(StreamError::ConnectionLost("stream lost".into())));
        };
        match s.done.take() {
            Some(r) => {
                let reply = std::mem::take(&mut s.reply);
                st.streams.remove(&self.id);
                Poll::Ready(r.map(|()| reply))
            }
            None => {
                match &s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if self.collected {
            return;
        }
        let mut st = self.shared.lock();
        let Some(s) = st.streams.get(&self.id) else {
            return;
        };
        if s.done.is_none() {
            st.finish(self.id, Err(StreamError::Reset(CANCEL)));
            if st.closed.is_none() {
                st.rst(self.id, CANCEL);
                st.wake_driver();
            }
        }
        st.streams.remove(&self.id);
        st.blocked.retain(|&b| b != self.id);
    }
}

/// The task that owns the socket.
struct Driver<T> {
    io: T,
    shared: Arc<Shared>,
    /// Bytes read and not yet parsed are `rbuf[rstart..rend]`.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: BytesMut,
    /// An unfinished header block: stream, HEADERS flags, bytes so far.
    header_block: Option<(u32, u8, Vec<u8>)>,
    /// Writing failed: the connection fails once what was read is parsed.
    write_error: Option<String>,
    done: bool,
}

impl<T> Driver<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// Parse every whole frame read so far.
    fn parse(&mut self, st: &mut State) -> Result<(), ConnError> {
        loop {
            let b = &self.rbuf[self.rstart..self.rend];
            if b.len() < 9 {
                break;
            }
            let len = frame_len(b);
            if len > MAX_FRAME {
                return Err((FRAME_SIZE_ERROR, format!("frame of {len} bytes")));
            }
            if b.len() < 9 + len {
                break;
            }
            let (kind, flags) = (b[3], b[4]);
            let id = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_STREAM_ID;
            st.on_frame(kind, flags, id, &b[9..9 + len], &mut self.header_block)?;
            self.rstart += 9 + len;
        }
        // Keep room for a whole frame at the end.
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        } else if self.rbuf.len() - self.rend < MAX_FRAME + 9 {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if st.goaway.is_some() && st.open == 0 {
            return Err((NO_ERROR, "the server went away".into()));
        }
        Ok(())
    }

    /// Write `wbuf` (and whatever calls queued since) until done or the socket is full.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        loop {
            if self.wbuf.is_empty() {
                let mut st = self.shared.lock();
                if st.out.is_empty() {
                    drop(st);
                    return Pin::new(&mut self.io).poll_flush(cx);
                }
                std::mem::swap(&mut self.wbuf, &mut st.out);
                st.handed_out = st.next_id.saturating_sub(2);
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => self.wbuf.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// End the connection: tell the server why (unless it was the server's doing) and fail
    /// every open stream.
    fn fail(&mut self, code: u32, why: String) {
        let mut st = self.shared.lock();
        if code != NO_ERROR {
            frame_head(&mut st.out, 8, GOAWAY, 0, 0);
            st.out.put_u32(0);
            st.out.put_u32(code);
        }
        st.close(why);
    }
}

impl<T> Future for Driver<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Reads per poll before yielding to the calls' task.
        let mut budget = 32;
        loop {
            {
                let mut st = this.shared.lock();
                if this.shared.handles.load(Ordering::Acquire) == 0
                    && st.open == 0
                    && st.closed.is_none()
                {
                    // No one can call any more: say goodbye (GOAWAY, no error) and close.
                    frame_head(&mut st.out, 8, GOAWAY, 0, 0);
                    st.out.put_u32(0);
                    st.out.put_u32(NO_ERROR);
                    st.close("connection closed by the client".into());
                }
                if st.closed.is_some() {
                    // Best effort: send what is queued (a GOAWAY), then end.
                    drop(st);
                    let _ = this.poll_write_out(cx);
                    this.done = true;
                    return Poll::Ready(());
                }
                match &st.driver {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.driver = Some(cx.waker().clone()),
                }
            }
            let flushed = match this.write_error {
                Some(_) => true,
                None => match this.poll_write_out(cx) {
                    Poll::Ready(Ok(())) => true,
                    Poll::Ready(Err(e)) => {
                        // Read what the server sent before it closed (a GOAWAY tells which
                        // calls it did not process) before failing the connection.
                        this.write_error = Some(format!("connection lost: {e}"));
                        this.wbuf.clear();
                        true
                    }
                    Poll::Pending => false,
                },
            };
            let mut buf = ReadBuf::new(&mut this.rbuf[this.rend..]);
            match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    if n == 0 {
                        let why = this
                            .write_error
                            .take()
                            .unwrap_or_else(|| "connection closed by the server".into());
                        this.fail(NO_ERROR, why);
                        continue;
                    }
                    this.rend += n;
                    let shared = this.shared.clone();
                    let mut st = shared.lock();
                    let r = this.parse(&mut st);
                    drop(st);
                    if let Err((code, why)) = r {
                        let why = if code == NO_ERROR {
                            why
                        } else {
                            format!("HTTP/2 protocol error: {why}")
                        };
                        this.fail(code, why);
                    }
                    budget -= 1;
                    if budget == 0 {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(Err(e)) => {
                    let why = this
                        .write_error
                        .take()
                        .unwrap_or_else(|| format!("connection lost: {e}"));
                    this.fail(NO_ERROR, why);
                }
                Poll::Pending => {
                    if this.write_error.is_some() {
                        // The read side ends too (EOF or reset) once the reactor sees it.
                        return Poll::Pending;
                    }
                    // Calls may have queued frames meanwhile (not when all runs on one
                    // thread, but then nothing is lost by looking).
                    if !flushed || this.shared.lock().out.is_empty() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl<T> Drop for Driver<T> {
    fn drop(&mut self) {
        if !self.done {
            self.shared
                .lock()
                .close("the connection's runtime ended".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn fields() -> Fields {
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/t.S/M"),
            (":authority", "127.0.0.1:1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("x-meta", "v"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
    }

    fn block() -> HeaderBlock {
        let f = fields();
        HeaderBlock::encode(f.iter().map(|(n, v)| (&n[..], &v[..])).collect::<Vec<_>>())
    }

    #[test]
    fn header_block_forms_decode_to_the_same_fields() {
        let b = block();
        let mut d = loona_hpack::Decoder::new();
        // Literals without indexing are valid on any connection, in any order.
        assert_eq!(d.decode(&b.literal).unwrap(), fields());
        assert_eq!(d.decode(&b.first).unwrap(), fields());
        assert_eq!(d.decode(&b.indexed).unwrap(), fields());
        assert_eq!(d.decode(&b.literal).unwrap(), fields());
        assert_eq!(d.decode(&b.indexed).unwrap(), fields(), "table unchanged");
        assert!(b.indexed.len() < 10, "{:?}", b.indexed);
        // 5 fields inserted (method and scheme are static entries).
        let inserted: usize = fields()[2..]
            .iter()
            .map(|(n, v)| 32 + n.len() + v.len())
            .sum();
        assert_eq!(b.table_size, inserted);
        let mut long = vec![0u8; 300];
        encode_int(&mut long, 1337, 5, 0x20);
        assert_eq!(&long[300..], &[0x3f, 0x9a, 0x0a], "RFC 7541 C.1.2");
    }

    /// A scripted HTTP/2 server end.
    struct Peer {
        io: DuplexStream,
        dec: loona_hpack::Decoder<'static>,
        enc: loona_hpack::Encoder<'static>,
    }

    fn raw(kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        frame_head(&mut b, payload.len(), kind, flags, id);
        b.extend_from_slice(payload);
        b.to_vec()
    }

    impl Peer {
        async fn read(&mut self) -> (u8, u8, u32, Vec<u8>) {
            let mut h = [0u8; 9];
            self.io.read_exact(&mut h).await.unwrap();
            let mut p = vec![0u8; frame_len(&h)];
            self.io.read_exact(&mut p).await.unwrap();
            let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
            (h[3], h[4], id, p)
        }
        async fn send(&mut self, kind: u8, flags: u8, id: u32, payload: &[u8]) {
            self.io
                .write_all(&raw(kind, flags, id, payload))
                .await
                .unwrap();
        }
        fn headers(&mut self, f: &[(&str, &str)]) -> Vec<u8> {
            self.enc
                .encode(f.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
        }
    }

    /// A call running in its own task.
    fn spawn_call(
        conn: &Connection,
        head: &HeaderBlock,
        body: &Bytes,
    ) -> tokio::task::JoinHandle<Result<Reply, StreamError>> {
        let (c, h, b) = (conn.clone(), head.clone(), body.clone());
        tokio::spawn(async move { c.call(&h, &b).await })
    }

    /// Handshake with a server whose SETTINGS payload is `settings`.
    async fn start(settings: &[(u16, u32)]) -> (Connection, Peer) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut peer = Peer {
            io: server,
            dec: loona_hpack::Decoder::new(),
            enc: loona_hpack::Encoder::new(),
        };
        let mut p = Vec::new();
        for (k, v) in settings {
            p.extend_from_slice(&k.to_be_bytes());
            p.extend_from_slice(&v.to_be_bytes());
        }
        peer.send(SETTINGS, 0, 0, &p).await;
        let conn = handshake(client).await.unwrap();
        let mut preface = [0u8; 24];
        peer.io.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, PREFACE);
        let (k, _, _, p) = peer.read().await;
        assert_eq!((k, p.len()), (SETTINGS, 12), "push off, stream window");
        let (k, _, _, p) = peer.read().await;
        assert_eq!(k, WINDOW_UPDATE);
        assert_eq!(
            u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
            CONNECTION_WINDOW - 65_535
        );
        let (k, f, _, _) = peer.read().await;
        assert_eq!((k, f), (SETTINGS, ACK));
        (conn, peer)
    }

    #[tokio::test]
    async fn flow_control_stream_limit_continuation_padding_and_trailers() {
        // One stream at a time, 4-byte stream windows.
        let (conn, mut peer) = start(&[(3, 1), (4, 4)]).await;
        let head = block();
        let body = Bytes::from_static(b"0123456789");
        let first = spawn_call(&conn, &head, &body);
        let second = spawn_call(&conn, &head, &body);

        let (k, f, id, p) = peer.read().await;
        assert_eq!(
            (k, f & (END_HEADERS | END_STREAM), id),
            (HEADERS, END_HEADERS, 1)
        );
        assert_eq!(peer.dec.decode(&p).unwrap(), fields());
        let (k, f, id, p) = peer.read().await;
        assert_eq!(
            (k, f, id, &p[..]),
            (DATA, 0, 1, &b"0123"[..]),
            "stream window"
        );
        peer.send(WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes()).await;
        let (k, f, id, p) = peer.read().await;
        assert_eq!((k, f, id, &p[..]), (DATA, END_STREAM, 1, &b"456789"[..]));
        peer.send(PING, 0, 0, b"pingpong").await;
        let (k, f, _, p) = peer.read().await;
        assert_eq!(
            (k, f, &p[..]),
            (PING, ACK, &b"pingpong"[..]),
            "no stream 3 yet"
        );

        // Reply: 100 Continue, then headers split by CONTINUATION, padded DATA, trailers.
        let cont = peer.headers(&[(":status", "100")]);
        peer.send(HEADERS, END_HEADERS, 1, &cont).await;
        let h = peer.headers(&[(":status", "200"), ("content-type", "application/grpc")]);
        let mut padded = vec![1u8];
        padded.extend_from_slice(&h[..2]);
        padded.push(0);
        peer.send(HEADERS, PADDED, 1, &padded).await;
        peer.send(CONTINUATION, END_HEADERS, 1, &h[2..]).await;
        peer.send(DATA, PADDED, 1, &[3, 0, 0, 0, 0, 2, 8, 1, 9, 9, 9])
            .await;
        let t = peer.headers(&[("grpc-status", "0")]);
        peer.send(HEADERS, END_HEADERS | END_STREAM, 1, &t).await;
        let r = first.await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.grpc_status, r.trailers_only),
            (200, Some(0), false)
        );
        assert_eq!(&r.body[..], &[0, 0, 0, 0, 2, 8, 1]);

        // Now the second call: its head references the dynamic table; the connection
        // window (65,535 - 10) still has room.
        let (k, _, id, p) = peer.read().await;
        assert_eq!((k, id), (HEADERS, 3));
        assert_eq!(p, head.indexed.to_vec());
        assert_eq!(peer.dec.decode(&p).unwrap(), fields());
        let (k, _, id, p) = peer.read().await;
        assert_eq!((k, id, &p[..]), (DATA, 3, &b"0123"[..]));
        // Trailers-only reply.
        let t = peer.headers(&[(":status", "200"), ("grpc-status", "14")]);
        peer.send(HEADERS, END_HEADERS | END_STREAM, 3, &t).await;
        let r = second.await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.grpc_status, r.trailers_only),
            (200, Some(14), true)
        );
        assert!(conn.is_usable());
    }

    #[tokio::test]
    async fn cancel_reset_goaway_and_close() {
        let (conn, mut peer) = start(&[]).await;
        let head = block();
        let body = Bytes::from_static(b"x");
        // A dropped call resets its stream.
        let call = conn.call(&head, &body);
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(20), call).await;
        assert!(timed_out.is_err());
        let (k, _, id, _) = peer.read().await;
        assert_eq!((k, id), (HEADERS, 1));
        let (k, _, id, _) = peer.read().await;
        assert_eq!((k, id), (DATA, 1));
        let (k, _, id, p) = peer.read().await;
        assert_eq!((k, id, p), (RST_STREAM, 1, CANCEL.to_be_bytes().to_vec()));

        // A stream the server resets; then GOAWAY(last 5): stream 7 was not processed,
        // stream 5 still completes, and no new stream opens.
        let s3 = spawn_call(&conn, &head, &body);
        let s5 = spawn_call(&conn, &head, &body);
        let s7 = spawn_call(&conn, &head, &body);
        for want in [3, 3, 5, 5, 7, 7] {
            assert_eq!(peer.read().await.2, want);
        }
        peer.send(RST_STREAM, 0, 3, &ENHANCE_YOUR_CALM.to_be_bytes())
            .await;
        assert_eq!(
            s3.await.unwrap().unwrap_err(),
            StreamError::Reset(ENHANCE_YOUR_CALM)
        );
        let mut goaway = 5u32.to_be_bytes().to_vec();
        goaway.extend_from_slice(&NO_ERROR.to_be_bytes());
        peer.send(GOAWAY, 0, 0, &goaway).await;
        assert_eq!(
            s7.await.unwrap().unwrap_err(),
            StreamError::GoAway(NO_ERROR)
        );
        assert!(!conn.is_usable());
        assert!(matches!(
            conn.call(&head, &body).await,
            Err(StreamError::NotOpened(_))
        ));
        // The server closes with stream 5 open: it fails as a lost connection.
        drop(peer);
        assert!(matches!(
            s5.await.unwrap(),
            Err(StreamError::ConnectionLost(_))
        ));
    }

    #[tokio::test]
    async fn a_server_that_does_not_speak_http2_is_refused_at_once() {
        let (client, mut server) = tokio::io::duplex(4096);
        server
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        let e = handshake(client).await.unwrap_err();
        assert!(e.contains("HTTP/1.x"), "{e}");
        let (client, mut server) = tokio::io::duplex(4096);
        server
            .write_all(&raw(PING, 0, 0, b"12345678"))
            .await
            .unwrap();
        let e = handshake(client).await.unwrap_err();
        assert!(e.contains("expected SETTINGS"), "{e}");
    }

    #[tokio::test]
    async fn a_protocol_error_fails_the_connection_with_goaway() {
        let (conn, mut peer) = start(&[]).await;
        let head = block();
        let body = Bytes::from_static(b"x");
        let s1 = spawn_call(&conn, &head, &body);
        assert_eq!(peer.read().await.2, 1);
        assert_eq!(peer.read().await.2, 1);
        peer.send(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2]).await;
        let e = s1.await.unwrap().unwrap_err();
        assert!(
            matches!(&e, StreamError::ConnectionLost(m) if m.contains("PUSH_PROMISE")),
            "{e:?}"
        );
        let (k, _, _, p) = peer.read().await;
        assert_eq!((k, &p[4..]), (GOAWAY, &PROTOCOL_ERROR.to_be_bytes()[..]));
    }

    #[tokio::test]
    async fn a_shrunk_header_table_is_cleared_and_large_replies_fail() {
        let (conn, mut peer) = start(&[]).await;
        let head = block();
        let body = Bytes::new();
        let s1 = spawn_call(&conn, &head, &body);
        let (k, f, id, p) = peer.read().await;
        assert_eq!(
            (k, f, id),
            (HEADERS, END_HEADERS | END_STREAM, 1),
            "no body, no DATA"
        );
        assert_eq!(p, head.first.to_vec());
        // The server shrinks its table: the next block clears it and uses literals.
        peer.send(SETTINGS, 0, 0, &[0, 1, 0, 0, 0, 0]).await;
        assert_eq!(peer.read().await.0, SETTINGS);
        let h = peer.headers(&[(":status", "200")]);
        peer.send(HEADERS, END_HEADERS, 1, &h).await;
        // A reply over MAX_REPLY is cut off with RST_STREAM(CANCEL).
        let chunk = vec![0u8; MAX_FRAME];
        for _ in 0..=MAX_REPLY / MAX_FRAME {
            peer.send(DATA, 0, 1, &chunk).await;
        }
        assert_eq!(s1.await.unwrap().unwrap_err(), StreamError::TooLarge);
        let s3 = spawn_call(&conn, &head, &body);
        let mut saw_reset = false;
        loop {
            let (k, _, id, p) = peer.read().await;
            match k {
                RST_STREAM => {
                    assert_eq!((id, &p[..]), (1, &CANCEL.to_be_bytes()[..]));
                    saw_reset = true;
                }
                WINDOW_UPDATE => {}
                HEADERS => {
                    assert_eq!(id, 3);
                    assert_eq!(p[0], 0x20, "size update to 0");
                    assert_eq!(&p[1..], &head.literal[..]);
                    peer.dec.set_max_allowed_table_size(0);
                    assert_eq!(peer.dec.decode(&p).unwrap(), fields());
                    break;
                }
                k => panic!("unexpected frame type {k}"),
            }
        }
        assert!(saw_reset);
        let t = peer.headers(&[(":status", "200"), ("grpc-status", "5")]);
        peer.send(HEADERS, END_HEADERS | END_STREAM, 3, &t).await;
        assert_eq!(s3.await.unwrap().unwrap().grpc_status, Some(5));
    }

    #[tokio::test]
    async fn the_last_handle_dropped_sends_goaway_and_closes() {
        let (conn, mut peer) = start(&[]).await;
        let other = conn.clone();
        drop(conn);
        tokio::task::yield_now().await;
        assert!(other.is_usable(), "a handle is left");
        drop(other);
        let (k, _, _, p) = peer.read().await;
        assert_eq!((k, &p[..]), (GOAWAY, &[0u8; 8][..]));
        let mut rest = Vec::new();
        peer.io.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "closed after the GOAWAY");
    }
}
