//! The `http` task's client: one request template per endpoint, HTTP/1.1 (our own reader)
//! or HTTP/2 (hyper), TLS by rustls; error kinds of failed exchanges.

use super::*;

/// The request template of one endpoint, shared by every worker.
pub struct HttpSender {
    addrs: Vec<SocketAddr>,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// h2c prior knowledge for http:// URLs.
    h2c: bool,
    method: Method,
    /// The whole HTTP/1.1 request (head and body), serialized once.
    request_h1: Bytes,
    /// absolute-form for HTTP/2
    uri_h2: Uri,
    headers_h2: HeaderMap,
    body: Bytes,
    error_ranges: Vec<ErrorRange>,
}

/// One worker's connection (None until the first request, and after a failure).
#[derive(Default)]
pub struct HttpConn {
    sender: Option<SendReq>,
}

enum SendReq {
    H1(http1::Conn<http1::Stream>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// Why an exchange on a connection failed.
enum ExchangeError {
    H1(http1::Error),
    H2(hyper::Error),
}

impl ExchangeError {
    fn kind(&self) -> ErrorKind {
        match self {
            ExchangeError::H1(http1::Error::Io(e)) => classify_io(e).unwrap_or(ErrorKind::Other),
            ExchangeError::H1(http1::Error::Closed) => ErrorKind::Reset,
            ExchangeError::H1(http1::Error::Invalid(_)) => ErrorKind::Other,
            ExchangeError::H2(e) => classify(e),
        }
    }
}

/// Time allowed to fetch `payloadURL`.
const PAYLOAD_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// GET a payload (`payloadURL`): the body of a 2xx reply (at most 16 MiB).
async fn fetch_payload(url: &str) -> Result<Bytes, String> {
    let resp = crate::tasks::httpcall::send("GET", url, &[], None, PAYLOAD_FETCH_TIMEOUT).await?;
    if !(200..300).contains(&resp.status) {
        return Err(format!("HTTP status {}", resp.status));
    }
    Ok(resp.body)
}

impl HttpSender {
    /// Read files, resolve the host, build the request template. Errors name the field.
    pub(super) async fn prepare(r: &Resolved) -> Result<Self, TaskError> {
        let url = r.url.as_deref().unwrap_or_default();
        let target = parse_url(url).map_err(|m| TaskError::invalid(r.f("url"), m))?;
        let body = match (&r.payload_str, &r.payload_file) {
            _ if r.payload_url.is_some() => {
                let u = r.payload_url.as_deref().unwrap_or_default();
                Some(fetch_payload(u).await.map_err(|m| {
                    TaskError::invalid(
                        r.f("payloadURL"),
                        format!("GET {}: {m}", crate::tasks::httpcall::redact_url(u)),
                    )
                })?)
            }
            (Some(s), _) => Some(Bytes::from(s.clone())),
            (None, Some(path)) => Some(Bytes::from(
                read_capped_async(Path::new(path), MAX_PAYLOAD_BYTES)
                    .await
                    .map_err(|e| {
                        TaskError::invalid(
                            r.f("payloadFile"),
                            format!("cannot read {path:?}: {e}; set the path of a readable file"),
                        )
                    })?,
            )),
            (None, None) => None,
        };
        let tls = if target.https {
            let ca = match &r.ca_file {
                Some(path) => Some(
                    read_capped_async(Path::new(path), MAX_PEM_BYTES)
                        .await
                        .map_err(|e| {
                            TaskError::invalid(r.f("caFile"), format!("cannot read {path:?}: {e}"))
                        })?,
                ),
                None => None,
            };
            let config =
                crate::tasks::tls::client_config(ca.as_deref(), r.insecure_skip_verify, r.http2)
                    .map_err(|m| TaskError::invalid(r.f("caFile"), m))?;
            let name =
                rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
                    TaskError::invalid(r.f("url"), format!("invalid TLS server name: {e}"))
                })?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| {
                TaskError::invalid(
                    r.f("url"),
                    format!("cannot resolve host {:?}: {e}", target.host),
                )
            })?
            .collect();
        if addrs.is_empty() {
            return Err(TaskError::invalid(
                r.f("url"),
                format!("host {:?} has no address", target.host),
            ));
        }
        let scheme = if target.https { "https" } else { "http" };
        let uri_h2: Uri = format!("{scheme}://{}{}", target.authority, target.path_and_query)
            .parse()
            .map_err(|e| TaskError::invalid(r.f("url"), format!("invalid URL: {e}")))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &r.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| TaskError::invalid(r.f(&format!("headers.{k}")), e.to_string()))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| TaskError::invalid(r.f(&format!("headers.{k}")), e.to_string()))?;
            headers.insert(name, value);
        }
        if let Some(ct) = &r.content_type {
            let v = HeaderValue::from_str(ct)
                .map_err(|e| TaskError::invalid(r.f("contentType"), e.to_string()))?;
            headers.insert(CONTENT_TYPE, v);
        }
        // The framing of the body is the client's business, not the user's.
        headers.remove(CONTENT_LENGTH);
        headers.remove(TRANSFER_ENCODING);
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let request_h1 = serialize_h1(
            &method,
            &target.path_and_query,
            &target.authority,
            &headers,
            body.as_ref(),
        );
        let mut headers_h2 = headers;
        headers_h2.remove(HOST);
        Ok(HttpSender {
            addrs,
            tls,
            h2c: r.http2 && !target.https,
            method,
            request_h1,
            uri_h2,
            headers_h2,
            body: body.unwrap_or_default(),
            error_ranges: r.error_ranges.clone(),
        })
    }

    fn is_error_status(&self, status: u16) -> bool {
        self.error_ranges.iter().any(|r| r.contains(status))
    }

    async fn connect(&self) -> Result<SendReq, ErrorKind> {
        let mut last = ErrorKind::Other;
        let mut tcp = None;
        for addr in &self.addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = classify_io(&e).unwrap_or(ErrorKind::Other),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((connector, name)) => {
                let tls =
                    connector.connect(name.clone(), tcp).await.map_err(|e| {
                        match classify_io(&e) {
                            Some(ErrorKind::Refused) => ErrorKind::Refused,
                            Some(ErrorKind::Timeout) => ErrorKind::Timeout,
                            _ => ErrorKind::Tls,
                        }
                    })?;
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                handshake(http1::Stream::Tls(Box::new(tls)), h2).await
            }
            None => handshake(http1::Stream::Tcp(tcp), self.h2c).await,
        }
    }

    /// One request on `sender`: (status, whether the connection can be reused).
    async fn exchange(&self, sender: &mut SendReq) -> Result<(u16, bool), ExchangeError> {
        match sender {
            SendReq::H1(c) => {
                let r = c
                    .request(&self.request_h1, self.method == Method::HEAD)
                    .await
                    .map_err(ExchangeError::H1)?;
                Ok((r.status, r.keep_alive))
            }
            SendReq::H2(s) => {
                let mut req = Request::new(Full::new(self.body.clone()));
                *req.method_mut() = self.method.clone();
                *req.uri_mut() = self.uri_h2.clone();
                *req.headers_mut() = self.headers_h2.clone();
                let resp = s.send_request(req).await.map_err(ExchangeError::H2)?;
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                while let Some(frame) = body.frame().await {
                    frame.map_err(ExchangeError::H2)?;
                }
                Ok((status, true))
            }
        }
    }

    /// Connect, then send one request.
    async fn fresh(&self) -> Result<(SendReq, (u16, bool)), Outcome> {
        let mut sender = self.connect().await.map_err(Outcome::Failed)?;
        match self.exchange(&mut sender).await {
            Ok(r) => Ok((sender, r)),
            Err(e) => Err(Outcome::Failed(e.kind())),
        }
    }
}

