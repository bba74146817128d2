//! The task that owns the socket, and the HTTP/2 handshake that starts it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::state::{frame_head, ConnError};
use super::*;

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
pub(super) const READ_BUF: usize = 64 << 10;

pub(super) fn frame_len(b: &[u8]) -> usize {
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

/// The task that owns the socket.
pub(super) struct Driver<T> {
    pub(super) io: T,
    pub(super) shared: Arc<Shared>,
    /// Bytes read and not yet parsed are `rbuf[rstart..rend]`.
    pub(super) rbuf: Vec<u8>,
    pub(super) rstart: usize,
    pub(super) rend: usize,
    pub(super) wbuf: BytesMut,
    /// An unfinished header block: stream, HEADERS flags, bytes so far.
    pub(super) header_block: Option<(u32, u8, Vec<u8>)>,
    /// Writing failed: the connection fails once what was read is parsed.
    pub(super) write_error: Option<String>,
    pub(super) done: bool,
}

impl<T> Driver<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// Parse every whole frame read so far.
    pub(super) fn parse(&mut self, st: &mut State) -> Result<(), ConnError> {
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
    pub(super) fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
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
    pub(super) fn fail(&mut self, code: u32, why: String) {
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
