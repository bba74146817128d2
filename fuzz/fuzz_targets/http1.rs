//! The HTTP/1.1 response reader of the http task: any bytes from a server end in a
//! response or an error, never a panic, a hang or an allocation beyond the caps.
#![no_main]
use std::pin::Pin;
use std::task::{Context, Poll};

use iter8::tasks::http1::Conn;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A server that answers with the fuzz input (in pieces of varying size) then closes.
struct Server {
    data: Vec<u8>,
    pos: usize,
    step: usize,
}

impl AsyncRead for Server {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (self.data.len() - self.pos)
            .min(buf.remaining())
            .min(self.step);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        self.step = self.step % 97 + 1;
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
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut conn = Conn::new(Server {
            data: rest.to_vec(),
            pos: 0,
            step: usize::from(first) + 1,
        });
        // Several requests on one connection: pipelined leftovers must be handled too.
        for head in [first & 1 == 1, false, true] {
            if conn
                .request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", head)
                .await
                .is_err()
            {
                break;
            }
        }
    });
});
