//! Streaming methods run as ghz runs them, against an in-process tonic server on 127.0.0.1
//! (port 0) with a client-streaming (`Sum`), a server-streaming (`Count`) and a
//! bidirectional (`Echo`) method. The server counts streams and messages both ways, so the
//! tests check what ghz's stream parameters mean: the `data` array sent per call,
//! `stream-call-count` cycling it, `stream-interval` and `stream-call-duration`, server
//! streams cancelled after a count, one call per stream in the metrics.

#![allow(clippy::unwrap_used)] // test support: a failed setup should panic

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, Stream, StreamExt};
use iter8::model::Insights;
use iter8::tasks::grpc::GrpcTask;
use iter8::tasks::{Progress, TaskContext};
use tonic::body::Body;
use tonic::server::{
    ClientStreamingService, NamedService, ServerStreamingService, StreamingService,
};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

const STREAMER_PROTO: &str = r#"
syntax = "proto3";
package streams;
service Streamer {
  rpc Sum (stream Num) returns (Total);
  rpc Count (CountRequest) returns (stream Num);
  rpc Echo (stream Num) returns (stream Num);
}
message Num { int64 value = 1; }
message Total { int64 sum = 1; int64 count = 2; }
message CountRequest { int64 n = 1; int64 gap_micros = 2; }
"#;

