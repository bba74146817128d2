//! The connection's state, shared by its calls and its driver, and the frames it handles.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::task::Waker;

use bytes::{BufMut, Bytes, BytesMut};

use super::*;

/// One open (or finished, not yet collected) stream.
#[derive(Default)]
pub(super) struct Stream {
    pub(super) waker: Option<Waker>,
    pub(super) reply: Reply,
    /// Response headers (not 1xx) were received; the next HEADERS are trailers.
    pub(super) got_headers: bool,
    pub(super) done: Option<Result<(), StreamError>>,
    /// Bytes received since the last WINDOW_UPDATE of this stream.
    pub(super) recv_unacked: u32,
    pub(super) send_window: i64,
    /// Request bytes waiting for flow-control window.
    pub(super) pending: Bytes,
    /// The request ends once `pending` is sent (a unary request, or a streaming call whose
    /// sending side was closed); `end_sent`: its END_STREAM flag went out.
    pub(super) local_end: bool,
    pub(super) end_sent: bool,
    /// The stream is in `State::blocked`.
    pub(super) in_blocked: bool,
    /// A streaming call: its task is woken for every DATA frame (a message may be whole)
    /// and when its request bytes are written out (`send_waker`).
    pub(super) streaming: bool,
    pub(super) send_waker: Option<Waker>,
}

/// The connection's state, shared by its calls and its driver.
pub(super) struct State {
    /// Frames to write.
    pub(super) out: BytesMut,
    pub(super) driver: Option<Waker>,
    pub(super) streams: HashMap<u32, Stream>,
    /// Streams opened and not yet ended (the server's concurrency limit counts them).
    pub(super) open: usize,
    pub(super) next_id: u32,
    /// Calls waiting for the number of open streams to drop below the server's limit.
    pub(super) waiting: Vec<Waker>,
    /// Streams whose request bytes wait for window, in order.
    pub(super) blocked: VecDeque<u32>,
    pub(super) peer_max_streams: usize,
    pub(super) peer_max_frame: usize,
    pub(super) peer_initial_window: i64,
    pub(super) send_window: i64,
    pub(super) recv_unacked: u32,
    /// The server sent GOAWAY (its last stream id): no new streams.
    pub(super) goaway: Option<u32>,
    /// The connection has failed or ended: why.
    pub(super) closed: Option<String>,
    pub(super) decoder: loona_hpack::Decoder<'static>,
    /// The highest stream id whose frames went to the socket (the rest are still in `out`).
    pub(super) handed_out: u32,
    /// The server's SETTINGS_HEADER_TABLE_SIZE and our use of its table.
    pub(super) peer_table_size: usize,
    pub(super) indexing: Indexing,
}

pub(super) fn frame_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    out.put_uint(len as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
}

/// A connection error: the code sent in our GOAWAY, and the message calls get.
pub(super) type ConnError = (u32, String);

impl State {
    /// Apply the server's SETTINGS payload.
    pub(super) fn settings(&mut self, payload: &[u8]) -> Result<(), ConnError> {
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

    pub(super) fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// Write DATA frames for `id` as far as both windows allow; what is left waits.
    pub(super) fn send_data(&mut self, id: u32) -> bool {
        let Some(s) = self.streams.get_mut(&id) else {
            return true;
        };
        if s.done.is_some() {
            return true;
        }
        while !s.pending.is_empty() {
            let room = self.send_window.min(s.send_window).max(0) as usize;
            let n = s.pending.len().min(self.peer_max_frame).min(room);
            if n == 0 {
                return false;
            }
            let chunk = s.pending.split_to(n);
            let flags = if s.pending.is_empty() && s.local_end {
                s.end_sent = true;
                END_STREAM
            } else {
                0
            };
            frame_head(&mut self.out, n, DATA, flags, id);
            self.out.extend_from_slice(&chunk);
            self.send_window -= n as i64;
            s.send_window -= n as i64;
        }
        if s.local_end && !s.end_sent {
            // A streaming call closed its side with nothing left to send: an empty DATA
            // frame carries END_STREAM (it takes no window).
            frame_head(&mut self.out, 0, DATA, END_STREAM, id);
            s.end_sent = true;
        }
        if let Some(w) = s.send_waker.take() {
            w.wake();
        }
        true
    }

    /// Queue `id`'s pending bytes behind the streams already waiting for window, or write
    /// them now.
    pub(super) fn queue_data(&mut self, id: u32) {
        let in_blocked = self.streams.get(&id).is_some_and(|s| s.in_blocked);
        if in_blocked {
            return;
        }
        if !self.blocked.is_empty() || !self.send_data(id) {
            self.blocked.push_back(id);
            if let Some(s) = self.streams.get_mut(&id) {
                s.in_blocked = true;
            }
        }
    }

    pub(super) fn send_blocked(&mut self) {
        while let Some(&id) = self.blocked.front() {
            if !self.send_data(id) {
                break;
            }
            self.blocked.pop_front();
            if let Some(s) = self.streams.get_mut(&id) {
                s.in_blocked = false;
            }
        }
    }

    /// End a stream (the server ended it, reset it, or the connection failed).
    pub(super) fn finish(&mut self, id: u32, result: Result<(), StreamError>) {
        if let Some(s) = self.streams.get_mut(&id) {
            if s.done.is_some() {
                return;
            }
            s.done = Some(result);
            s.pending = Bytes::new();
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            if let Some(w) = s.send_waker.take() {
                w.wake();
            }
            self.open -= 1;
            for w in self.waiting.drain(..) {
                w.wake();
            }
        }
    }

    /// The server ended the stream. If our side has not ended (a call still sending, or a
    /// request waiting for window), the stream is reset with NO_ERROR, as gRPC clients do,
    /// so that the server forgets it.
    pub(super) fn ended_by_server(&mut self, id: u32) {
        if self.streams.get(&id).is_some_and(|s| !s.end_sent) {
            self.rst(id, NO_ERROR);
        }
        self.finish(id, Ok(()));
    }

    pub(super) fn rst(&mut self, id: u32, code: u32) {
        frame_head(&mut self.out, 4, RST_STREAM, 0, id);
        self.out.put_u32(code);
    }

    /// The connection is over: every open stream fails with `why`.
    pub(super) fn close(&mut self, why: String) {
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
    pub(super) fn on_frame(
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
                        if s.streaming {
                            if let Some(w) = s.waker.take() {
                                w.wake();
                            }
                        }
                    }
                }
                if too_large {
                    self.rst(id, CANCEL);
                    self.finish(id, Err(StreamError::TooLarge));
                } else if flags & END_STREAM != 0 {
                    self.ended_by_server(id);
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
    pub(super) fn on_headers(&mut self, id: u32, flags: u8, block: &[u8]) -> Result<(), ConnError> {
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
            self.ended_by_server(id);
        }
        Ok(())
    }
}

pub(super) fn parse_u32(v: &[u8]) -> Option<u32> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The payload of a frame without its padding.
pub(super) fn unpad(flags: u8, payload: &[u8]) -> Result<&[u8], ConnError> {
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