/// The HTTP/1.1 request, serialized: request line, `host` first, the other header fields,
/// `content-length` when there is a body, then the body.
fn serialize_h1(
    method: &Method,
    path_and_query: &str,
    authority: &str,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Bytes {
    let mut out = Vec::with_capacity(256 + body.map_or(0, |b| b.len()));
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    match headers.get(HOST) {
        Some(h) => out.extend_from_slice(h.as_bytes()),
        None => out.extend_from_slice(authority.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers.iter().filter(|(n, _)| *n != HOST) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(b) = body {
        out.extend_from_slice(format!("content-length: {}\r\n", b.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    Bytes::from(out)
}

async fn handshake(io: http1::Stream, h2: bool) -> Result<SendReq, ErrorKind> {
    if h2 {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .map_err(|e| classify(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(SendReq::H2(sender))
    } else {
        Ok(SendReq::H1(http1::Conn::new(io)))
    }
}

impl RequestSender for HttpSender {
    type Conn = HttpConn;

    fn new_conn(&self, _worker: usize) -> HttpConn {
        HttpConn::default()
    }

    async fn send(&self, conn: &mut HttpConn) -> Outcome {
        // Taken out while in flight: if the engine drops this future (timeout), the
        // connection is dropped with it and the next request reconnects.
        let reused = match conn.sender.take() {
            // unread bytes before a request: the server sent something unasked (e.g. a 408
            // before closing); start over on a new connection
            Some(SendReq::H1(c)) => c.is_clean().then_some(SendReq::H1(c)),
            Some(SendReq::H2(mut s)) => s.ready().await.is_ok().then_some(SendReq::H2(s)),
            None => None,
        };
        let done = match reused {
            Some(mut sender) => match self.exchange(&mut sender).await {
                Ok(r) => Ok((sender, r)),
                // A kept-alive HTTP/1.1 connection that fails before any byte of the
                // response arrived was closed by the server while idle (its keep-alive
                // timeout): the request was not processed; send it once more on a new
                // connection, as browsers and hyper's pooled client do.
                Err(ExchangeError::H1(e))
                    if matches!(&sender, SendReq::H1(c) if !c.got_bytes())
                        && !matches!(e, http1::Error::Invalid(_)) =>
                {
                    self.fresh().await
                }
                Err(e) => Err(Outcome::Failed(e.kind())),
            },
            None => self.fresh().await,
        };
        match done {
            Ok((sender, (status, keep_alive))) => {
                if keep_alive {
                    conn.sender = Some(sender);
                }
                Outcome::Response {
                    status,
                    error: self.is_error_status(status),
                }
            }
            Err(outcome) => outcome,
        }
    }
}

/// Error kind of an I/O error, when it says.
fn classify_io(e: &std::io::Error) -> Option<ErrorKind> {
    use std::io::ErrorKind as K;
    if let Some(inner) = e.get_ref() {
        if inner.downcast_ref::<rustls::Error>().is_some() {
            return Some(ErrorKind::Tls);
        }
        if let Some(k) = inner.downcast_ref::<std::io::Error>().and_then(classify_io) {
            return Some(k);
        }
    }
    match e.kind() {
        K::ConnectionRefused => Some(ErrorKind::Refused),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            Some(ErrorKind::Reset)
        }
        K::TimedOut => Some(ErrorKind::Timeout),
        _ => None,
    }
}

/// Error kind of a client error: walks the source chain.
fn classify(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(k) = classify_io(io) {
                return k;
            }
        }
        if err.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return ErrorKind::Timeout;
            }
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                // keep looking for a more precise cause, else: reset
                if err.source().is_none() {
                    return ErrorKind::Reset;
                }
            }
        }
        cur = err.source();
    }
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
            return ErrorKind::Reset;
        }
    }
    ErrorKind::Other
}
