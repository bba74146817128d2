//! Connections to the target (plaintext HTTP/2 or TLS with rustls) and one unary call.
//!
//! Load runs on our own HTTP/2 client connection ([`super::h2conn`], opened by
//! [`Connector`]; [`UnaryCall`]): per call, one HTTP/2 stream with a header block encoded
//! once and pre-framed request bytes, and the reply read in full (message decoded,
//! grpc-status checked). Server reflection, a few calls before load, uses a tonic
//! [`Channel`].

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataKey, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

use super::h2conn::{self, HeaderBlock, Reply, StreamError};
use super::GrpcError;

/// How to reach the server.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// `host:port`, or a URI (`http://host:port`, `https://host:port`).
    pub host: String,
    /// `None`: plaintext (ghz's `insecure`). `Some`: TLS verified against the Web PKI roots
    /// plus the given CA certificate (PEM).
    pub tls: Option<TlsConfig>,
    pub connect_timeout: Duration,
}

/// TLS settings.
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    /// Extra trusted CA certificate(s), PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// Server name to verify (default: the host's name).
    pub server_name: Option<String>,
}

impl ChannelConfig {
    /// `host` as a URI: as given when it has a scheme, else `https://` with TLS and
    /// `http://` without.
    fn uri_text(&self) -> String {
        if self.host.contains("://") {
            self.host.clone()
        } else if self.tls.is_some() {
            format!("https://{}", self.host)
        } else {
            format!("http://{}", self.host)
        }
    }

    fn endpoint(&self) -> Result<Endpoint, GrpcError> {
        let uri = self.uri_text();
        let mut ep = Endpoint::from_shared(uri.clone())
            .map_err(|e| GrpcError::Connect(format!("invalid host {:?}: {e}", self.host)))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            let mut cfg = ClientTlsConfig::new().with_webpki_roots();
            if let Some(pem) = &tls.ca_pem {
                cfg = cfg.ca_certificate(Certificate::from_pem(pem.clone()));
            }
            if let Some(name) = &tls.server_name {
                cfg = cfg.domain_name(name.clone());
            }
            ep = ep
                .tls_config(cfg)
                .map_err(|e| GrpcError::Connect(format!("TLS settings for {uri}: {e}")))?;
        }
        Ok(ep)
    }

    /// Connect now (for reflection, before load starts).
    pub async fn connect(&self) -> Result<Channel, GrpcError> {
        self.endpoint()?.connect().await.map_err(|e| {
            let mut msg = format!("cannot connect to {}: {e}", self.host);
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            GrpcError::Connect(msg)
        })
    }
}

/// Build request metadata from `key: value` pairs; keys ending in `-bin` carry the value's
/// bytes as binary metadata. Returns the offending key on error.
pub fn metadata_map<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<MetadataMap, (String, String)> {
    let mut map = MetadataMap::new();
    for (k, v) in pairs {
        let key = k.to_ascii_lowercase();
        if key.ends_with("-bin") {
            let name = MetadataKey::from_bytes(key.as_bytes())
                .map_err(|e| (k.clone(), format!("invalid metadata key: {e}")))?;
            map.append_bin(name, BinaryMetadataValue::from_bytes(v.as_bytes()));
        } else {
            let name = MetadataKey::from_bytes(key.as_bytes())
                .map_err(|e| (k.clone(), format!("invalid metadata key: {e}")))?;
            let value: AsciiMetadataValue = v.parse().map_err(|e| {
                (
                    k.clone(),
                    format!("invalid metadata value (visible ASCII only): {e}"),
                )
            })?;
            map.append(name, value);
        }
    }
    Ok(map)
}

/// Opens the HTTP/2 connections of a load test: a TCP (or rustls TLS) stream driven by
/// [`super::h2conn`], so a call costs no extra task or channel hop. The connection's driver
/// is spawned on the calling thread's Tokio runtime.
#[derive(Clone)]
pub struct Connector {
    /// `host:port` to connect to.
    addr: String,
    scheme: Scheme,
    authority: Authority,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A live HTTP/2 connection (cheap to clone: every clone multiplexes its calls onto it).
pub use super::h2conn::Connection;

impl ChannelConfig {
    /// The connector of load connections (checks the address and the TLS settings; no I/O).
    pub fn connector(&self) -> Result<Connector, GrpcError> {
        let tls = self.tls.is_some();
        let uri: Uri = self
            .uri_text()
            .parse()
            .map_err(|e| GrpcError::Connect(format!("invalid host {:?}: {e}", self.host)))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| GrpcError::Connect(format!("invalid host {:?}", self.host)))?;
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let addr = format!("{}:{port}", authority.host());
        let tls = match &self.tls {
            None => None,
            Some(t) => {
                let name = t.server_name.clone().unwrap_or_else(|| {
                    authority
                        .host()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string()
                });
                let server_name = ServerName::try_from(name.clone()).map_err(|e| {
                    GrpcError::Connect(format!("invalid TLS server name {name:?}: {e}"))
                })?;
                let config = tls_client_config(t.ca_pem.as_deref())
                    .map_err(|e| GrpcError::Connect(format!("TLS settings: {e}")))?;
                Some((TlsConnector::from(Arc::new(config)), server_name))
            }
        };
        Ok(Connector {
            addr,
            scheme: if tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            authority,
            tls,
            connect_timeout: self.connect_timeout,
        })
    }
}

