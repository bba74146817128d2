//! One-off HTTP(S) calls for `custommetrics` (provider queries, template URLs) and `notify`:
//! hyper's HTTP/1.1 client over TCP or rustls, a bounded time and body size, as Go's
//! `http.Client` (which Iter8 used) behaves by default:
//! - TLS trusts Mozilla's roots, the system's and the task's `caFile`; `insecureSkipVerify`
//!   turns verification off ([`super::tls`]);
//! - proxies from `HTTPS_PROXY` / `HTTP_PROXY` (and `ALL_PROXY`), except hosts in `NO_PROXY`
//!   and loopback hosts (`localhost`, 127.0.0.0/8, ::1), which Go never proxies: https goes
//!   through a `CONNECT` tunnel, http as an absolute-form request; `user:password@` in the
//!   proxy URL becomes `Proxy-Authorization: Basic`;
//! - redirects (301, 302, 303, 307, 308) are followed, at most [`MAX_REDIRECTS`]: 301/302/303
//!   turn a non-GET/HEAD into a GET without body, 307/308 repeat the request; the
//!   `Authorization` header is not sent on to another host.
//!
//! Errors never include header values (they may carry credentials).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// Responses larger than this are cut off with an error (a metrics query answer is small).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Redirects followed at most (Go's default).
pub const MAX_REDIRECTS: usize = 10;

/// A response: status and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Bytes,
    /// The `Location` header (redirects).
    location: Option<String>,
}

/// How a call is made: its time limit (redirects included) and TLS trust.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub timeout: Duration,
    /// PEM CA certificate(s) trusted beside Mozilla's and the system's roots (`caFile`).
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any server certificate (`insecureSkipVerify`).
    pub insecure_skip_verify: bool,
}

impl CallOptions {
    /// Default trust, this time limit.
    pub fn new(timeout: Duration) -> CallOptions {
        CallOptions {
            timeout,
            ca_pem: None,
            insecure_skip_verify: false,
        }
    }

    /// A task's `caFile` (read now; an unreadable or empty file is bad input naming
    /// `caFile`) and `insecureSkipVerify`.
    pub fn for_task(
        timeout: Duration,
        ca_file: Option<&str>,
        insecure_skip_verify: Option<bool>,
    ) -> Result<CallOptions, super::TaskError> {
        let ca_pem = match ca_file.map(str::trim).filter(|f| !f.is_empty()) {
            None => None,
            Some(path) => {
                let pem = crate::model::limits::read_capped(
                    std::path::Path::new(path),
                    crate::model::limits::MAX_PEM_BYTES,
                )
                .map_err(|e| {
                    super::TaskError::invalid("caFile", format!("cannot read {path:?}: {e}"))
                })?;
                // fail at once on a file without certificates, not at the first call
                super::tls::root_store(Some(&pem))
                    .map_err(|m| super::TaskError::invalid("caFile", format!("{path:?} {m}")))?;
                Some(pem)
            }
        };
        Ok(CallOptions {
            timeout,
            ca_pem,
            insecure_skip_verify: insecure_skip_verify.unwrap_or(false),
        })
    }
}

impl HttpResponse {
    /// The body as text, cut to `max` characters (for error messages).
    pub fn body_snippet(&self, max: usize) -> String {
        let s = String::from_utf8_lossy(&self.body);
        let s = s.trim();
        if s.chars().count() > max {
            format!("{}...", s.chars().take(max).collect::<String>())
        } else {
            s.to_string()
        }
    }
}

/// Append `params` (Go's `url.Values.Encode` escaping) to `url`'s query.
pub fn with_query(url: &str, params: &[(String, String)]) -> String {
    if params.is_empty() {
        return url.to_string();
    }
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                super::gotemplate::query_escape(k),
                super::gotemplate::query_escape(v)
            )
        })
        .collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{}", q.join("&"))
}

/// [`send_with`] default trust and this time limit.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    send_with(method, url, headers, body, &CallOptions::new(timeout)).await
}

/// Send one request (following redirects) and read the whole response. `Err` is a
/// readable reason (connection refused, timeout, bad URL...), without header values.
pub async fn send_with(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
    opts: &CallOptions,
) -> Result<HttpResponse, String> {
    match tokio::time::timeout(opts.timeout, follow(method, url, headers, body, opts)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{method} {}: no answer within {}",
            redact_url(url),
            crate::model::duration::format_duration(opts.timeout)
        )),
    }
}

