//! One-off HTTP(S) calls for `custommetrics` (provider queries, template URLs) and `notify`:
//! hyper's HTTP/1.1 client over TCP or rustls (Mozilla roots), a bounded time and body size.
//! Errors never include header values (they may carry credentials).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// Responses larger than this are cut off with an error (a metrics query answer is small).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// A response: status and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Bytes,
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

/// Send one request and read the whole response. `Err` is a readable reason (connection
/// refused, timeout, bad URL...), without header values.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    match tokio::time::timeout(timeout, send_inner(method, url, headers, body)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{method} {}: no answer within {}",
            redact_url(url),
            crate::model::duration::format_duration(timeout)
        )),
    }
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

async fn send_inner(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
) -> Result<HttpResponse, String> {
    let shown = redact_url(url);
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL {shown:?}: {e}"))?;
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
        .to_ascii_uppercase()
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

    let mut req = http::Request::builder()
        .method(method.clone())
        .uri(path)
        .header(http::header::HOST, authority);
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("bad header name {k:?}"))?;
        let value = http::HeaderValue::from_str(v)
            .map_err(|_| format!("header {k:?}: value is not valid in an HTTP header"))?;
        req = req.header(name, value);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("{method} {shown}: {e}"))?;

    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("{method} {shown}: cannot connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let resp = if https {
        let tls = tls_connector().map_err(|e| format!("{method} {shown}: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{method} {shown}: bad TLS server name: {e}"))?;
        let stream = tls
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
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?
        .to_bytes();
    conn_task.abort();
    Ok(HttpResponse { status, body })
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
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
}