/// rustls settings: the Web PKI roots plus the given CA certificate(s), ALPN `h2`.
fn tls_client_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots =
        crate::tasks::tls::root_store(ca_pem).map_err(|e| match e.strip_prefix("holds") {
            Some(rest) => format!("the CA file holds{rest}"),
            None => e,
        })?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

impl Connector {
    /// Connect (TCP, TLS, HTTP/2 preface) within the connect timeout; the connection's
    /// driver runs as a task of the current Tokio runtime until the connection ends.
    pub async fn connect(&self) -> Result<Connection, String> {
        let open = async {
            let tcp = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => h2conn::handshake(tcp).await,
                Some((tls, name)) => {
                    let stream = tls
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS handshake with {} failed: {e}", self.addr))?;
                    match stream.get_ref().1.alpn_protocol() {
                        None | Some(b"h2") => {}
                        Some(p) => {
                            return Err(format!(
                                "{} chose ALPN protocol {:?} instead of h2 (HTTP/2)",
                                self.addr,
                                String::from_utf8_lossy(p)
                            ))
                        }
                    }
                    h2conn::handshake(stream).await
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, open).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "cannot connect to {} within {:?}",
                self.addr, self.connect_timeout
            )),
        }
    }
}

/// How one call ended: its grpc-status, whether the connection is unusable (the next call
/// reconnects), and whether the server certainly did not process the request (the stream
/// could not be opened, was above a GOAWAY's last stream, or was refused): such a call may
/// be retried, as gRPC clients do transparently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallOutcome {
    pub code: Code,
    pub broken: bool,
    pub unprocessed: bool,
}

/// One unary method, ready to be called many times: the request head (`:path`,
/// content-type, te, grpc-timeout, user-agent, metadata) is one header block encoded once.
#[derive(Clone, Debug)]
pub struct UnaryCall {
    head: HeaderBlock,
    output: MessageDescriptor,
    timeout: Duration,
}

impl UnaryCall {
    /// `/package.Service/Method` on the connector's server; replies decode as `output`.
    pub fn new(
        connector: &Connector,
        service: &str,
        method: &str,
        output: MessageDescriptor,
        metadata: MetadataMap,
        timeout: Duration,
    ) -> Result<Self, GrpcError> {
        let path = PathAndQuery::try_from(format!("/{service}/{method}"))
            .map_err(|e| GrpcError::Method(format!("invalid method path: {e}")))?;
        let mut headers = metadata.into_headers();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        if !headers.contains_key(http::header::USER_AGENT) {
            headers.insert(
                http::header::USER_AGENT,
                HeaderValue::from_static(concat!("iter8-grpc/", env!("CARGO_PKG_VERSION"))),
            );
        }
        headers.insert(
            HeaderName::from_static("grpc-timeout"),
            HeaderValue::try_from(grpc_timeout(timeout))
                .map_err(|e| GrpcError::Method(format!("invalid timeout: {e}")))?,
        );
        let pseudo: [(&[u8], &[u8]); 4] = [
            (b":method", b"POST"),
            (b":scheme", connector.scheme.as_str().as_bytes()),
            (b":path", path.as_str().as_bytes()),
            (b":authority", connector.authority.as_str().as_bytes()),
        ];
        let head = HeaderBlock::encode(
            pseudo.into_iter().chain(
                headers
                    .iter()
                    .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
            ),
        );
        Ok(Self {
            head,
            output,
            timeout,
        })
    }

