//! The HTTP calls of `custommetrics` and `notify` as users deploy them: a server whose
//! certificate comes from a private CA (`caFile`, `insecureSkipVerify`), an egress proxy
//! (`HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`, through the real `iter8-runner` binary so
//! the environment is the process's own), and redirects.
//!
//! The CONNECT proxy here is a test imitation (tests/README.md): it records each request
//! head, then relays bytes to 127.0.0.1 at the requested port, whatever the host name, so
//! names such as `hooks.test` need no DNS: only a proxied call can reach them.
#![allow(clippy::unwrap_used)] // test support helpers outside #[test] fns

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use iter8::tasks::httpcall::{self, CallOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A CA of our own and server certificates it signs.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "iter8 test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A rustls server configuration with a certificate for `names`, signed by this CA.
    fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

type Route = Arc<dyn Fn(&Seen, SocketAddr) -> hyper::Response<Full<Bytes>> + Send + Sync>;

/// An HTTP(S) server on 127.0.0.1 that records requests and answers through `route`.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(tls: Option<Arc<rustls::ServerConfig>>, route: Route) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let seen2 = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (route, seen, tls) = (route.clone(), seen2.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (route, seen) = (route.clone(), seen.clone());
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().to_string();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                                .collect();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let s = Seen {
                                method,
                                path,
                                headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            };
                            let resp = route(&s, addr);
                            seen.lock().unwrap().push(s);
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(config) => {
                            let Ok(stream) =
                                tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                            else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        Server { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn reply(status: u16, body: &str) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn redirect(status: u16, location: &str) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("location", location)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Test imitation of an egress proxy (CONNECT tunnels and absolute-form http requests):
/// records each request line with its Proxy-Authorization, relays to 127.0.0.1:<port>.
struct Proxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let log2 = log.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let log = log2.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let line = text.lines().next().unwrap_or_default().to_string();
                    let auth = text
                        .lines()
                        .find_map(|l| l.strip_prefix("proxy-authorization: "))
                        .or_else(|| {
                            text.lines()
                                .find_map(|l| l.strip_prefix("Proxy-Authorization: "))
                        })
                        .unwrap_or("-")
                        .to_string();
                    log.lock().unwrap().push(format!("{line} | {auth}"));
                    let target = line.split_whitespace().nth(1).unwrap_or_default();
                    let authority = target
                        .strip_prefix("http://")
                        .map(|r| r.split('/').next().unwrap_or_default())
                        .unwrap_or(target);
                    let port: u16 = authority.rsplit(':').next().unwrap().parse().unwrap();
                    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    if line.starts_with("CONNECT ") {
                        let _ = client
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await;
                    } else {
                        let _ = upstream.write_all(&head).await;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        Proxy { addr, log }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn opts() -> CallOptions {
    CallOptions::new(Duration::from_secs(10))
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_file_only() {
    let ca = TestCa::new();
    let server = Server::start(
        Some(ca.server_config(&["localhost"])),
        Arc::new(|_, _| reply(200, "{\"ok\":1}")),
    )
    .await;
    let url = format!("https://localhost:{}/q", server.addr.port());

    let err = httpcall::send_with("GET", &url, &[], None, &opts())
        .await
        .unwrap_err();
    assert!(
        err.contains("TLS handshake failed") && err.contains("UnknownIssuer"),
        "{err}"
    );

    let with_ca = CallOptions {
        ca_pem: Some(ca.pem.clone().into_bytes()),
        ..opts()
    };
    let resp = httpcall::send_with("GET", &url, &[], None, &with_ca)
        .await
        .unwrap();
    assert_eq!((resp.status, &resp.body[..]), (200, &b"{\"ok\":1}"[..]));

    // The CA vouches for localhost only: another name still fails, even with caFile.
    let other = format!("https://127.0.0.1:{}/q", server.addr.port());
    let err = httpcall::send_with("GET", &other, &[], None, &with_ca)
        .await
        .unwrap_err();
    assert!(err.contains("TLS handshake failed"), "{err}");

    // insecureSkipVerify: any certificate.
    let insecure = CallOptions {
        insecure_skip_verify: true,
        ..opts()
    };
    let resp = httpcall::send_with("GET", &other, &[], None, &insecure)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[test]
fn ca_file_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let t = Duration::from_secs(1);
    let missing = dir.path().join("missing.pem");
    let e = CallOptions::for_task(t, missing.to_str(), None).unwrap_err();
    assert!(
        e.to_string().contains("caFile") && e.to_string().contains("cannot read"),
        "{e}"
    );
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let e = CallOptions::for_task(t, junk.to_str(), None).unwrap_err();
    assert!(
        e.to_string().contains("caFile") && e.to_string().contains("no PEM certificate"),
        "{e}"
    );
    let ok = CallOptions::for_task(t, None, Some(true)).unwrap();
    assert!(ok.insecure_skip_verify && ok.ca_pem.is_none());
}

#[tokio::test]
async fn redirects_are_followed_as_go_follows_them() {
    let server = Server::start(
        None,
        Arc::new(|s: &Seen, addr: SocketAddr| match s.path.as_str() {
            "/a" => redirect(302, "/b"),
            "/b" => reply(200, "b"),
            "/post303" => redirect(303, "got"),
            "/keep307" => redirect(307, "/kept"),
            "/loop" => redirect(302, "/loop"),
            // same server, another host name: credentials stay behind
            "/cross" => redirect(301, &format!("http://localhost:{}/landed", addr.port())),
            _ => reply(200, "end"),
        }),
    )
    .await;
    let base = format!("http://127.0.0.1:{}", server.addr.port());
    let auth = [("Authorization".to_string(), "Bearer s3cret".to_string())];

    let resp = httpcall::send_with("GET", &format!("{base}/a"), &auth, None, &opts())
        .await
        .unwrap();
    assert_eq!((resp.status, &resp.body[..]), (200, &b"b"[..]));

    let body = Some(b"{\"x\":1}".to_vec());
    httpcall::send_with(
        "POST",
        &format!("{base}/post303"),
        &auth,
        body.clone(),
        &opts(),
    )
    .await
    .unwrap();
    httpcall::send_with("POST", &format!("{base}/keep307"), &auth, body, &opts())
        .await
        .unwrap();
    httpcall::send_with("GET", &format!("{base}/cross"), &auth, None, &opts())
        .await
        .unwrap();
    let err = httpcall::send_with("GET", &format!("{base}/loop"), &[], None, &opts())
        .await
        .unwrap_err();
    assert!(err.contains("stopped after 10 redirects"), "{err}");

    let seen = server.seen();
    let find = |p: &str| seen.iter().find(|s| s.path == p).cloned().unwrap();
    assert_eq!(
        find("/b").headers.get("authorization").unwrap(),
        "Bearer s3cret"
    );
    // 303: POST becomes GET without body
    let got = find("/got");
    assert_eq!((got.method.as_str(), got.body.as_str()), ("GET", ""));
    // 307: the same request again
    let kept = find("/kept");
    assert_eq!(
        (kept.method.as_str(), kept.body.as_str()),
        ("POST", "{\"x\":1}")
    );
    assert_eq!(kept.headers.get("authorization").unwrap(), "Bearer s3cret");
    // another host: no Authorization
    let landed = find("/landed");
    assert!(!landed.headers.contains_key("authorization"), "{landed:?}");
    // 1 + 10 redirects, then it stops
    assert_eq!(seen.iter().filter(|s| s.path == "/loop").count(), 11);
}

#[tokio::test]
async fn custommetrics_and_notify_go_through_the_proxy_with_ca_file() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    // https only under names the CA vouches for and no DNS knows: only the proxy gets there
    let tls_server = Server::start(
        Some(ca.server_config(&["prom.test", "hooks.test"])),
        Arc::new(|s: &Seen, _| match s.path.as_str() {
            p if p.starts_with("/api/v1/query") => reply(200, "{\"data\":{\"value\":7}}"),
            _ => reply(200, "{}"),
        }),
    )
    .await;
    let plain_server = Server::start(None, Arc::new(|_, _| reply(204, ""))).await;
    let proxy = Proxy::start().await;
    let (tls_port, plain_port) = (tls_server.addr.port(), plain_server.addr.port());
    let experiment = format!(
        r#"spec:
- task: custommetrics
  with:
    caFile: {ca}
    failOnError: true
    templates:
      prom: |
        url: https://prom.test:{tls_port}/api/v1/query
        metrics: [{{name: value, type: gauge, jqExpression: .data.value}}]
- task: notify
  with:
    url: https://hooks.test:{tls_port}/hook
    method: POST
    payloadTemplate: '{{"numLoops": {{{{ .numLoops }}}}}}'
    caFile: {ca}
- task: notify
  with:
    url: http://plain.test:{plain_port}/plain
    method: GET
- task: notify
  with:
    url: http://skipped.test:{plain_port}/never
    softFailure: true
"#,
        ca = ca_file.display()
    );
    std::fs::write(dir.path().join("e.yaml"), experiment).unwrap();
    let proxy_url = format!("http://alice:pw@{}", proxy.addr);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir.path())
        .args(["-f", "e.yaml", "-o", "r.yaml", "--log-format", "human"])
        .env("HTTPS_PROXY", &proxy_url)
        .env("HTTP_PROXY", &proxy_url)
        .env("NO_PROXY", "skipped.test,.internal")
        .env_remove("ALL_PROXY")
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let result = std::fs::read_to_string(dir.path().join("r.yaml")).unwrap();
    assert!(result.contains("prom/value"), "{result}");

    let basic = "Basic YWxpY2U6cHc="; // alice:pw
    let log = proxy.log();
    assert!(
        log.contains(&format!("CONNECT prom.test:{tls_port} HTTP/1.1 | {basic}")),
        "{log:?}"
    );
    assert!(
        log.contains(&format!("CONNECT hooks.test:{tls_port} HTTP/1.1 | {basic}")),
        "{log:?}"
    );
    assert!(
        log.contains(&format!(
            "GET http://plain.test:{plain_port}/plain HTTP/1.1 | {basic}"
        )),
        "{log:?}"
    );
    // NO_PROXY: not proxied (and so not reachable: the name is unknown)
    assert!(!log.iter().any(|l| l.contains("skipped.test")), "{log:?}");
    assert!(stderr.contains("skipped.test"), "{stderr}");

    let seen = tls_server.seen();
    let hook = seen.iter().find(|s| s.path == "/hook").unwrap();
    assert_eq!(hook.body, "{\"numLoops\": 1}");
    assert_eq!(
        hook.headers.get("host").unwrap(),
        &format!("hooks.test:{tls_port}")
    );
    // the proxy's credentials are for the proxy only
    assert!(!hook.headers.contains_key("proxy-authorization"));
    assert_eq!(
        plain_server.seen()[0].path,
        "http://plain.test:".to_string() + &plain_port.to_string() + "/plain"
    );
}
