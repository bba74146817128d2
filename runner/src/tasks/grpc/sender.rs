//! The load engine's gRPC client: connection slots, one call per request (unary or a
//! stream), retry of calls the server did not process.

use super::*;

/// How one call is made.
pub(super) enum Call {
    Unary(UnaryCall),
    Streaming(StreamingCall),
}

/// The gRPC client the load engine drives: every worker sends the prepared requests
/// round-robin on one of the shared HTTP/2 connections.
pub(super) struct GrpcSender {
    pub(super) call: Call,
    /// The requests, gRPC-framed.
    pub(super) requests: Vec<Bytes>,
    /// Round-robin position in `requests`.
    pub(super) next: AtomicU64,
    pub(super) connector: Connector,
    /// The live connection of each connection slot, with its generation number; worker `w`
    /// uses slot `w % connections`. Opened by the slot's first call (the others wait for
    /// it) on that worker's thread, whose runtime then drives it (the plan puts every
    /// worker of a connection on the same thread); emptied when a call finds it broken, so
    /// the next call reconnects.
    pub(super) connections: Vec<tokio::sync::Mutex<Option<(u64, Connection)>>>,
    pub(super) generation: AtomicU64,
}

/// One worker: its connection slot and its handle on the slot's connection.
pub(super) struct GrpcConn {
    worker: usize,
    conn: Option<(u64, Connection)>,
}

pub(super) const UNAVAILABLE: Outcome = Outcome::Response {
    status: Code::Unavailable as u16,
    error: true,
};

impl RequestSender for GrpcSender {
    type Conn = GrpcConn;

    fn new_conn(&self, worker: usize) -> GrpcConn {
        GrpcConn { worker, conn: None }
    }

    async fn send(&self, w: &mut GrpcConn) -> Outcome {
        let slot = &self.connections[w.worker % self.connections.len()];
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let body = &self.requests[i % self.requests.len()];
        // A request the server did not process (e.g. the connection was going away) is
        // retried once, on a new connection if the old one is unusable.
        let mut attempts = 0;
        loop {
            attempts += 1;
            if w.conn.is_none() {
                let mut live = slot.lock().await;
                if live.is_none() {
                    match self.connector.connect().await {
                        Ok(c) => {
                            *live = Some((self.generation.fetch_add(1, Ordering::Relaxed), c));
                        }
                        Err(e) => {
                            tracing::debug!("grpc: {e}");
                            return UNAVAILABLE;
                        }
                    }
                }
                w.conn = live.clone();
            }
            let Some((generation, conn)) = w.conn.as_mut() else {
                return UNAVAILABLE;
            };
            let out = match &self.call {
                Call::Unary(c) => c.call(conn, body).await,
                Call::Streaming(c) => c.call(conn, &self.requests, i).await,
            };
            if out.broken {
                let generation = *generation;
                w.conn = None;
                let mut live = slot.lock().await;
                if live.as_ref().is_some_and(|(g, _)| *g == generation) {
                    *live = None;
                }
            }
            if out.unprocessed && attempts < 2 {
                continue;
            }
            return Outcome::Response {
                status: out.code as u16,
                error: out.code != Code::Ok,
            };
        }
    }
}

/// OS threads for `connections` HTTP/2 connections: the largest divisor of `connections`
/// not above the CPUs available, so that all workers of a connection (worker `w` runs on
/// thread `w % threads` and uses connection `w % connections`) share its thread.
pub(super) fn threads_for(connections: usize) -> usize {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (1..=cpus.min(connections).max(1))
        .rev()
        .find(|t| connections % t == 0)
        .unwrap_or(1)
}