async fn follow(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
    opts: &CallOptions,
) -> Result<HttpResponse, String> {
    let tls = Arc::new(
        super::tls::client_config(opts.ca_pem.as_deref(), opts.insecure_skip_verify, false)
            .map_err(|e| format!("{method} {}: {e}", redact_url(url)))?,
    );
    let proxies = Matcher::from_env();
    let mut method = method.to_ascii_uppercase();
    let mut url = url.to_string();
    let mut headers = headers.to_vec();
    let mut body = body;
    for hop in 0..=MAX_REDIRECTS {
        let resp = send_once(&method, &url, &headers, body.clone(), &tls, &proxies).await?;
        let (303 | 301 | 302 | 307 | 308) = resp.status else {
            return Ok(resp);
        };
        let Some(location) = resp.location.as_deref() else {
            return Ok(resp);
        };
        if hop == MAX_REDIRECTS {
            return Err(format!(
                "{method} {}: stopped after {MAX_REDIRECTS} redirects",
                redact_url(&url)
            ));
        }
        let next = resolve_location(&url, location)
            .ok_or_else(|| format!("{method} {}: bad redirect location", redact_url(&url)))?;
        if resp.status <= 303 && method != "GET" && method != "HEAD" {
            method = "GET".to_string();
            body = None;
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        }
        if host_of(&next) != host_of(&url) {
            headers.retain(|(k, _)| {
                !k.eq_ignore_ascii_case("authorization") && !k.eq_ignore_ascii_case("cookie")
            });
        }
        tracing::debug!(
            "{method} {}: redirected ({}) to {}",
            redact_url(&url),
            resp.status,
            redact_url(&next)
        );
        url = next;
    }
    unreachable!("the loop returns on its last hop")
}

/// `host[:port]` of a URL, lowercased.
fn host_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    uri.authority().map(|a| {
        a.as_str()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    })
}

/// The absolute URL a `Location` header names, relative to `base`.
fn resolve_location(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if location.contains("://") {
        return Some(location.to_string());
    }
    let uri: http::Uri = base.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?.as_str();
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = uri.path();
    let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{scheme}://{authority}{dir}{location}"))
}

/// Hosts Go's `http.ProxyFromEnvironment` never proxies.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The URL without its user-info part (`user:password@`).
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let auth_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    url.to_string()
}

async fn send_once(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
    tls: &Arc<rustls::ClientConfig>,
    proxies: &Matcher,
) -> Result<HttpResponse, String> {
    let shown = redact_url(url);
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL {shown:?}: {e}"))?;
    crate::model::limits::check_url_port(url).map_err(|e| format!("bad URL {shown:?}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("bad URL {shown:?}: use http:// or https://")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("bad URL {shown:?}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let method: http::Method = method
        .parse()
        .map_err(|_| format!("bad HTTP method {method:?}"))?;
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let authority = uri
        .authority()
        .map(|a| {
            a.as_str()
                .rsplit('@')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    let proxy = if is_loopback(&host) {
        None
    } else {
        proxies.intercept(&uri)
    };
    // through a proxy, plain http asks for the absolute URL (without user-info)
    let target = match (&proxy, https) {
        (Some(_), false) => format!("http://{authority}{path}"),
        _ => path,
    };

    let mut req = http::Request::builder()
        .method(method.clone())
        .uri(target)
        .header(http::header::HOST, authority.as_str());
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("bad header name {k:?}"))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| format!("header {k:?}: value is not valid in an HTTP header"))?;
        req = req.header(name, value);
    }
    if let (Some(p), false) = (&proxy, https) {
        if let Some(auth) = p.basic_auth() {
            req = req.header(http::header::PROXY_AUTHORIZATION, auth.clone());
        }
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("{method} {shown}: {e}"))?;

    let tcp = match &proxy {
        None => TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("{method} {shown}: cannot connect: {e}"))?,
        Some(p) => {
            let mut tcp = connect_proxy(p)
                .await
                .map_err(|e| format!("{method} {shown}: {e}"))?;
            if https {
                tunnel(&mut tcp, p, &authority_with_port(&host, port))
                    .await
                    .map_err(|e| format!("{method} {shown}: {e}"))?;
            }
            tcp
        }
    };
    let _ = tcp.set_nodelay(true);
    let resp = if https {
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{method} {shown}: bad TLS server name: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{method} {shown}: TLS handshake failed: {e}"))?;
        exchange(TokioIo::new(stream), req).await
    } else {
        exchange(TokioIo::new(tcp), req).await
    }
    .map_err(|e| format!("{method} {shown}: {e}"))?;
    Ok(resp)
}

