//! The coordinator's waits through a directory rendezvous, in one process.

use super::*;

fn workers(dir: &std::path::Path, index: u32, run: &str) -> Workers {
    Workers::new(index, 3, run, Rendezvous::Dir(dir.to_path_buf())).with_timing(
        Duration::from_millis(300),
        Duration::from_millis(10),
        Duration::from_millis(10),
    )
}

#[tokio::test]
async fn the_barrier_names_the_workers_that_never_arrived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = workers(dir.path(), 0, "run-1");
    // Worker 1 arrives; worker 2 never starts; a record of an earlier run does not count.
    let step = Step { task: 1, phase: 0 };
    workers(dir.path(), 1, "run-1")
        .update_record(|r| r.at = Some(step))
        .await
        .expect("write");
    workers(dir.path(), 2, "run-0")
        .update_record(|r| r.at = Some(step))
        .await
        .expect("write");
    let e = coordinator
        .wait_for_all("did not reach the start of the load", |r| {
            r.at.is_some_and(|at| at >= step)
        })
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "load worker 2 of 3 did not reach the start of the load within 300ms (the timeout of \
         the load workers); never started: 2 (no record of this run: their pods were not \
         scheduled, not started, or cannot write the release's Secret)"
    );
    // Once it arrives, the barrier opens.
    workers(dir.path(), 2, "run-1")
        .update_record(|r| r.at = Some(Step { task: 1, phase: 1 }))
        .await
        .expect("write");
    let all = coordinator
        .wait_for_all("did not reach the start of the load", |r| {
            r.at.is_some_and(|at| at >= step)
        })
        .await
        .expect("everyone is there");
    assert_eq!(all.keys().copied().collect::<Vec<_>>(), [1, 2]);
}

#[tokio::test]
async fn a_failed_worker_is_named_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = workers(dir.path(), 0, "r");
    workers(dir.path(), 2, "r")
        .fail("task 1 (http): cannot resolve host")
        .await
        .expect("write");
    let started = Instant::now();
    let e = coordinator
        .wait_for_all("sent no partial result", |_| false)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "load worker 2 failed: task 1 (http): cannot resolve host"
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "it waited for the timeout"
    );
}

#[tokio::test]
async fn workers_see_the_start_and_the_end_of_the_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = workers(dir.path(), 0, "r");
    let worker = workers(dir.path(), 1, "r");
    assert_eq!(worker.read_control().await.expect("read"), None);
    coordinator.begin().await.expect("begin");
    coordinator.decide_task(2, false).await.expect("decide");
    coordinator
        .update_control(|c| {
            c.go.insert("3.0".into(), 42);
        })
        .await
        .expect("go");
    let c = worker.read_control().await.expect("read").expect("control");
    assert_eq!(c.tasks.get(&2), Some(&false));
    assert_eq!(wait_for_go(&worker, "3.0").await, Ok(42));
    coordinator.end("done").await.expect("end");
    assert_eq!(
        wait_for_go(&worker, "3.1").await,
        Err("the coordinator ended the loop: done".to_string())
    );
    // A control record of another run is not this run's.
    assert_eq!(
        workers(dir.path(), 1, "other")
            .read_control()
            .await
            .expect("read"),
        None
    );
}
