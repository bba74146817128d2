//! The HTTP/2 client of the grpc task (frame parser, flow control, HPACK decoding): any
//! bytes from a server end a call with a reply or an error, never a panic or a hang.
#![no_main]
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use iter8::grpc::h2conn::{handshake, HeaderBlock};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A server that answers with an empty SETTINGS frame and the fuzz input, then closes.
struct Server {
    data: Vec<u8>,
    pos: usize,
}

impl AsyncRead for Server {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (self.data.len() - self.pos).min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Server {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    // An empty SETTINGS frame first, so most inputs get past the handshake.
    let mut stream = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
    stream.extend_from_slice(data);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let Ok(conn) = handshake(Server { data: stream, pos: 0 }).await else {
            return;
        };
        let head = HeaderBlock::encode([
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/x.Y/Z"),
            (b":authority", b"x"),
            (b"content-type", b"application/grpc"),
        ]);
        let body = Bytes::from_static(&[0, 0, 0, 0, 0]);
        let calls = (0..3).map(|_| conn.call(&head, &body));
        // The server's bytes end, so every call must end too (the timeout only turns a
        // hang into a finding).
        if tokio::time::timeout(Duration::from_secs(5), futures_join(calls.collect()))
            .await
            .is_err()
        {
            panic!("a call did not end after the server closed the connection");
        }
    });
});

async fn futures_join<F: std::future::Future>(calls: Vec<F>) {
    for c in calls {
        let _ = c.await;
    }
}
