//! A lean HTTP/1.1 client connection for the `http` task's load.
//!
//! A load generator's own cost per request is what limits how hard one core can push a
//! service, so HTTP/1.1 requests do not go through hyper's general-purpose client (a
//! connection task, channels between it and the caller, a `HeaderMap` built for every
//! response). Instead the request is serialized once, when the task starts, and every
//! request is one write of those bytes; the response head is parsed in place with
//! [`httparse`] (the parser hyper itself uses) and the body is read and discarded without
//! being buffered. HTTP/2 still uses hyper.
//!
//! What is supported (RFC 9112): `Content-Length` and `chunked` bodies (trailers skipped),
//! bodies delimited by the end of the connection, no body for `HEAD`, 1xx (skipped, the
//! final response follows), 204 and 304; persistent connections unless the response says
//! `Connection: close` (or is HTTP/1.0 without `keep-alive`). Responses that break the
//! rules (an invalid head, a head over 64 KiB, conflicting `Content-Length`s, a bad chunk)
//! are errors of kind `other`; a connection that closes before the response is complete
//! is `reset`.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Largest response head (status line and header fields) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in a response head.
const MAX_HEADERS: usize = 128;
/// Initial size of a connection's read buffer (it grows up to [`MAX_HEAD`] for a large head).
const BUF_SIZE: usize = 16 * 1024;

/// A plaintext or TLS connection.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("connection closed before the response was complete")]
    Closed,
    #[error("invalid response: {0}")]
    Invalid(String),
}

/// The part of a response the load test keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Whether the connection may carry the next request.
    pub keep_alive: bool,
}

/// How the body of a response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// One HTTP/1.1 connection: the stream and a read buffer (`buf[start..end]` is unread).
pub struct Conn<S> {
    io: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Whether any byte of the current response has arrived (a reused connection that
    /// fails before that was most likely closed by the server while idle).
    got_bytes: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S) -> Self {
        Conn {
            io,
            buf: vec![0; BUF_SIZE],
            start: 0,
            end: 0,
            got_bytes: false,
        }
    }

    /// No unread byte is waiting: the server sent nothing it was not asked for.
    pub fn is_clean(&self) -> bool {
        self.start == self.end
    }

    /// Whether any byte of the last response arrived.
    pub fn got_bytes(&self) -> bool {
        self.got_bytes
    }

    /// Send `request` (a complete, serialized request) and read the whole response,
    /// discarding its body. `head` says the request's method was HEAD (no body follows).
    pub async fn request(&mut self, request: &[u8], head: bool) -> Result<Response, Error> {
        self.got_bytes = false;
        self.io.write_all(request).await?;
        self.io.flush().await?;
        loop {
            let (n, status, framing, keep_alive) = self.read_head(head).await?;
            self.start += n;
            if (100..200).contains(&status) {
                if status == 101 {
                    return Err(Error::Invalid(
                        "101 Switching Protocols to a plain request".into(),
                    ));
                }
                continue; // an interim response: the final one follows
            }
            let keep_alive = self.skip_body(framing).await? && keep_alive;
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
            return Ok(Response { status, keep_alive });
        }
    }

