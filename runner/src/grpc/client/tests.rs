use super::*;

fn hello() -> MessageDescriptor {
    let pool = crate::grpc::descriptor::compile_proto_text(
        "syntax = \"proto3\"; package t; message R { string m = 1; }",
        &[],
    )
    .unwrap();
    pool.get_message_by_name("t.R").unwrap()
}

#[test]
fn grpc_timeout_uses_at_most_eight_digits() {
    assert_eq!(grpc_timeout(Duration::from_millis(50)), "50000000n");
    assert_eq!(grpc_timeout(Duration::from_secs(20)), "20000000u");
    assert_eq!(grpc_timeout(Duration::from_secs(3600)), "3600000m");
    assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
}

#[test]
fn replies_are_framed_and_decoded() {
    let out = hello();
    // R{m: "hi"} = 0a 02 'h' 'i'
    let one = frame(&[0x0a, 0x02, b'h', b'i']);
    assert_eq!(&one[..5], &[0, 0, 0, 0, 4]);
    assert!(decode_replies(&one, &out));
    assert!(!decode_replies(&[], &out), "no message");
    assert!(!decode_replies(&one[..7], &out), "truncated frame");
    let mut compressed = one.to_vec();
    compressed[0] = 1;
    assert!(
        !decode_replies(&compressed, &out),
        "compression was not offered"
    );
    assert!(!decode_replies(&frame(&[0x0a, 0x09]), &out), "bad message");
}

#[test]
fn statuses_from_http_and_stream_errors() {
    assert_eq!(http_status_code(404), Code::Unimplemented);
    assert_eq!(http_status_code(503), Code::Unavailable);
    assert_eq!(http_status_code(418), Code::Unknown);
    let o = stream_outcome(&StreamError::GoAway(0));
    assert_eq!(
        (o.code, o.broken, o.unprocessed),
        (Code::Unavailable, true, true)
    );
    let o = stream_outcome(&StreamError::Reset(h2conn::REFUSED_STREAM));
    assert_eq!(
        (o.code, o.broken, o.unprocessed),
        (Code::Unavailable, false, true)
    );
    let o = stream_outcome(&StreamError::ConnectionLost("x".into()));
    assert_eq!(
        (o.code, o.broken, o.unprocessed),
        (Code::Unavailable, true, false)
    );
    let o = stream_outcome(&StreamError::Reset(h2conn::CANCEL));
    assert_eq!(o.code, Code::Cancelled);
    assert_eq!(
        stream_outcome(&StreamError::TooLarge).code,
        Code::ResourceExhausted
    );
}

#[test]
fn replies_get_their_status() {
    let c = ChannelConfig {
        host: "127.0.0.1:1".into(),
        tls: None,
        connect_timeout: Duration::from_secs(1),
    }
    .connector()
    .unwrap();
    let call = UnaryCall::new(
        &c,
        "t.S",
        "M",
        hello(),
        MetadataMap::new(),
        Duration::from_secs(1),
    )
    .unwrap();
    let reply = |status, grpc: Option<u32>, trailers_only, body: &[u8]| Reply {
        status,
        grpc_status: grpc,
        trailers_only,
        body: BytesMut::from(body),
    };
    let msg = frame(&[0x0a, 0x02, b'h', b'i']);
    assert_eq!(call.verdict(reply(200, Some(0), false, &msg)), Code::Ok);
    assert_eq!(
        call.verdict(reply(200, None, false, &msg)),
        Code::Internal,
        "no grpc-status"
    );
    assert_eq!(
        call.verdict(reply(200, Some(0), true, &[])),
        Code::Internal,
        "OK without a message"
    );
    assert_eq!(
        call.verdict(reply(200, Some(14), true, &[])),
        Code::Unavailable
    );
    assert_eq!(
        call.verdict(reply(200, Some(0), false, &[0, 0])),
        Code::Internal,
        "truncated"
    );
    assert_eq!(
        call.verdict(reply(200, Some(99), false, &msg)),
        Code::Unknown
    );
    assert_eq!(
        call.verdict(reply(404, None, false, &[])),
        Code::Unimplemented
    );
}

#[test]
fn connector_parses_hosts_and_tls_settings() {
    let cfg = |host: &str, tls: Option<TlsConfig>| ChannelConfig {
        host: host.to_string(),
        tls,
        connect_timeout: Duration::from_secs(1),
    };
    let c = cfg("127.0.0.1:50051", None).connector().unwrap();
    assert_eq!(c.addr, "127.0.0.1:50051");
    assert!(c.tls.is_none());
    let c = cfg("[::1]:8443", Some(TlsConfig::default()))
        .connector()
        .unwrap();
    assert_eq!(c.addr, "[::1]:8443");
    assert_eq!(c.scheme, Scheme::HTTPS);
    let bad_ca = TlsConfig {
        ca_pem: Some(b"not a certificate".to_vec()),
        server_name: None,
    };
    let e = cfg("h:1", Some(bad_ca))
        .connector()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("TLS settings: "), "{e}");
    assert!(cfg("http://", None).connector().is_err());
}