fn authority_with_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The proxy named by an `*_PROXY` variable, shown without credentials.
fn proxy_shown(p: &Intercept) -> String {
    format!("proxy {}", redact_url(&p.uri().to_string()))
}

async fn connect_proxy(p: &Intercept) -> Result<TcpStream, String> {
    let uri = p.uri();
    if uri.scheme_str() == Some("https") {
        return Err(format!(
            "{}: https:// proxies are not supported; use an http:// proxy URL (https \
             requests still go through it encrypted, in a CONNECT tunnel)",
            proxy_shown(p)
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("{}: no host", proxy_shown(p)))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", proxy_shown(p)))
}

/// `CONNECT host:port` through the proxy; the stream is then the tunnel.
async fn tunnel(tcp: &mut TcpStream, p: &Intercept, target: &str) -> Result<(), String> {
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = p.basic_auth().and_then(|a| a.to_str().ok()) {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    let io = |e: std::io::Error| format!("{}: CONNECT failed: {e}", proxy_shown(p));
    tcp.write_all(head.as_bytes()).await.map_err(io)?;
    // the answer's head; nothing follows it before our TLS ClientHello
    let mut buf = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
            return Err(format!("{}: CONNECT answer too long", proxy_shown(p)));
        }
        if tcp.read(&mut byte).await.map_err(io)? == 0 {
            return Err(format!(
                "{}: closed the connection during CONNECT",
                proxy_shown(p)
            ));
        }
        buf.push(byte[0]);
    }
    let mut hdrs = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut hdrs);
    match resp.parse(&buf) {
        Ok(httparse::Status::Complete(_)) if resp.code == Some(200) => Ok(()),
        Ok(httparse::Status::Complete(_)) => Err(format!(
            "{} refused CONNECT {target}: {} {}",
            proxy_shown(p),
            resp.code.unwrap_or_default(),
            resp.reason.unwrap_or_default()
        )),
        _ => Err(format!("{}: not an HTTP answer to CONNECT", proxy_shown(p))),
    }
}

async fn exchange<T>(io: T, req: http::Request<Full<Bytes>>) -> Result<HttpResponse, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let conn_task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?
        .to_bytes();
    conn_task.abort();
    Ok(HttpResponse {
        status,
        body,
        location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_redaction() {
        assert_eq!(
            with_query(
                "http://h/api?x=1",
                &[("query".into(), "sum(a{b=\"c\"}) / 2".into())]
            ),
            "http://h/api?x=1&query=sum%28a%7Bb%3D%22c%22%7D%29+%2F+2"
        );
        assert_eq!(redact_url("https://u:p@h:1/x"), "https://***@h:1/x");
        assert_eq!(redact_url("http://h/x@y"), "http://h/x@y");
    }

    #[test]
    fn redirect_locations_resolve_like_browsers() {
        let base = "https://u:p@h:8443/api/v1/query?x=1";
        assert_eq!(
            resolve_location(base, "http://other/x").as_deref(),
            Some("http://other/x")
        );
        assert_eq!(
            resolve_location(base, "//other:1/y").as_deref(),
            Some("https://other:1/y")
        );
        assert_eq!(
            resolve_location(base, "/root?q=2").as_deref(),
            Some("https://u:p@h:8443/root?q=2")
        );
        assert_eq!(
            resolve_location(base, "query_range").as_deref(),
            Some("https://u:p@h:8443/api/v1/query_range")
        );
        assert_eq!(host_of(base).as_deref(), Some("h:8443"));
        assert_eq!(host_of("http://H:1/").as_deref(), Some("h:1"));
    }

    #[test]
    fn loopback_hosts_are_never_proxied() {
        for h in ["localhost", "LocalHost", "127.0.0.1", "127.9.9.9", "::1"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "prometheus.istio-system",
            "10.0.0.1",
            "::2",
            "localhost.example",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
