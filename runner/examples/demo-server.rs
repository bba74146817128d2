//! A tiny HTTP service for the demo and the examples, on 127.0.0.1 only.
//!
//! `cargo run --example demo-server -- [PORT]` (default 8080). Routes:
//! - `/get`, `/`: 200 after ~2 ms
//! - `/v1`: 200 after ~5 ms (version 1 of an A/B test)
//! - `/v2`: 200 after ~2 ms (version 2: faster)
//! - `/flaky`: every 10th request returns 500
//! - `/error`: always 500
//! - anything else: 404

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn handle(
    req: Request<Incoming>,
    flaky: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, delay_ms, body) = match req.uri().path() {
        "/" | "/get" => (StatusCode::OK, 2, "hello from the demo service\n"),
        "/v1" => (StatusCode::OK, 5, "version 1\n"),
        "/v2" => (StatusCode::OK, 2, "version 2\n"),
        "/flaky" => {
            let n = flaky.fetch_add(1, Ordering::Relaxed) + 1;
            if n % 10 == 0 {
                (StatusCode::INTERNAL_SERVER_ERROR, 1, "flaky failure\n")
            } else {
                (StatusCode::OK, 1, "ok\n")
            }
        }
        "/error" => (StatusCode::INTERNAL_SERVER_ERROR, 1, "always failing\n"),
        _ => (StatusCode::NOT_FOUND, 0, "not found\n"),
    };
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    Ok(resp)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p
            .parse()
            .map_err(|_| anyhow::anyhow!("usage: demo-server [PORT]; {p:?} is not a port"))?,
        None => 8080,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    println!("demo-server listening on http://{}", listener.local_addr()?);
    let flaky = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let flaky = flaky.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, flaky.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
