//! Client, server and bidirectional streaming calls, run as ghz runs them.
//!
//! - Client streaming and bidirectional: the call sends the request messages in order (the
//!   `data` array; with `stream-call-count`, that many messages, cycling through the array),
//!   waiting `stream-interval` between two messages, and stops sending early when
//!   `stream-call-duration` has passed; then it closes its side. A client-streaming call
//!   then reads its one reply; a bidirectional call reads replies while it sends, until
//!   the server ends the stream.
//! - Server streaming: one request message; replies are read until the server ends the
//!   stream, or until `stream-call-count` replies were read or `stream-call-duration`
//!   passed, when the call cancels the stream (ghz counts such a call as CANCELLED; we
//!   count it as the OK call it is, since ending it was the client's plan).
//!
//! Each stream is one call in the counts and the latency histogram (ghz's `count`). Replies
//! are decoded as the method's output type: a reply that does not decode, a truncated
//! message or a status other than OK fails the call.

use std::time::Duration;

use bytes::Bytes;
use prost_reflect::MessageDescriptor;
use tokio::time::Instant;
use tonic::Code;

use super::client::{decode_replies, http_status_code, stream_outcome, CallOutcome, UnaryCall};
use super::h2conn::{CallStream, Connection};

/// Which side streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streaming {
    Client,
    Server,
    Bidi,
}

impl Streaming {
    /// The kind of a method, None for unary methods.
    pub fn of(method: &prost_reflect::MethodDescriptor) -> Option<Self> {
        match (method.is_client_streaming(), method.is_server_streaming()) {
            (true, true) => Some(Self::Bidi),
            (true, false) => Some(Self::Client),
            (false, true) => Some(Self::Server),
            (false, false) => None,
        }
    }
}

/// ghz's stream parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StreamParams {
    /// Pause between two messages sent (`stream-interval`).
    pub interval: Option<Duration>,
    /// Messages sent (client, bidi) or received (server) per call (`stream-call-count`).
    pub call_count: Option<u64>,
    /// Longest time a call sends (client, bidi) or receives (server) (`stream-call-duration`).
    pub call_duration: Option<Duration>,
}

/// One streaming method, ready to be called many times.
#[derive(Clone, Debug)]
pub struct StreamingCall {
    call: UnaryCall,
    kind: Streaming,
    params: StreamParams,
}

impl StreamingCall {
    /// `call` gives the request head, reply type and deadline.
    pub fn new(call: UnaryCall, kind: Streaming, params: StreamParams) -> Self {
        Self { call, kind, params }
    }

    /// The request messages one call sends, as indexes into the `n` prepared messages:
    /// ghz's static message provider (in order; with a count, cycling to that many).
    fn sends(&self, n: usize) -> usize {
        match self.params.call_count {
            Some(c) if c > 0 => usize::try_from(c).unwrap_or(usize::MAX),
            _ => n,
        }
    }

    /// One call. `requests` are the gRPC-framed request messages: a client-streaming or
    /// bidirectional call sends them all (see [`StreamParams`]); a server-streaming call
    /// sends `requests[first % len]`.
    pub async fn call(&self, conn: &Connection, requests: &[Bytes], first: usize) -> CallOutcome {
        let start = std::time::Instant::now();
        let out = match conn.open_stream(self.call.head()).await {
            Err(e) => stream_outcome(&e),
            Ok(stream) => {
                let deadline = self.params.call_duration.map(|d| Instant::now() + d);
                let code = match self.kind {
                    Streaming::Client => {
                        self.send_all(&stream, requests, deadline).await;
                        match stream.finish().await {
                            Ok(reply) => Ok(self.call.verdict(reply)),
                            Err(e) => Err(e),
                        }
                    }
                    Streaming::Bidi => {
                        let (_, received) = tokio::join!(
                            self.send_all(&stream, requests, deadline),
                            receive(&stream, self.call.output(), None, None)
                        );
                        finish(stream, received).await
                    }
                    Streaming::Server => {
                        let request = requests[first % requests.len().max(1)].clone();
                        if stream.send(request).await {
                            stream.close_send();
                        }
                        let limit = self.params.call_count.filter(|c| *c > 0);
                        let received = receive(&stream, self.call.output(), limit, deadline).await;
                        match received {
                            // Enough: cancel the stream (dropping it resets it).
                            Received::Stopped => Ok(Code::Ok),
                            Received::BadMessage => Ok(Code::Internal),
                            Received::Ended => finish(stream, received).await,
                        }
                    }
                };
                match code {
                    Ok(code) => CallOutcome {
                        code,
                        broken: false,
                        unprocessed: false,
                    },
                    Err(e) => stream_outcome(&e),
                }
            }
        };
        if out.code != Code::Ok && start.elapsed() >= self.call.timeout() {
            return CallOutcome {
                code: Code::DeadlineExceeded,
                ..out
            };
        }
        out
    }

    /// Send the call's messages (interval, count, duration), then close the sending side.
    async fn send_all(
        &self,
        stream: &CallStream<'_>,
        requests: &[Bytes],
        deadline: Option<Instant>,
    ) {
        let total = self.sends(requests.len());
        for i in 0..total {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let Some(message) = requests.get(i % requests.len().max(1)) else {
                break;
            };
            if !stream.send(message.clone()).await {
                // The server ended the stream: nothing more to send.
                return;
            }
            if i + 1 < total {
                if let Some(pause) = self.params.interval.filter(|p| !p.is_zero()) {
                    let wake = Instant::now() + pause;
                    match deadline {
                        Some(d) if d <= wake => {
                            tokio::time::sleep_until(d).await;
                            break;
                        }
                        _ => tokio::time::sleep_until(wake).await,
                    }
                }
            }
        }
        stream.close_send();
    }
}

/// How reading replies ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Received {
    /// The server ended the stream.
    Ended,
    /// The count or the duration was reached: the client ends the call.
    Stopped,
    /// A reply did not decode as the output type.
    BadMessage,
}

/// Read and decode replies until the stream ends, `limit` replies were read, or `deadline`.
async fn receive(
    stream: &CallStream<'_>,
    output: &MessageDescriptor,
    limit: Option<u64>,
    deadline: Option<Instant>,
) -> Received {
    let mut n = 0u64;
    loop {
        if limit.is_some_and(|l| n >= l) {
            return Received::Stopped;
        }
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, stream.recv()).await {
                Ok(m) => m,
                Err(_) => return Received::Stopped,
            },
            None => stream.recv().await,
        };
        let Some(message) = next else {
            return Received::Ended;
        };
        if !decode_replies(&message, output) {
            return Received::BadMessage;
        }
        n += 1;
    }
}

/// The status of a stream whose replies were read: HTTP status, grpc-status, and no
/// truncated message left over.
async fn finish(
    stream: CallStream<'_>,
    received: Received,
) -> Result<Code, super::h2conn::StreamError> {
    let reply = stream.finish().await?;
    if reply.status != 200 {
        return Ok(http_status_code(reply.status));
    }
    let code = reply.grpc_status.map_or(Code::Internal, |c| {
        Code::from_i32(c.min(i32::MAX as u32) as i32)
    });
    if code != Code::Ok {
        return Ok(code);
    }
    if received == Received::BadMessage || !reply.body.is_empty() {
        return Ok(Code::Internal);
    }
    Ok(Code::Ok)
}