    /// Call once with an already framed request ([`frame`]) and read the whole reply: its
    /// message is decoded as the output type and grpc-status is checked. A call that fails
    /// once its deadline has passed is `DEADLINE_EXCEEDED` (whichever side gave up);
    /// connection failures are `UNAVAILABLE`.
    pub async fn call(&self, conn: &Connection, framed: &Bytes) -> CallOutcome {
        let start = std::time::Instant::now();
        let out = match conn.call(&self.head, framed).await {
            Ok(reply) => CallOutcome {
                code: self.verdict(reply),
                broken: false,
                unprocessed: false,
            },
            Err(e) => stream_outcome(&e),
        };
        if out.code != Code::Ok && start.elapsed() >= self.timeout {
            return CallOutcome {
                code: Code::DeadlineExceeded,
                ..out
            };
        }
        out
    }

    /// The request head (shared with streaming calls of the same method).
    pub(super) fn head(&self) -> &HeaderBlock {
        &self.head
    }

    /// The reply message type.
    pub(super) fn output(&self) -> &MessageDescriptor {
        &self.output
    }

    /// The per-call deadline.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The status of a whole reply: HTTP status, grpc-status, and the message decoded.
    pub(super) fn verdict(&self, reply: Reply) -> Code {
        if reply.status != 200 {
            return http_status_code(reply.status);
        }
        let code = reply.grpc_status.map_or(Code::Internal, |c| {
            Code::from_i32(c.min(i32::MAX as u32) as i32)
        });
        if reply.trailers_only {
            // No message.
            return if code == Code::Ok {
                Code::Internal
            } else {
                code
            };
        }
        if code != Code::Ok {
            return code;
        }
        if decode_replies(&reply.body, &self.output) {
            Code::Ok
        } else {
            Code::Internal
        }
    }
}

/// gRPC's mapping of HTTP/2 failures: a stream never opened or above a GOAWAY's last id was
/// not processed (the call may be retried); connection failures and refused streams are
/// `UNAVAILABLE`, other resets by their error code.
pub(super) fn stream_outcome(e: &StreamError) -> CallOutcome {
    let (code, broken, unprocessed) = match e {
        StreamError::NotOpened(_) => (Code::Unavailable, true, true),
        StreamError::GoAway(_) => (Code::Unavailable, true, true),
        StreamError::ConnectionLost(_) => (Code::Unavailable, true, false),
        StreamError::TooLarge => (Code::ResourceExhausted, false, false),
        StreamError::Reset(reason) => match *reason {
            h2conn::REFUSED_STREAM => (Code::Unavailable, false, true),
            h2conn::CANCEL => (Code::Cancelled, false, false),
            h2conn::ENHANCE_YOUR_CALM => (Code::ResourceExhausted, false, false),
            h2conn::INADEQUATE_SECURITY => (Code::PermissionDenied, false, false),
            _ => (Code::Internal, false, false),
        },
    };
    if let StreamError::NotOpened(why) | StreamError::ConnectionLost(why) = e {
        tracing::debug!("grpc: {why}");
    }
    CallOutcome {
        code,
        broken,
        unprocessed,
    }
}

/// Prefix an encoded message with the gRPC frame header (not compressed, length).
pub fn frame(message: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + message.len());
    b.put_u8(0);
    b.put_u32(message.len() as u32);
    b.extend_from_slice(message);
    b.freeze()
}

/// Decode every gRPC frame of a reply body as `output`; false when there is none, a frame
/// is truncated or compressed (we offer no compression), or a message does not parse.
pub(super) fn decode_replies(mut data: &[u8], output: &MessageDescriptor) -> bool {
    let mut n = 0;
    while !data.is_empty() {
        if data.len() < 5 || data[0] != 0 {
            return false;
        }
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        let Some(msg) = data.get(5..5 + len) else {
            return false;
        };
        if DynamicMessage::decode(output.clone(), msg).is_err() {
            return false;
        }
        data = &data[5 + len..];
        n += 1;
    }
    n > 0
}

/// gRPC's mapping of HTTP statuses of non-gRPC replies.
pub(super) fn http_status_code(status: u16) -> Code {
    match status {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// A deadline in grpc-timeout form: at most 8 digits and the finest unit that fits.
fn grpc_timeout(d: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let candidates = [
        (d.as_nanos(), 'n'),
        (d.as_micros(), 'u'),
        (d.as_millis(), 'm'),
        (u128::from(d.as_secs()), 'S'),
        (u128::from(d.as_secs() / 60), 'M'),
    ];
    for (v, unit) in candidates {
        if v <= MAX {
            return format!("{v}{unit}");
        }
    }
    format!("{}H", (d.as_secs() / 3600).min(99_999_999))
}

/// All gRPC status codes in numeric order.
pub const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// The canonical upper-case name of a status code (`OK`, `UNAVAILABLE`, ...), as gRPC
/// writes it and as the metric `status-<NAME>` is named.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests;
