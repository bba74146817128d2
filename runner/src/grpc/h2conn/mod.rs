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

//!
//! The module is split by concern: [`hpack`] (request heads encoded once), `state` (the
//! connection's shared state and the frames it handles), `driver` (the task that owns the
//! socket, and the handshake), `call` (a unary call, and a streaming call that sends and
//! receives several messages).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;

mod call;
mod driver;
mod hpack;
mod state;
#[cfg(test)]
mod tests;

pub use call::CallStream;
pub use driver::handshake;
pub use hpack::HeaderBlock;
use hpack::Indexing;
use state::State;

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