#[derive(Clone, PartialEq, prost::Message)]
struct Num {
    #[prost(int64, tag = "1")]
    value: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Total {
    #[prost(int64, tag = "1")]
    sum: i64,
    #[prost(int64, tag = "2")]
    count: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CountRequest {
    #[prost(int64, tag = "1")]
    n: i64,
    #[prost(int64, tag = "2")]
    gap_micros: i64,
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    /// Streams started.
    calls: AtomicU64,
    /// Messages sent by the server.
    sent: AtomicU64,
    /// Server streams that ended because the client went away (cancelled).
    cancelled: AtomicU64,
    /// Per client stream (Sum, Echo), the values received, in order.
    received: Mutex<Vec<Vec<i64>>>,
}

#[derive(Clone)]
struct Streamer(Arc<Seen>);

impl NamedService for Streamer {
    const NAME: &'static str = "streams.Streamer";
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type NumStream = Pin<Box<dyn Stream<Item = Result<Num, Status>> + Send + 'static>>;

/// Read a client stream to its end; a negative value is refused with INVALID_ARGUMENT.
async fn read_all(seen: &Seen, mut s: Streaming<Num>) -> Result<Vec<i64>, Status> {
    let mut values = Vec::new();
    while let Some(n) = s.message().await? {
        if n.value < 0 {
            return Err(Status::invalid_argument("negative"));
        }
        values.push(n.value);
    }
    seen.received.lock().unwrap().push(values.clone());
    Ok(values)
}

struct SumSvc(Streamer);
impl ClientStreamingService<Num> for SumSvc {
    type Response = Total;
    type Future = BoxFut<Result<Response<Total>, Status>>;
    fn call(&mut self, request: Request<Streaming<Num>>) -> Self::Future {
        let seen = self.0 .0.clone();
        Box::pin(async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            let values = read_all(&seen, request.into_inner()).await?;
            seen.sent.fetch_add(1, Ordering::SeqCst);
            Ok(Response::new(Total {
                sum: values.iter().sum(),
                count: values.len() as i64,
            }))
        })
    }
}

struct CountSvc(Streamer);
impl ServerStreamingService<CountRequest> for CountSvc {
    type Response = Num;
    type ResponseStream = NumStream;
    type Future = BoxFut<Result<Response<NumStream>, Status>>;
    fn call(&mut self, request: Request<CountRequest>) -> Self::Future {
        let seen = self.0 .0.clone();
        Box::pin(async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            let CountRequest { n, gap_micros } = request.into_inner();
            let (mut tx, rx) = futures::channel::mpsc::channel(1);
            tokio::spawn(async move {
                for value in 0..n {
                    if value > 0 && gap_micros > 0 {
                        tokio::time::sleep(Duration::from_micros(gap_micros as u64)).await;
                    }
                    if tx.send(Ok(Num { value })).await.is_err() {
                        seen.cancelled.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    seen.sent.fetch_add(1, Ordering::SeqCst);
                }
            });
            Ok(Response::new(Box::pin(rx) as NumStream))
        })
    }
}

struct EchoSvc(Streamer);
impl StreamingService<Num> for EchoSvc {
    type Response = Num;
    type ResponseStream = NumStream;
    type Future = BoxFut<Result<Response<NumStream>, Status>>;
    fn call(&mut self, request: Request<Streaming<Num>>) -> Self::Future {
        let seen = self.0 .0.clone();
        Box::pin(async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            let mut input = request.into_inner();
            let (mut tx, rx) = futures::channel::mpsc::channel(4);
            tokio::spawn(async move {
                let mut values = Vec::new();
                while let Some(Ok(n)) = input.next().await {
                    values.push(n.value);
                    if tx.send(Ok(n)).await.is_err() {
                        break;
                    }
                    seen.sent.fetch_add(1, Ordering::SeqCst);
                }
                seen.received.lock().unwrap().push(values);
            });
            Ok(Response::new(Box::pin(rx) as NumStream))
        })
    }
}

impl tonic::codegen::Service<http::Request<Body>> for Streamer {
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
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(match path.as_str() {
                "/streams.Streamer/Sum" => grpc.client_streaming(SumSvc(me), req).await,
                "/streams.Streamer/Count" => {
                    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                    grpc.server_streaming(CountSvc(me), req).await
                }
                "/streams.Streamer/Echo" => {
                    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                    grpc.streaming(EchoSvc(me), req).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

struct Server {
    addr: std::net::SocketAddr,
    seen: Arc<Seen>,
}

async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let router = tonic::transport::Server::builder().add_service(Streamer(seen.clone()));
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    Server { addr, seen }
}

/// Run a grpc task given as YAML lines after `host`, `protoText` and `call`.
async fn load(s: &Server, method: &str, rest: &str) -> Insights {
    let yaml = format!(
        "host: {}\ncall: streams.Streamer/{method}\nprotoText: {:?}\n{rest}",
        s.addr, STREAMER_PROTO
    );
    let t: GrpcTask = serde_yaml::from_str(&yaml).unwrap();
    t.validate().unwrap();
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
    t.run(&mut ctx).await.unwrap();
    insights
}

fn counts(i: &Insights) -> (f64, f64) {
    (
        i.latest(0, "grpc/request-count").unwrap(),
        i.latest(0, "grpc/error-count").unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streaming_sends_the_data_array_on_every_call() {
    let s = start().await;
    let i = load(
        &s,
        "Sum",
        "data: [{value: 1}, {value: 2}, {value: 3}]\ntotal: 12\nconcurrency: 3\n",
    )
    .await;
    assert_eq!(counts(&i), (12.0, 0.0), "one call per stream");
    assert_eq!(s.seen.calls.load(Ordering::SeqCst), 12);
    let received = s.seen.received.lock().unwrap().clone();
    assert_eq!(received.len(), 12);
    assert!(received.iter().all(|v| v == &[1, 2, 3]), "{received:?}");
    assert_eq!(i.latest(0, "grpc/status-OK"), Some(12.0));
    assert_eq!(i.histogram_metric_values[0]["grpc/latency"].count, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_call_count_cycles_the_data_and_a_refusal_is_counted() {
    let s = start().await;
    let i = load(
        &s,
        "Sum",
        "data: [{value: 1}, {value: 2}]\nstream-call-count: 5\nstream-interval: 1ms\ntotal: 4\nconcurrency: 2\n",
    )
    .await;
    assert_eq!(counts(&i), (4.0, 0.0));
    let received = s.seen.received.lock().unwrap().clone();
    assert!(
        received.len() == 4 && received.iter().all(|v| v == &[1, 2, 1, 2, 1]),
        "{received:?}"
    );

    // The server refuses the stream's second message: the call fails with its status.
    let s = start().await;
    let i = load(
        &s,
        "Sum",
        "data: [{value: 1}, {value: -1}]\ntotal: 5\nconcurrency: 1\n",
    )
    .await;
    assert_eq!(counts(&i), (5.0, 5.0));
    assert_eq!(i.latest(0, "grpc/status-INVALID_ARGUMENT"), Some(5.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_reads_every_reply_or_stops_at_the_count() {
    let s = start().await;
    // data as an array: one request per call, round-robin (n = 3, then 5).
    let i = load(
        &s,
        "Count",
        "data: [{n: 3}, {n: 5}]\ntotal: 6\nconcurrency: 1\n",
    )
    .await;
    assert_eq!(counts(&i), (6.0, 0.0));
    assert_eq!(s.seen.calls.load(Ordering::SeqCst), 6);
    assert_eq!(s.seen.sent.load(Ordering::SeqCst), 3 * 3 + 3 * 5);
    assert_eq!(s.seen.cancelled.load(Ordering::SeqCst), 0);

    // A long stream ended by the client after 2 replies: a successful call (ghz would say
    // CANCELLED), and the server sees the cancellation.
    let s = start().await;
    let i = load(
        &s,
        "Count",
        "data: {n: 100000, gap_micros: 1000}\nstream-call-count: 2\ntotal: 4\nconcurrency: 2\n",
    )
    .await;
    assert_eq!(counts(&i), (4.0, 0.0));
    assert_eq!(i.latest(0, "grpc/status-OK"), Some(4.0));
    for _ in 0..200 {
        if s.seen.cancelled.load(Ordering::SeqCst) == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.seen.cancelled.load(Ordering::SeqCst),
        4,
        "every stream cancelled"
    );
    assert!(s.seen.sent.load(Ordering::SeqCst) < 4 * 100000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_call_duration_ends_long_streams_without_error() {
    let s = start().await;
    // 100000 messages 10ms apart would take far beyond the 20s deadline: the duration ends
    // each call (its sending side) long before.
    let i = load(
        &s,
        "Sum",
        "data: {value: 7}\nstream-call-count: 100000\nstream-interval: 10ms\nstream-call-duration: 50ms\ntotal: 3\nconcurrency: 3\n",
    )
    .await;
    assert_eq!(counts(&i), (3.0, 0.0));
    let received = s.seen.received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    assert!(
        received
            .iter()
            .all(|v| !v.is_empty() && v.len() < 100000 && v.iter().all(|x| *x == 7)),
        "{received:?}"
    );

    // Server streaming: the duration ends the reading.
    let s = start().await;
    let i = load(
        &s,
        "Count",
        "data: {n: 100000, gap_micros: 10000}\nstream-call-duration: 50ms\ntotal: 2\nconcurrency: 2\n",
    )
    .await;
    assert_eq!(counts(&i), (2.0, 0.0));
    assert!(s.seen.sent.load(Ordering::SeqCst) < 2 * 100000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidirectional_streams_send_and_receive_every_message() {
    let s = start().await;
    let i = load(
        &s,
        "Echo",
        "data: [{value: 4}, {value: 5}, {value: 6}]\nstream-interval: 1ms\ntotal: 10\nconcurrency: 4\nconnections: 2\n",
    )
    .await;
    assert_eq!(counts(&i), (10.0, 0.0));
    assert_eq!(s.seen.calls.load(Ordering::SeqCst), 10);
    assert_eq!(
        s.seen.sent.load(Ordering::SeqCst),
        30,
        "every message echoed"
    );
    let received = s.seen.received.lock().unwrap().clone();
    assert!(
        received.len() == 10 && received.iter().all(|v| v == &[4, 5, 6]),
        "{received:?}"
    );

    // Many messages per stream, the one data object cycled.
    let s = start().await;
    let i = load(
        &s,
        "Echo",
        "data: {value: 1}\nstream-call-count: 1000\ntotal: 2\nconcurrency: 2\n",
    )
    .await;
    assert_eq!(counts(&i), (2.0, 0.0));
    assert_eq!(s.seen.sent.load(Ordering::SeqCst), 2000);
}