    /// Read more bytes into the buffer; `Ok(false)` at the end of the stream.
    async fn fill(&mut self) -> Result<bool, Error> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let len = (self.buf.len() * 2).min(MAX_HEAD + BUF_SIZE);
                if len <= self.buf.len() {
                    return Err(Error::Invalid("response head over 64 KiB".into()));
                }
                self.buf.resize(len, 0);
            }
        }
        let n = self.io.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        if n > 0 {
            self.got_bytes = true;
        }
        Ok(n > 0)
    }

    /// Parse the next response head: (its length, status, framing, keep-alive).
    async fn read_head(&mut self, head: bool) -> Result<(usize, u16, Framing, bool), Error> {
        loop {
            if self.end > self.start {
                // Uninitialized header slots: no 4 KiB of empty headers written per response.
                let mut headers =
                    [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut []);
                match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                    &mut resp,
                    &self.buf[self.start..self.end],
                    &mut headers,
                ) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let (framing, keep_alive) = interpret(&resp, status, head)?;
                        return Ok((n, status, framing, keep_alive));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(Error::Invalid(format!("response head: {e}"))),
                }
                if self.end - self.start >= MAX_HEAD {
                    return Err(Error::Invalid("response head over 64 KiB".into()));
                }
            }
            if !self.fill().await? {
                return Err(Error::Closed);
            }
        }
    }

    /// Read and discard a body; `Ok(false)` when the connection cannot be reused after it.
    async fn skip_body(&mut self, framing: Framing) -> Result<bool, Error> {
        match framing {
            Framing::None => Ok(true),
            Framing::Length(n) => {
                self.skip(n).await?;
                Ok(true)
            }
            Framing::UntilClose => {
                self.start = self.end;
                while self.fill().await? {
                    self.start = self.end;
                }
                Ok(false)
            }
            Framing::Chunked => {
                loop {
                    let size = self.chunk_size().await?;
                    if size == 0 {
                        break;
                    }
                    self.skip(size).await?;
                    self.crlf().await?;
                }
                // trailer section: field lines up to an empty line
                loop {
                    let line = self.line().await?;
                    if line == 0 {
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Discard `n` body bytes.
    async fn skip(&mut self, mut n: u64) -> Result<(), Error> {
        loop {
            let avail = (self.end - self.start) as u64;
            let take = avail.min(n);
            self.start += take as usize;
            n -= take;
            if n == 0 {
                return Ok(());
            }
            if !self.fill().await? {
                return Err(Error::Closed);
            }
        }
    }

    async fn chunk_size(&mut self) -> Result<u64, Error> {
        loop {
            match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                Ok(httparse::Status::Complete((n, size))) => {
                    self.start += n;
                    return Ok(size);
                }
                Ok(httparse::Status::Partial) => {
                    if self.end - self.start >= MAX_HEAD {
                        return Err(Error::Invalid("chunk size line too long".into()));
                    }
                }
                Err(_) => return Err(Error::Invalid("bad chunk size line".into())),
            }
            if !self.fill().await? {
                return Err(Error::Closed);
            }
        }
    }

    /// The CRLF that ends a chunk's data.
    async fn crlf(&mut self) -> Result<(), Error> {
        while self.end - self.start < 2 {
            if !self.fill().await? {
                return Err(Error::Closed);
            }
        }
        if &self.buf[self.start..self.start + 2] != b"\r\n" {
            return Err(Error::Invalid("chunk data not followed by CRLF".into()));
        }
        self.start += 2;
        Ok(())
    }

    /// Consume one line (up to and including LF); returns its length without the line end.
    async fn line(&mut self) -> Result<usize, Error> {
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .iter()
                .position(|b| *b == b'\n')
            {
                let line = &self.buf[self.start..self.start + i];
                let len = line.strip_suffix(b"\r").unwrap_or(line).len();
                self.start += i + 1;
                return Ok(len);
            }
            if self.end - self.start >= MAX_HEAD {
                return Err(Error::Invalid("trailer section over 64 KiB".into()));
            }
            if !self.fill().await? {
                return Err(Error::Closed);
            }
        }
    }
}

/// Body framing and persistence of a parsed response head (RFC 9112 6.3, 9.3).
fn interpret(
    resp: &httparse::Response<'_, '_>,
    status: u16,
    head: bool,
) -> Result<(Framing, bool), Error> {
    let http10 = resp.version == Some(0);
    let mut close = false;
    let mut keep_alive_token = false;
    let mut chunked: Option<bool> = None; // Some(last coding is chunked) when TE is present
    let mut length: Option<u64> = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if let Some(last) = h.value.split(|b| *b == b',').next_back() {
                chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            for v in h.value.split(|b| *b == b',') {
                let v = v.trim_ascii();
                let n = std::str::from_utf8(v)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "Content-Length {:?} is not a number",
                            String::from_utf8_lossy(h.value)
                        ))
                    })?;
                if length.is_some_and(|l| l != n) {
                    return Err(Error::Invalid("conflicting Content-Length values".into()));
                }
                length = Some(n);
            }
        }
    }
    let keep_alive = if http10 {
        keep_alive_token && !close
    } else {
        !close
    };
    let framing = if head || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    Ok((framing, keep_alive))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// A connection whose server side answers with `replies` (one per request, written
    /// in pieces of `piece` bytes to exercise partial reads), then closes.
    async fn exchange(
        replies: Vec<&'static [u8]>,
        requests: usize,
        piece: usize,
    ) -> Vec<Result<Response, String>> {
        let (client, mut server): (DuplexStream, DuplexStream) = duplex(1 << 20);
        let srv = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            for reply in replies {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = server.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                for chunk in reply.chunks(piece) {
                    server.write_all(chunk).await.unwrap();
                    server.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut conn = Conn::new(client);
        let mut out = Vec::new();
        for _ in 0..requests {
            let r = conn
                .request(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", false)
                .await;
            let stop = !matches!(
                r,
                Ok(Response {
                    keep_alive: true,
                    ..
                })
            );
            out.push(r.map_err(|e| e.to_string()));
            if stop {
                break;
            }
        }
        drop(conn);
        let _ = srv.await;
        out
    }

    fn ok(status: u16, keep_alive: bool) -> Result<Response, String> {
        Ok(Response { status, keep_alive })
    }

    #[tokio::test]
    async fn content_length_bodies_on_one_connection() {
        for piece in [1, 7, 4096] {
            let got = exchange(
                vec![
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
                    b"HTTP/1.1 503 Busy\r\nContent-Length: 3, 3\r\n\r\nabc",
                ],
                3,
                piece,
            )
            .await;
            assert_eq!(
                got,
                vec![ok(200, true), ok(404, true), ok(503, true)],
                "piece {piece}"
            );
        }
    }

    #[tokio::test]
    async fn chunked_bodies_with_extensions_and_trailers() {
        for piece in [1, 3, 4096] {
            let got = exchange(
                vec![
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
                    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 99\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n",
                    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
                ],
                3,
                piece,
            )
            .await;
            assert_eq!(
                got,
                vec![ok(200, true), ok(201, true), ok(202, true)],
                "piece {piece}"
            );
        }
    }

    #[tokio::test]
    async fn interim_responses_are_skipped_and_no_body_statuses_have_none() {
        let got = exchange(
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                b"HTTP/1.1 204 No Content\r\n\r\n",
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
            ],
            4,
            5,
        )
        .await;
        assert_eq!(
            got,
            vec![ok(200, true), ok(204, true), ok(304, true), ok(200, true)]
        );
    }

    #[tokio::test]
    async fn close_delimited_and_connection_close_end_the_connection() {
        let got = exchange(vec![b"HTTP/1.1 200 OK\r\n\r\nbody until the end"], 2, 4).await;
        assert_eq!(got, vec![ok(200, false)]);
        let got = exchange(
            vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"],
            2,
            4096,
        )
        .await;
        assert_eq!(got, vec![ok(200, false)]);
        // HTTP/1.0: persistent only with keep-alive
        let got = exchange(
            vec![
                b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ],
            3,
            4096,
        )
        .await;
        assert_eq!(got, vec![ok(200, true), ok(200, false)]);
    }

    #[tokio::test]
    async fn a_truncated_response_is_closed_and_bad_ones_are_invalid() {
        let closed = "connection closed before the response was complete".to_string();
        for reply in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..],
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        ] {
            assert_eq!(
                exchange(vec![reply], 1, 4096).await,
                vec![Err(closed.clone())]
            );
        }
        let bad = |reply: &'static [u8]| async move {
            match exchange(vec![reply], 1, 4096).await.pop() {
                Some(Err(e)) => e,
                other => panic!("expected an error, got {other:?}"),
            }
        };
        assert!(bad(b"HTTP/1.1 2x0 OK\r\n\r\n")
            .await
            .starts_with("invalid response"));
        assert!(bad(b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n")
            .await
            .contains("Content-Length \"1x\" is not a number"));
        assert!(bad(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n")
            .await
            .contains("conflicting Content-Length"));
        assert!(
            bad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .await
                .contains("bad chunk size")
        );
        assert!(
            bad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc")
                .await
                .contains("not followed by CRLF")
        );
        assert!(bad(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            .await
            .contains("101"));
    }

    #[tokio::test]
    async fn a_head_over_64_kib_is_refused_but_a_large_one_is_read() {
        let big: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
                "a".repeat(40_000)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        assert_eq!(exchange(vec![big], 1, 4096).await, vec![ok(200, true)]);
        let huge: &'static [u8] = Box::leak(
            format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000))
                .into_bytes()
                .into_boxed_slice(),
        );
        let got = exchange(vec![huge], 1, 4096).await;
        assert_eq!(
            got,
            vec![Err("invalid response: response head over 64 KiB".into())]
        );
    }

    #[tokio::test]
    async fn head_requests_have_no_body() {
        let (client, mut server) = duplex(4096);
        let srv = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = server.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HEAD / HTTP/1.1\r\n"));
            server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                .await
                .unwrap();
            server
        });
        let mut conn = Conn::new(client);
        let r = conn
            .request(b"HEAD / HTTP/1.1\r\n\r\n", true)
            .await
            .unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                keep_alive: true
            }
        );
        assert!(conn.is_clean() && conn.got_bytes());
        drop(srv.await.unwrap());
    }
}
