//! Calls on a connection: a unary call (one request, one whole reply) and a streaming call.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::state::{frame_head, Stream};
use super::*;

impl Connection {
    /// Whether new calls can be made (not closed, no GOAWAY, stream ids left).
    pub fn is_usable(&self) -> bool {
        let st = self.0.lock();
        st.closed.is_none() && st.goaway.is_none() && st.next_id < MAX_STREAM_ID
    }

    /// One request (its header block and body) on a new stream; resolves with the whole
    /// reply. Dropping the future before then resets the stream (CANCEL).
    pub async fn call(&self, head: &HeaderBlock, body: &Bytes) -> Result<Reply, StreamError> {
        let id = std::future::poll_fn(|cx| self.open(cx, head, Some(body))).await?;
        let mut guard = Open {
            shared: &self.0,
            id,
            collected: false,
        };
        let reply = std::future::poll_fn(|cx| guard.poll_reply(cx)).await;
        guard.collected = true;
        reply
    }

    /// A streaming call: a new stream with this request head and no message yet. Send
    /// messages with [`CallStream::send`], end the request with [`CallStream::close_send`],
    /// read replies with [`CallStream::recv`] and the status with [`CallStream::finish`].
    pub async fn open_stream(&self, head: &HeaderBlock) -> Result<CallStream<'_>, StreamError> {
        let id = std::future::poll_fn(|cx| self.open(cx, head, None)).await?;
        Ok(CallStream {
            open: Open {
                shared: &self.0,
                id,
                collected: false,
            },
        })
    }

    /// Open a stream: `body` is a unary request (the stream's sending side ends with it),
    /// None a streaming call.
    pub(super) fn open(
        &self,
        cx: &mut Context<'_>,
        head: &HeaderBlock,
        body: Option<&Bytes>,
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
        let end_sent = body.is_some_and(|b| b.is_empty());
        let end = if end_sent { END_STREAM } else { 0 };
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
                pending: body.cloned().unwrap_or_default(),
                local_end: body.is_some(),
                end_sent,
                streaming: body.is_none(),
                ..Stream::default()
            },
        );
        st.queue_data(id);
        st.wake_driver();
        Poll::Ready(Ok(id))
    }
}

/// A streaming call's stream (client, server or bidirectional streaming). Dropping it before
/// the stream ended resets the stream (CANCEL): that is how a call is cancelled.
pub struct CallStream<'a> {
    open: Open<'a>,
}

impl CallStream<'_> {
    /// Send one message (gRPC-framed). Resolves once its bytes are written to the
    /// connection's output (flow control permitting), so a fast sender waits for the
    /// server's window; false when the stream has ended (the server ended it, reset it, or
    /// the connection failed): then stop sending and [`CallStream::finish`].
    pub async fn send(&self, message: Bytes) -> bool {
        let id = self.open.id;
        {
            let mut st = self.open.shared.lock();
            let Some(s) = st.streams.get_mut(&id) else {
                return false;
            };
            if s.done.is_some() || s.local_end {
                return false;
            }
            s.pending = if s.pending.is_empty() {
                message
            } else {
                [&s.pending[..], &message[..]].concat().into()
            };
            st.queue_data(id);
            st.wake_driver();
        }
        std::future::poll_fn(|cx| {
            let mut st = self.open.shared.lock();
            let Some(s) = st.streams.get_mut(&id) else {
                return Poll::Ready(false);
            };
            if s.done.is_some() {
                return Poll::Ready(false);
            }
            if s.pending.is_empty() {
                return Poll::Ready(true);
            }
            match &s.send_waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.send_waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// End the sending side (END_STREAM after whatever is still waiting for window).
    pub fn close_send(&self) {
        let id = self.open.id;
        let mut st = self.open.shared.lock();
        let Some(s) = st.streams.get_mut(&id) else {
            return;
        };
        if s.local_end || s.done.is_some() {
            return;
        }
        s.local_end = true;
        st.queue_data(id);
        st.wake_driver();
    }

    /// The next whole reply message, gRPC-framed (its 5-byte prefix included); None once
    /// the stream has ended (then [`CallStream::finish`] tells how) and no whole message
    /// is left.
    pub async fn recv(&self) -> Option<Bytes> {
        let id = self.open.id;
        std::future::poll_fn(|cx| {
            let mut st = self.open.shared.lock();
            let Some(s) = st.streams.get_mut(&id) else {
                return Poll::Ready(None);
            };
            let body = &mut s.reply.body;
            if body.len() >= 5 {
                let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
                if body.len() >= 5 + len {
                    return Poll::Ready(Some(body.split_to(5 + len).freeze()));
                }
            }
            if s.done.is_some() {
                return Poll::Ready(None);
            }
            match &s.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Wait for the stream to end: the reply's status, grpc-status and whatever body was
    /// not taken by [`CallStream::recv`] (a truncated message).
    pub async fn finish(mut self) -> Result<Reply, StreamError> {
        let reply = std::future::poll_fn(|cx| self.open.poll_reply(cx)).await;
        self.open.collected = true;
        reply
    }
}

/// A call's open stream; resets it when the call is dropped before its reply.
pub(super) struct Open<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) id: u32,
    pub(super) collected: bool,
}

impl Open<'_> {
    pub(super) fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reply, StreamError>> {
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
        if let Some(s) = st.streams.remove(&self.id) {
            if s.in_blocked {
                st.blocked.retain(|&b| b != self.id);
            }
        }
    }
}
