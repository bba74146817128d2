//! A tonic gRPC server on 127.0.0.1 (port 0) with a client-streaming (`Sum`), a
//! server-streaming (`Count`) and a bidirectional (`Echo`) method of `streams.Streamer`,
//! counting streams and messages both ways.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, Stream, StreamExt};
use tonic::body::Body;
use tonic::server::{
    ClientStreamingService, NamedService, ServerStreamingService, StreamingService,
};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

pub const STREAMER_PROTO: &str = r#"
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
pub struct Seen {
    /// Streams started.
    pub calls: AtomicU64,
    /// Messages sent by the server.
    pub sent: AtomicU64,
    /// Server streams that ended because the client went away (cancelled).
    pub cancelled: AtomicU64,
    /// Per client stream (Sum, Echo), the values received, in order.
    pub received: Mutex<Vec<Vec<i64>>>,
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

pub struct Server {
    pub addr: std::net::SocketAddr,
    pub seen: Arc<Seen>,
}

pub async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let router = tonic::transport::Server::builder().add_service(Streamer(seen.clone()));
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    Server { addr, seen }
}
