//! The grpc task against an in-process tonic server on 127.0.0.1 (port 0): a greeter
//! (`SayHello`), a method that fails with the status code it is asked for (`Fail`), one that
//! sleeps (`Sleep`), optionally with server reflection (v1 or v1alpha only).

#![allow(clippy::unwrap_used)] // test support: a failed setup should panic

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use iter8::model::Insights;
use iter8::tasks::grpc::GrpcTask;
use iter8::tasks::{Progress, TaskContext, TaskError};
use tonic::body::Body;
use tonic::server::{NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

const COMMON_PROTO: &str = r#"
syntax = "proto3";
package common;
message FailRequest { int32 code = 1; }
message SleepRequest { int64 micros = 1; }
"#;

const GREETER_PROTO: &str = r#"
syntax = "proto3";
package helloworld;
import "common/types.proto";
service Greeter {
  rpc SayHello (HelloRequest) returns (HelloReply);
  rpc Fail (common.FailRequest) returns (HelloReply);
  rpc Sleep (common.SleepRequest) returns (HelloReply);
}
message HelloRequest { string name = 1; }
message HelloReply { string message = 1; }
"#;

/// The same service in one file (for protoText, which has no directory for imports).
const GREETER_INLINE: &str = r#"
syntax = "proto3";
package helloworld;
service Greeter {
  rpc SayHello (HelloRequest) returns (HelloReply);
  rpc Fail (FailRequest) returns (HelloReply);
  rpc Sleep (SleepRequest) returns (HelloReply);
}
message HelloRequest { string name = 1; }
message HelloReply { string message = 1; }
message FailRequest { int32 code = 1; }
message SleepRequest { int64 micros = 1; }
"#;

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FailRequest {
    #[prost(int32, tag = "1")]
    code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SleepRequest {
    #[prost(int64, tag = "1")]
    micros: i64,
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    calls: AtomicU64,
    names: Mutex<Vec<String>>,
    users: Mutex<Vec<String>>,
    peers: Mutex<BTreeSet<SocketAddr>>,
}

#[derive(Clone)]
struct Greeter(Arc<Seen>);

impl NamedService for Greeter {
    const NAME: &'static str = "helloworld.Greeter";
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One unary method of the test server: a concrete service type per method (as tonic's
/// generated code does), each delegating to a `Greeter` method.
macro_rules! unary_method {
    ($svc:ident, $req:ty, $handler:ident) => {
        struct $svc(Greeter);
        impl UnaryService<$req> for $svc {
            type Response = HelloReply;
            type Future = BoxFut<Result<Response<HelloReply>, Status>>;
            fn call(&mut self, request: Request<$req>) -> Self::Future {
                let g = self.0.clone();
                Box::pin(async move { g.$handler(request).await })
            }
        }
    };
}

unary_method!(SayHelloSvc, HelloRequest, say_hello);
unary_method!(FailSvc, FailRequest, fail);
unary_method!(SleepSvc, SleepRequest, sleep);

impl Greeter {
    fn note<T>(&self, req: &Request<T>) {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(u) = req.metadata().get("x-user").and_then(|v| v.to_str().ok()) {
            self.0.users.lock().unwrap().push(u.to_string());
        }
        if let Some(peer) = req.remote_addr() {
            self.0.peers.lock().unwrap().insert(peer);
        }
    }
}

impl tonic::codegen::Service<http::Request<Body>> for Greeter {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFut<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let me = self.clone();
        let path = req.uri().path().to_string();
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(match path.as_str() {
                "/helloworld.Greeter/SayHello" => grpc.unary(SayHelloSvc(me), req).await,
                "/helloworld.Greeter/Fail" => {
                    let codec = tonic_prost::ProstCodec::default();
                    tonic::server::Grpc::new(codec)
                        .unary(FailSvc(me), req)
                        .await
                }
                "/helloworld.Greeter/Sleep" => {
                    let codec = tonic_prost::ProstCodec::default();
                    tonic::server::Grpc::new(codec)
                        .unary(SleepSvc(me), req)
                        .await
                }
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

impl Greeter {
    async fn say_hello(&self, r: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        self.note(&r);
        let name = r.into_inner().name;
        self.0.names.lock().unwrap().push(name.clone());
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}"),
        }))
    }

    async fn fail(&self, r: Request<FailRequest>) -> Result<Response<HelloReply>, Status> {
        self.note(&r);
        match r.into_inner().code {
            0 => Ok(Response::new(HelloReply {
                message: "fine".into(),
            })),
            code => Err(Status::new(tonic::Code::from_i32(code), "failed on demand")),
        }
    }

    async fn sleep(&self, r: Request<SleepRequest>) -> Result<Response<HelloReply>, Status> {
        self.note(&r);
        let micros = r.into_inner().micros.max(0) as u64;
        tokio::time::sleep(Duration::from_micros(micros)).await;
        Ok(Response::new(HelloReply {
            message: "slept".into(),
        }))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Reflection {
    None,
    Both,
    V1AlphaOnly,
}

/// Write the two .proto files (one imports the other) into `dir`.
fn write_protos(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("common")).unwrap();
    std::fs::write(dir.join("common/types.proto"), COMMON_PROTO).unwrap();
    let main = dir.join("helloworld.proto");
    std::fs::write(&main, GREETER_PROTO).unwrap();
    main
}

/// A compiled FileDescriptorSet of the greeter (with imports).
fn protoset_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let main = write_protos(dir.path());
    let pool =
        iter8::grpc::descriptor::compile_proto_file(&main, &[dir.path().to_path_buf()]).unwrap();
    iter8::grpc::descriptor::encode_pool(&pool)
}

struct Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

impl Server {
    fn calls(&self) -> u64 {
        self.seen.calls.load(Ordering::SeqCst)
    }
}

async fn start(reflection: Reflection) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let greeter = Greeter(seen.clone());
    let fds =
        <prost_types::FileDescriptorSet as prost::Message>::decode(protoset_bytes().as_slice())
            .unwrap();
    let mut router = tonic::transport::Server::builder().add_service(greeter);
    if reflection == Reflection::Both {
        let v1 = tonic_reflection::server::Builder::configure()
            .register_file_descriptor_set(fds.clone())
            .build_v1()
            .unwrap();
        router = router.add_service(v1);
    }
    if reflection != Reflection::None {
        let v1alpha = tonic_reflection::server::Builder::configure()
            .register_file_descriptor_set(fds)
            .build_v1alpha()
            .unwrap();
        router = router.add_service(v1alpha);
    }
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    Server { addr, seen }
}

fn task(yaml: &str) -> GrpcTask {
    let t: GrpcTask = serde_yaml::from_str(yaml).unwrap();
    t.validate().unwrap();
    t
}

async fn run(t: &GrpcTask) -> Result<Insights, TaskError> {
    let mut insights = Insights::default();
    let progress = Progress::default();
    let mut ctx = TaskContext {
        index: 0,
        experiment_start: chrono::Utc::now(),
        namespace: None,
        insights: &mut insights,
        progress: &progress,
        kube: None,
    };
    t.run(&mut ctx).await?;
    assert_eq!(
        progress.done.load(Ordering::Relaxed),
        insights
            .latest(
                insights.num_versions - 1,
                &format!("{}/request-count", t.metric_prefixes().last().unwrap())
            )
            .unwrap() as u64,
        "progress counts the measured calls of the last phase"
    );
    Ok(insights)
}

fn metric(i: &Insights, v: usize, name: &str) -> f64 {
    i.latest(v, name)
        .unwrap_or_else(|| panic!("metric {name} of version {v} missing: {i:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_file_with_import_object_data_metadata_exact_counts() {
    let s = start(Reflection::None).await;
    let dir = tempfile::tempdir().unwrap();
    let main = write_protos(dir.path());
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\nproto: {}\ndata: {{name: alice}}\nmetadata: {{x-user: bob}}\ntotal: 37\nconcurrency: 5\n",
        s.addr,
        main.display()
    ));
    let i = run(&t).await.unwrap();
    assert_eq!(s.calls(), 37);
    assert_eq!(metric(&i, 0, "grpc/request-count"), 37.0);
    assert_eq!(metric(&i, 0, "grpc/error-count"), 0.0);
    assert_eq!(metric(&i, 0, "grpc/error-rate"), 0.0);
    assert_eq!(metric(&i, 0, "grpc/status-OK"), 37.0);
    let names = s.seen.names.lock().unwrap().clone();
    assert!(names.iter().all(|n| n == "alice") && names.len() == 37);
    let users = s.seen.users.lock().unwrap().clone();
    assert_eq!(users.len(), 37);
    assert!(users.iter().all(|u| u == "bob"));
    let h = &i.histogram_metric_values[0]["grpc/latency"];
    assert_eq!(h.count, 37);
    assert_eq!(h.buckets.iter().map(|b| b.count).sum::<u64>(), 37);
    assert!(i.metrics_info.contains_key("grpc/latency-p99.9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protoset_with_array_data_round_robin() {
    let s = start(Reflection::None).await;
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("greeter.protoset");
    std::fs::write(&set, protoset_bytes()).unwrap();
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter.SayHello\nprotoset: {}\ndata: [{{name: a}}, {{name: b}}, {{name: c}}]\ntotal: 30\nconcurrency: 4\n",
        s.addr,
        set.display()
    ));
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/request-count"), 30.0);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for n in s.seen.names.lock().unwrap().iter() {
        *counts.entry(n.clone()).or_default() += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([("a".into(), 10), ("b".into(), 10), ("c".into(), 10)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha() {
    for mode in [Reflection::Both, Reflection::V1AlphaOnly] {
        let s = start(mode).await;
        let t = task(&format!(
            "host: {}\ncall: helloworld.Greeter/SayHello\ndata: {{name: refl}}\ntotal: 12\nconcurrency: 3\n",
            s.addr
        ));
        let i = run(&t).await.unwrap();
        assert_eq!(metric(&i, 0, "grpc/request-count"), 12.0);
        assert_eq!(metric(&i, 0, "grpc/status-OK"), 12.0);
        assert_eq!(s.calls(), 12);
        // Unknown field and method found through reflection, before load.
        let t = task(&format!(
            "host: {}\ncall: helloworld.Greeter/SayHello\ndata: {{nmae: x}}\n",
            s.addr
        ));
        let e = run(&t).await.unwrap_err().to_string();
        assert!(
            e.starts_with("data.nmae: field \"nmae\" is not in message helloworld.HelloRequest"),
            "{e}"
        );
        let t = task(&format!(
            "host: {}\ncall: helloworld.Nope/SayHello\n",
            s.addr
        ));
        let e = run(&t).await.unwrap_err().to_string();
        assert!(
            e.starts_with("call: service \"helloworld.Nope\" not found"),
            "{e}"
        );
        assert!(e.contains("helloworld.Greeter"), "{e}");
        assert_eq!(s.calls(), 12, "no load after a bad description");
    }
    // No reflection on the server: a clear error.
    let s = start(Reflection::None).await;
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\n",
        s.addr
    ));
    let e = run(&t).await.unwrap_err().to_string();
    assert!(e.contains("does not offer reflection"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_text_inline() {
    let s = start(Reflection::None).await;
    let mut t: GrpcTask = serde_yaml::from_str(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\ndata: {{name: inline}}\ntotal: 8\nconcurrency: 2\n",
        s.addr
    ))
    .unwrap();
    t.proto_text = Some(GREETER_INLINE.to_string());
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/request-count"), 8.0);
    assert_eq!(s.seen.names.lock().unwrap()[0], "inline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_counted_by_status_code() {
    let s = start(Reflection::Both).await;
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/Fail\ndata: [{{code: 0}}, {{code: 14}}, {{code: 5}}]\ntotal: 30\nconcurrency: 6\n",
        s.addr
    ));
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/request-count"), 30.0);
    assert_eq!(metric(&i, 0, "grpc/error-count"), 20.0);
    assert!((metric(&i, 0, "grpc/error-rate") - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(metric(&i, 0, "grpc/status-OK"), 10.0);
    assert_eq!(metric(&i, 0, "grpc/status-UNAVAILABLE"), 10.0);
    assert_eq!(metric(&i, 0, "grpc/status-NOT_FOUND"), 10.0);
    assert_eq!(i.latest(0, "grpc/status-INTERNAL"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_exceeded() {
    let s = start(Reflection::Both).await;
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/Sleep\ndata: {{micros: 2000000}}\ntimeout: 50ms\ntotal: 4\nconcurrency: 4\n",
        s.addr
    ));
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/request-count"), 4.0);
    assert_eq!(metric(&i, 0, "grpc/status-DEADLINE_EXCEEDED"), 4.0);
    assert_eq!(metric(&i, 0, "grpc/error-count"), 4.0);
    assert_eq!(metric(&i, 0, "grpc/status-OK"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_counted_as_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut t: GrpcTask = serde_yaml::from_str(&format!(
        "host: 127.0.0.1:{port}\ncall: helloworld.Greeter/SayHello\ntotal: 6\nconcurrency: 2\nconnect-timeout: 2s\n"
    ))
    .unwrap();
    t.proto_text = Some(GREETER_INLINE.to_string());
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/request-count"), 6.0);
    assert_eq!(metric(&i, 0, "grpc/error-count"), 6.0);
    assert_eq!(metric(&i, 0, "grpc/status-UNAVAILABLE"), 6.0);
    // With reflection there is nothing to describe the service: the task fails, naming why.
    t.proto_text = None;
    let e = run(&t).await.unwrap_err().to_string();
    assert!(e.starts_with("host: cannot connect to 127.0.0.1:"), "{e}");
}

/// A front on 127.0.0.1 that hands its first connection to `first` and relays the later
/// ones to `backend`; returns its address and the number of connections it accepted.
async fn front<F, Fut>(backend: SocketAddr, first: F) -> (SocketAddr, Arc<AtomicU64>)
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = front.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut first = Some(first);
        loop {
            let Ok((mut inbound, _)) = front.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            if let Some(f) = first.take() {
                tokio::spawn(f(inbound));
                continue;
            }
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_connection_is_replaced() {
    // The first connection is closed at once: the call on it fails (UNAVAILABLE), the next
    // calls run on a new connection to the greeter.
    let s = start(Reflection::None).await;
    let (front_addr, accepted) = front(s.addr, |inbound| async move { drop(inbound) }).await;
    let mut t: GrpcTask = serde_yaml::from_str(&format!(
        "host: {front_addr}\ncall: helloworld.Greeter/SayHello\ndata: {{name: again}}\ntotal: 10\nconcurrency: 1\n"
    ))
    .unwrap();
    t.proto_text = Some(GREETER_INLINE.to_string());
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/request-count"), 10.0);
    assert_eq!(metric(&i, 0, "grpc/status-UNAVAILABLE"), 1.0);
    assert_eq!(metric(&i, 0, "grpc/status-OK"), 9.0);
    assert_eq!(s.calls(), 9);
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one reconnection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_server_did_not_process_is_retried_on_a_new_connection() {
    // The first connection is an HTTP/2 server that goes away at once (GOAWAY, last
    // stream 0: no request processed): the call is retried on a new connection to the
    // greeter, no call fails.
    let s = start(Reflection::None).await;
    let (front_addr, accepted) = front(s.addr, |inbound| async move {
        let mut conn = h2::server::handshake(inbound).await.unwrap();
        conn.abrupt_shutdown(h2::Reason::NO_ERROR);
        while let Some(Ok(_)) = conn.accept().await {}
    })
    .await;
    let mut t: GrpcTask = serde_yaml::from_str(&format!(
        "host: {front_addr}\ncall: helloworld.Greeter/SayHello\ndata: {{name: retry}}\ntotal: 10\nconcurrency: 1\n"
    ))
    .unwrap();
    t.proto_text = Some(GREETER_INLINE.to_string());
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/request-count"), 10.0);
    assert_eq!(metric(&i, 0, "grpc/error-count"), 0.0);
    assert_eq!(metric(&i, 0, "grpc/status-OK"), 10.0);
    assert_eq!(s.calls(), 10);
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one reconnection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_method_and_data_fail_before_load() {
    let s = start(Reflection::None).await;
    let dir = tempfile::tempdir().unwrap();
    let main = write_protos(dir.path());
    let base = format!("host: {}\nproto: {}\n", s.addr, main.display());
    let e = run(&task(&format!("{base}call: helloworld.Greeter/SayHi\n")))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("call: method \"SayHi\" not found in service helloworld.Greeter; it has: SayHello, Fail, Sleep"),
        "{e}"
    );
    let e = run(&task(&format!(
        "{base}call: helloworld.Greeter/SayHello\ndata: {{nmae: x}}\n"
    )))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("data.nmae: field \"nmae\" is not in message helloworld.HelloRequest"),
        "{e}"
    );
    let e = run(&task(&format!(
        "host: {}\nproto: {}/missing.proto\ncall: helloworld.Greeter/SayHello\n",
        s.addr,
        dir.path().display()
    )))
    .await
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("proto: cannot read"), "{e}");
    // An endpoint's own data is named with its path.
    let e = run(&task(&format!(
        "{base}call: helloworld.Greeter/SayHello\nendpoints:\n  v1: {{data: {{name: ok}}}}\n  v2: {{data: [{{name: ok}}, {{nmae: x}}]}}\n"
    )))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("endpoints.v2.data[1].nmae: field \"nmae\""),
        "{e}"
    );
    assert_eq!(s.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_is_not_counted() {
    let s = start(Reflection::Both).await;
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\nwarmupNumRequests: 7\ntotal: 10\nconcurrency: 3\n",
        s.addr
    ));
    let i = run(&t).await.unwrap();
    assert_eq!(s.calls(), 17);
    assert_eq!(metric(&i, 0, "grpc/request-count"), 10.0);
    assert_eq!(i.histogram_metric_values[0]["grpc/latency"].count, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_versions_when_opted_in() {
    let a = start(Reflection::Both).await;
    let b = start(Reflection::Both).await;
    let t = task(&format!(
        "call: helloworld.Greeter/SayHello\ntotal: 5\nconcurrency: 2\nendpointsAreVersions: true\nendpoints:\n  v1: {{host: \"{}\"}}\n  v2: {{host: \"{}\", total: 9, call: helloworld.Greeter.Fail, data: {{code: 14}}}}\n",
        a.addr, b.addr
    ));
    let i = run(&t).await.unwrap();
    assert_eq!(i.num_versions, 2);
    assert_eq!(i.version_names, vec!["v1", "v2"]);
    assert_eq!(a.calls(), 5);
    assert_eq!(b.calls(), 9);
    assert_eq!(metric(&i, 0, "grpc-v1/request-count"), 5.0);
    assert_eq!(metric(&i, 0, "grpc-v1/error-count"), 0.0);
    assert_eq!(metric(&i, 1, "grpc-v2/request-count"), 9.0);
    assert_eq!(metric(&i, 1, "grpc-v2/status-UNAVAILABLE"), 9.0);
    assert_eq!(i.latest(1, "grpc-v1/request-count"), None);
    assert_eq!(i.histogram_metric_values[1]["grpc-v2/latency"].count, 9);
    // the plain names per version, so SLOs on grpc/... compare the versions
    assert_eq!(metric(&i, 0, "grpc/request-count"), 5.0);
    assert_eq!(metric(&i, 1, "grpc/request-count"), 9.0);
    assert_eq!(metric(&i, 1, "grpc/error-rate"), 1.0);
    assert_eq!(
        i.latest(1, "grpc/latency/mean"),
        i.latest(1, "grpc-v2/latency-mean")
    );
    assert_eq!(i.histogram_metric_values[0]["grpc/latency"].count, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_load_targets_of_one_version_as_in_iter8() {
    let a = start(Reflection::Both).await;
    let b = start(Reflection::Both).await;
    let t = task(&format!(
        "call: helloworld.Greeter/SayHello\ntotal: 5\nconcurrency: 2\nendpoints:\n  a: {{host: \"{}\"}}\n  b: {{host: \"{}\", total: 9, call: helloworld.Greeter.Fail, data: {{code: 14}}}}\n",
        a.addr, b.addr
    ));
    let i = run(&t).await.unwrap();
    assert_eq!(i.num_versions, 1);
    assert_eq!((a.calls(), b.calls()), (5, 9));
    assert_eq!(metric(&i, 0, "grpc-a/request-count"), 5.0);
    assert_eq!(metric(&i, 0, "grpc-a/error-rate"), 0.0);
    assert_eq!(metric(&i, 0, "grpc-b/error-rate"), 1.0);
    assert_eq!(i.histogram_metric_values[0]["grpc-b/latency"].count, 9);
    assert_eq!(i.latest(0, "grpc/request-count"), None);
    // any percentile, Iter8's spelling, from the endpoint's histogram
    assert!(i.latest(0, "grpc-a/latency/p97.5").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_fractional_milliseconds_and_iter8_names_resolve() {
    let s = start(Reflection::Both).await;
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/Sleep\ndata: {{micros: 2500}}\ntotal: 20\nconcurrency: 4\n",
        s.addr
    ));
    let i = run(&t).await.unwrap();
    let mean = metric(&i, 0, "grpc/latency-mean");
    assert!((2.5..1000.0).contains(&mean), "{mean}");
    assert!(mean.fract() != 0.0, "not truncated to whole ms: {mean}");
    let min = metric(&i, 0, "grpc/latency-min");
    assert!(min >= 2.5 && min.fract() != 0.0, "{min}");
    let p50 = metric(&i, 0, "grpc/latency-p50");
    assert!(p50 >= 2.4 && p50.fract() != 0.0, "{p50}");
    assert!(metric(&i, 0, "grpc/latency-max") >= min);
    assert!(metric(&i, 0, "grpc/latency-stddev") >= 0.0);
    // Iter8's SLO names (as an assess task reads them).
    assert_eq!(i.latest(0, "grpc/latency/mean"), Some(mean));
    assert_eq!(i.latest(0, "grpc/latency/p50.0"), Some(p50));
    assert_eq!(
        i.latest(0, "grpc/latency/p95.0"),
        i.latest(0, "grpc/latency-p95")
    );
    assert!(i.latest(0, "grpc/latency/p95.0").is_some());
    assert_eq!(i.latest(0, "grpc/error-count"), Some(0.0));
    let h = &i.histogram_metric_values[0]["grpc/latency"];
    assert!(h.buckets.iter().all(|b| b.lower >= 2.0), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_rate_and_duration() {
    let s = start(Reflection::Both).await;
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\ntotal: 40\nconcurrency: 8\nconnections: 4\n",
        s.addr
    ));
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/request-count"), 40.0);
    // 4 HTTP/2 connections carried the calls (reflection used its own, unseen here).
    assert_eq!(s.seen.peers.lock().unwrap().len(), 4);

    let s = start(Reflection::Both).await;
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\ntotal: 10\nrps: 200\nconcurrency: 2\n",
        s.addr
    ));
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/request-count"), 10.0);
    assert_eq!(s.calls(), 10);

    let s = start(Reflection::Both).await;
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\nduration: 300ms\nrps: 100\nconcurrency: 2\n",
        s.addr
    ));
    let i = run(&t).await.unwrap();
    let n = metric(&i, 0, "grpc/request-count");
    assert!((1.0..=31.0).contains(&n), "{n}");
    assert_eq!(s.calls() as f64, n);
}

/// A minimal HTTP/1.1 server answering every GET with `body`.
async fn serve_document(body: &'static str) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_data_and_metadata_fetched_from_urls() {
    let s = start(Reflection::None).await;
    let proto = serve_document(GREETER_INLINE).await;
    let data = serve_document(r#"[{"name": "u1"}, {"name": "u2"}]"#).await;
    let md = serve_document(r#"{"x-user": "carol"}"#).await;
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\nprotoURL: http://{proto}/hello.proto\ndataURL: http://{data}/data.json\nmetadataURL: http://{md}/md.json\ntotal: 4\nconcurrency: 1\n",
        s.addr
    ));
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/request-count"), 4.0);
    let names: BTreeSet<String> = s.seen.names.lock().unwrap().iter().cloned().collect();
    assert_eq!(names, BTreeSet::from(["u1".to_string(), "u2".to_string()]));
    assert!(s.seen.users.lock().unwrap().iter().all(|u| u == "carol"));
    assert_eq!(s.seen.users.lock().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_trusted_ca_and_without() {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let identity =
        tonic::transport::Identity::from_pem(ck.cert.pem(), ck.signing_key.serialize_pem());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let router = tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
        .unwrap()
        .add_service(Greeter(seen.clone()));
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();

    let mut t: GrpcTask = serde_yaml::from_str(&format!(
        "host: {addr}\ncall: helloworld.Greeter/SayHello\ndata: {{name: tls}}\ncacert: {}\ntotal: 10\nconcurrency: 2\n",
        ca.display()
    ))
    .unwrap();
    t.proto_text = Some(GREETER_INLINE.to_string());
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/status-OK"), 10.0);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 10);

    // TLS without trusting the server's certificate: every call fails, counted.
    t.cacert = None;
    t.insecure = Some(false);
    let i = run(&t).await.unwrap();
    assert_eq!(metric(&i, 0, "grpc/error-count"), 10.0);
    assert_eq!(metric(&i, 0, "grpc/status-UNAVAILABLE"), 10.0);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_send_their_scheduled_calls_each() {
    let s = start(Reflection::Both).await;
    // 30 rps for 1 s (30), then a ramp down to 10 rps over 1 s (20)
    let t = task(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\ndata: {{name: stage}}\nconcurrency: 4\n\
         stages: [{{duration: 1s, rps: 30}}, {{duration: 1s, rps: 10, ramp: true}}]\n",
        s.addr
    ));
    let i = run(&t).await.unwrap();
    let stages = &i.load["grpc"].stages;
    assert_eq!(
        stages.iter().map(|s| s.requests).collect::<Vec<_>>(),
        [30, 20]
    );
    assert_eq!(s.calls(), 50);
    assert_eq!(metric(&i, 0, "grpc/request-count"), 50.0);
    assert_eq!(stages[0].statuses.get("OK"), Some(&30));
    assert!(stages
        .iter()
        .all(|s| s.rate > 0.0 && s.rate <= s.planned_requests as f64 / s.duration_seconds));
    // rps beside stages is refused, naming the key
    let bad: GrpcTask = serde_yaml::from_str(&format!(
        "host: {}\ncall: helloworld.Greeter/SayHello\nrps: 5\nstages: [{{duration: 1s, rps: 5}}]\n",
        s.addr
    ))
    .unwrap();
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.starts_with("rps: stages set the rate"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_share_the_calls_exactly() {
    // `iter8-runner --workers 3`: three processes, one merged result.
    let s = start(Reflection::None).await;
    let dir = tempfile::tempdir().unwrap();
    let main = write_protos(dir.path());
    let exp = format!(
        "spec:\n- task: grpc\n  with:\n    host: {}\n    call: helloworld.Greeter/SayHello\n    proto: {}\n    data: {{name: alice}}\n    total: 301\n    concurrency: 6\n",
        s.addr,
        main.display()
    );
    std::fs::write(dir.path().join("e.yaml"), exp).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_iter8-runner"))
        .current_dir(dir.path())
        .args(["-f", "e.yaml", "-o", "r.yaml", "--workers", "3"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let r: iter8::model::ExperimentResult =
        serde_yaml::from_str(&std::fs::read_to_string(dir.path().join("r.yaml")).unwrap()).unwrap();
    let i = r.insights.unwrap();
    assert_eq!(s.calls(), 301);
    assert_eq!(metric(&i, 0, "grpc/request-count"), 301.0);
    assert_eq!(metric(&i, 0, "grpc/status-OK"), 301.0);
    assert_eq!(i.histogram_metric_values[0]["grpc/latency"].count, 301);
    assert!(
        err.contains("3 partial results merged: 301 requests"),
        "{err}"
    );
}
