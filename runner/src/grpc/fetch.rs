//! `protoURL`, `dataURL`, `metadataURL`: fetched by the runner itself (Iter8's chart ran
//! curl in a shell; our image has neither). http and https (Web PKI roots).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::GrpcError;

/// Largest document fetched (a .proto, a JSON payload).
pub const MAX_FETCH_BYTES: usize = 16 * 1024 * 1024;

/// GET `url` and return the body; any status other than 2xx is an error.
pub async fn fetch(url: &str, timeout: Duration) -> Result<Bytes, GrpcError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| GrpcError::Fetch(format!("invalid URL {url:?}: {e}")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(GrpcError::Fetch(format!(
                "invalid URL {url:?}: use http:// or https://"
            )))
        }
    }
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let fut = async {
        let resp = client
            .get(uri)
            .await
            .map_err(|e| GrpcError::Fetch(format!("GET {url}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(GrpcError::Fetch(format!("GET {url}: HTTP status {status}")));
        }
        let body = Limited::new(resp.into_body(), MAX_FETCH_BYTES)
            .collect()
            .await
            .map_err(|e| GrpcError::Fetch(format!("GET {url}: reading the body: {e}")))?;
        Ok(body.to_bytes())
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| {
            Err(GrpcError::Fetch(format!(
                "GET {url}: no answer within {timeout:?}"
            )))
        })
}
