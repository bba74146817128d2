//! Tests of the HTTP/2 client against a scripted server end.

use super::driver::frame_len;
use super::hpack::encode_int;
use super::state::frame_head;
use super::*;
use bytes::{Bytes, BytesMut};
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

#[tokio::test]
async fn a_streaming_call_sends_and_receives_several_messages() {
    // 6-byte stream windows: the second message waits for a WINDOW_UPDATE.
    let (conn, mut peer) = start(&[(4, 6)]).await;
    let head = block();
    let c = conn.clone();
    let h = head.clone();
    let call = tokio::spawn(async move {
        let s = c.open_stream(&h).await.unwrap();
        assert!(s.send(Bytes::from_static(b"\0\0\0\0\x01a")).await);
        assert!(s.send(Bytes::from_static(b"\0\0\0\0\x01b")).await);
        s.close_send();
        let mut got = Vec::new();
        while let Some(m) = s.recv().await {
            got.push(m);
        }
        (got, s.finish().await)
    });
    let (k, f, id, _) = peer.read().await;
    assert_eq!(
        (k, f & END_STREAM, id),
        (HEADERS, 0, 1),
        "the request stays open"
    );
    let (k, f, _, p) = peer.read().await;
    assert_eq!((k, f, &p[..]), (DATA, 0, &b"\0\0\0\0\x01a"[..]));
    peer.send(WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes()).await;
    let (k, f, _, p) = peer.read().await;
    assert_eq!((k, f, &p[..]), (DATA, 0, &b"\0\0\0\0\x01b"[..]));
    let (k, f, _, p) = peer.read().await;
    assert_eq!(
        (k, f, p.len()),
        (DATA, END_STREAM, 0),
        "close_send: empty END_STREAM"
    );

    // Three reply messages; the second is split over two frames.
    let h = peer.headers(&[(":status", "200"), ("content-type", "application/grpc")]);
    peer.send(HEADERS, END_HEADERS, 1, &h).await;
    peer.send(DATA, 0, 1, b"\0\0\0\0\x01x\0\0\0").await;
    peer.send(DATA, 0, 1, b"\0\x02yy\0\0\0\0\0").await;
    let t = peer.headers(&[("grpc-status", "0")]);
    peer.send(HEADERS, END_HEADERS | END_STREAM, 1, &t).await;
    let (got, end) = call.await.unwrap();
    assert_eq!(
        got,
        vec![
            Bytes::from_static(b"\0\0\0\0\x01x"),
            Bytes::from_static(b"\0\0\0\0\x02yy"),
            Bytes::from_static(b"\0\0\0\0\0"),
        ]
    );
    let r = end.unwrap();
    assert_eq!((r.status, r.grpc_status, r.body.len()), (200, Some(0), 0));
}

#[tokio::test]
async fn a_server_that_ends_a_streaming_call_early_stops_the_sender() {
    let (conn, mut peer) = start(&[]).await;
    let head = block();
    let s = conn.open_stream(&head).await.unwrap();
    assert!(s.send(Bytes::from_static(b"\0\0\0\0\x01a")).await);
    let (k, _, _, _) = peer.read().await;
    assert_eq!(k, HEADERS);
    let (k, _, _, _) = peer.read().await;
    assert_eq!(k, DATA);
    let t = peer.headers(&[(":status", "200"), ("grpc-status", "3")]);
    peer.send(HEADERS, END_HEADERS | END_STREAM, 1, &t).await;
    // Our side never ended: the stream is reset with NO_ERROR so the server forgets it.
    let (k, _, id, p) = peer.read().await;
    assert_eq!(
        (k, id, &p[..]),
        (RST_STREAM, 1, &NO_ERROR.to_be_bytes()[..])
    );
    assert!(!s.send(Bytes::from_static(b"\0\0\0\0\x01b")).await);
    assert_eq!(s.recv().await, None);
    let r = s.finish().await.unwrap();
    assert_eq!((r.grpc_status, r.trailers_only), (Some(3), true));

    // A stream dropped before it ended is cancelled.
    let s = conn.open_stream(&head).await.unwrap();
    let (k, _, id, _) = peer.read().await;
    assert_eq!((k, id), (HEADERS, 3));
    drop(s);
    let (k, _, id, p) = peer.read().await;
    assert_eq!((k, id, &p[..]), (RST_STREAM, 3, &CANCEL.to_be_bytes()[..]));
}
