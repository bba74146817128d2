//! Streaming methods run as ghz runs them, against an in-process tonic server on 127.0.0.1
//! (port 0) with a client-streaming (`Sum`), a server-streaming (`Count`) and a
//! bidirectional (`Echo`) method. The server counts streams and messages both ways, so the
//! tests check what ghz's stream parameters mean: the `data` array sent per call,
//! `stream-call-count` cycling it, `stream-interval` and `stream-call-duration`, server
//! streams cancelled after a count, one call per stream in the metrics.

#![allow(clippy::unwrap_used)] // test support: a failed setup should panic

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use iter8::model::Insights;
use iter8::tasks::grpc::GrpcTask;
use iter8::tasks::{Progress, TaskContext};
use support::streamer::{start, Server, STREAMER_PROTO};

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
