//! `protoURL`, `dataURL`, `metadataURL`: fetched by the runner itself (Iter8's chart ran
//! curl in a shell; our image has neither), through the same one-off HTTP(S) client that
//! custommetrics and notify use ([`crate::tasks::httpcall`]).

use std::time::Duration;

use bytes::Bytes;

use super::GrpcError;
use crate::tasks::httpcall;

/// GET `url` and return the body; any status other than 2xx is an error.
pub async fn fetch(url: &str, timeout: Duration) -> Result<Bytes, GrpcError> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("http") | Some("https") => {}
        _ => {
            return Err(GrpcError::Fetch(format!(
                "invalid URL {url:?}: use http:// or https://"
            )))
        }
    }
    let resp = httpcall::send("GET", url, &[], None, timeout)
        .await
        .map_err(GrpcError::Fetch)?;
    if !(200..300).contains(&resp.status) {
        return Err(GrpcError::Fetch(format!(
            "GET {}: HTTP status {}",
            httpcall::redact_url(url),
            resp.status
        )));
    }
    Ok(resp.body)
}
