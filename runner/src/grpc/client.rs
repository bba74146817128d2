//! Channels to the target (plaintext HTTP/2 or TLS with rustls) and one unary call.

use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataKey, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request};

use super::codec::DynamicCodec;
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
    fn endpoint(&self) -> Result<Endpoint, GrpcError> {
        let uri = if self.host.contains("://") {
            self.host.clone()
        } else if self.tls.is_some() {
            format!("https://{}", self.host)
        } else {
            format!("http://{}", self.host)
        };
        let mut ep = Endpoint::from_shared(uri.clone())
            .map_err(|e| GrpcError::Connect(format!("invalid host {:?}: {e}", self.host)))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_adaptive_window(true);
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

    /// Check the address and TLS settings (no I/O).
    pub fn check(&self) -> Result<(), GrpcError> {
        self.endpoint().map(|_| ())
    }

    /// A channel that connects on first use (connection failures then show up as
    /// `UNAVAILABLE` calls, which are data of the load test). Each channel is one HTTP/2
    /// connection.
    pub fn lazy_channel(&self) -> Result<Channel, GrpcError> {
        Ok(self.endpoint()?.connect_lazy())
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

/// One unary method, ready to be called many times.
#[derive(Clone, Debug)]
pub struct UnaryCall {
    pub path: PathAndQuery,
    pub codec: DynamicCodec,
    pub metadata: MetadataMap,
    pub timeout: Duration,
}

impl UnaryCall {
    /// `/package.Service/Method`.
    pub fn new(
        service: &str,
        method: &str,
        codec: DynamicCodec,
        metadata: MetadataMap,
        timeout: Duration,
    ) -> Result<Self, GrpcError> {
        let path = PathAndQuery::try_from(format!("/{service}/{method}"))
            .map_err(|e| GrpcError::Method(format!("invalid method path: {e}")))?;
        Ok(Self {
            path,
            codec,
            metadata,
            timeout,
        })
    }

    /// Call once; the outcome is the grpc-status code. A call that fails once its deadline
    /// has passed is `DEADLINE_EXCEEDED` (whether our timer fired first, or the server's,
    /// which tonic reports as `CANCELLED`); connection failures are `UNAVAILABLE`.
    pub async fn call(&self, grpc: &mut Grpc<Channel>, body: Bytes) -> Code {
        let start = tokio::time::Instant::now();
        let mut req = Request::new(body);
        *req.metadata_mut() = self.metadata.clone();
        req.set_timeout(self.timeout);
        let fut = async {
            if grpc.ready().await.is_err() {
                return Code::Unavailable;
            }
            match grpc.unary(req, self.path.clone(), self.codec.clone()).await {
                Ok(_) => Code::Ok,
                Err(status) => status.code(),
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Code::Ok) => Code::Ok,
            Ok(_) if start.elapsed() >= self.timeout => Code::DeadlineExceeded,
            Ok(code) => code,
            Err(_) => Code::DeadlineExceeded,
        }
    }
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
