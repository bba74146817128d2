//! The kubelet's log endpoint over TLS: `GET /containerLogs/{ns}/{pod}/{container}`, only
//! for clients whose certificate the `--client-ca` signed (the API server's kubelet client
//! certificate), so `kubectl logs` reaches it through the real API server.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::SinkExt;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::logs::{self, LogOptions};
use super::NodeAgentError;

type Body = BoxBody<Bytes, Infallible>;

/// Reads PEM certificates.
pub fn read_certs(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, NodeAgentError> {
    let pem = std::fs::read(path).map_err(|e| NodeAgentError::io(path, e))?;
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NodeAgentError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(NodeAgentError::Tls(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The TLS configuration: our serving certificate, clients verified against `client_ca`.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, NodeAgentError> {
    let certs = read_certs(cert)?;
    let key_pem = std::fs::read(key).map_err(|e| NodeAgentError::io(key, e))?;
    let key_der = {
        use rustls::pki_types::pem::{self, PemObject};
        rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            pem::Error::NoItemsFound => {
                NodeAgentError::Tls(format!("{}: no PEM private key in it", key.display()))
            }
            e => NodeAgentError::Tls(format!("{}: {e}", key.display())),
        })?
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(client_ca)? {
        roots
            .add(c)
            .map_err(|e| NodeAgentError::Tls(format!("{}: {e}", client_ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| NodeAgentError::Tls(format!("client CA: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| NodeAgentError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key_der)
        .map_err(|e| NodeAgentError::Tls(format!("{}: {e}", cert.display())))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Serves the log endpoint on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state_dir: PathBuf) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let state_dir = state_dir.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return; // no or an untrusted client certificate
            };
            let svc = hyper::service::service_fn(move |req| {
                let state_dir = state_dir.clone();
                async move { Ok::<_, Infallible>(handle(req, &state_dir).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(msg.into())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The directory of pod `ns/pod` under `state_dir` (any uid), if the agent runs it.
fn find_pod_dir(state_dir: &Path, ns: &str, pod: &str) -> Option<PathBuf> {
    let prefix = format!("{ns}_{pod}_");
    std::fs::read_dir(state_dir.join("pods"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

async fn handle<B>(req: Request<B>, state_dir: &Path) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["containerLogs", ns, pod, container] = parts.as_slice() else {
        return text(StatusCode::NOT_FOUND, format!("{path}: not served by this node agent (GET /containerLogs/NAMESPACE/POD/CONTAINER is)"));
    };
    if req.method() != http::Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET");
    }
    let opts = match LogOptions::from_query(req.uri().query().unwrap_or("")) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let Some(dir) = find_pod_dir(state_dir, ns, pod) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod \"{ns}/{pod}\" is not on this node"),
        );
    };
    let file = match logs::select_log(&dir, container, opts.previous) {
        Ok(f) => f,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
    tokio::spawn(stream_log(file, opts, tx));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(rx)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Sends a log file's records (then, with `follow`, new ones until the run ends).
async fn stream_log(
    file: PathBuf,
    opts: LogOptions,
    mut tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
) {
    let mut offset = 0usize;
    let mut left = opts.limit_bytes.unwrap_or(usize::MAX);
    let mut first = true;
    loop {
        let done = logs::is_done(&file);
        let bytes = match tokio::fs::read(&file).await {
            Ok(b) => b,
            Err(_) => return, // pod deleted
        };
        let complete = bytes
            .get(offset..)
            .and_then(|b| b.iter().rposition(|c| *c == b'\n'))
            .map(|i| offset + i + 1)
            .unwrap_or(offset);
        let records = logs::parse(&bytes[offset..complete]);
        offset = complete;
        let batch = if first {
            opts.tail(&records)
        } else {
            &records[..]
        };
        first = false;
        let mut out = opts.render(batch);
        if out.len() > left {
            out.truncate(left);
        }
        left -= out.len();
        if !out.is_empty() && tx.send(Ok(Frame::data(Bytes::from(out)))).await.is_err() {
            return;
        }
        if !opts.follow || left == 0 || (done && records.is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    struct Pki {
        dir: tempfile::TempDir,
        client: (String, String),
        stranger: (String, String),
    }

    /// A CA, a serving certificate for 127.0.0.1, a client certificate it signed, and a
    /// client certificate of another CA.
    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, cn);
            let k = KeyPair::generate().unwrap();
            let c = p.self_signed(&k).unwrap();
            (p, k, c)
        };
        let (ca_p, ca_k, ca_c) = ca("test-ca");
        let issuer = Issuer::from_params(&ca_p, &ca_k);
        let leaf = |issuer: &Issuer<'_, &KeyPair>, sans: Vec<String>, cn: &str| {
            let mut p = CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            let k = KeyPair::generate().unwrap();
            let c = p.signed_by(&k, issuer).unwrap();
            (c.pem(), k.serialize_pem())
        };
        let (srv_c, srv_k) = leaf(&issuer, vec!["127.0.0.1".into()], "node");
        let client = leaf(&issuer, vec![], "kube-apiserver-kubelet-client");
        let (o_p, o_k, _) = ca("other-ca");
        let stranger = leaf(&Issuer::from_params(&o_p, &o_k), vec![], "stranger");
        std::fs::write(dir.path().join("ca.crt"), ca_c.pem()).unwrap();
        std::fs::write(dir.path().join("srv.crt"), srv_c).unwrap();
        std::fs::write(dir.path().join("srv.key"), srv_k).unwrap();
        Pki {
            dir,
            client,
            stranger,
        }
    }

    async fn get(
        port: u16,
        ca: &Path,
        client: &(String, String),
        path: &str,
    ) -> Result<(u16, String), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in read_certs(ca).unwrap() {
            roots.add(c).unwrap();
        }
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(client.0.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(client.1.as_bytes()).unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "127.0.0.1")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        ))
    }

    #[tokio::test]
    async fn logs_are_served_to_clients_of_the_client_ca_only() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let p = pki();
        let d = p.dir.path();
        let tls = tls_config(&d.join("srv.crt"), &d.join("srv.key"), &d.join("ca.crt")).unwrap();
        let state = d.join("state");
        let pod = logs::pod_dir(&state, "ns", "web", "uid-1");
        let log_file = logs::log_path(&pod, "main", 0);
        let w = logs::LogWriter::create(&log_file).unwrap();
        for l in ["one", "two", "three"] {
            w.record("stdout", l.as_bytes(), false);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve(listener, tls, state));
        let ca = d.join("ca.crt");

        let (code, body) = get(
            port,
            &ca,
            &p.client,
            "/containerLogs/ns/web/main?tailLines=2",
        )
        .await
        .unwrap();
        assert_eq!((code, body.as_str()), (200, "two\nthree\n"));
        let (code, body) = get(port, &ca, &p.client, "/containerLogs/ns/other/main")
            .await
            .unwrap();
        assert_eq!(code, 404, "{body}");
        assert!(body.contains("ns/other"), "{body}");

        // follow: what is written later arrives, and the stream ends when the run ends
        let follow = tokio::spawn({
            let (ca, client) = (ca.clone(), p.client.clone());
            async move { get(port, &ca, &client, "/containerLogs/ns/web/main?follow=true").await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.record("stderr", b"four", false);
        logs::mark_done(&log_file);
        let (code, body) = tokio::time::timeout(Duration::from_secs(10), follow)
            .await
            .expect("follow ends with the run")
            .unwrap()
            .unwrap();
        assert_eq!((code, body.as_str()), (200, "one\ntwo\nthree\nfour\n"));

        // a client certificate of another CA gets no answer
        let denied = get(port, &ca, &p.stranger, "/containerLogs/ns/web/main").await;
        assert!(denied.is_err(), "{denied:?}");
    }
}
