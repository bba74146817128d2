//! CronJob experiments: loops started as users start them (`kubectl create job
//! --from=cronjob/NAME`) and by the real CronJob controller's schedule, accumulating in the
//! release's one result; `helm uninstall` of a CronJob release collects its Jobs and pods.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};

use crate::common::{helm, iter8, iter8_assert, target};
use crate::{finished_job, http_sets, install, nothing_left, report_json, Helm};
use iter8_tests::k8s::{wait_for, Cluster};

pub async fn cronjob_loops_from_kubectl_accumulate_in_one_result(c: &Cluster) {
    let ns = c.namespace("loops").await.expect("namespace");
    let addr = target().await;
    let mut sets = http_sets(&format!("http://{addr}/get"), "2000");
    sets.push("runner=cronjob".into());
    // yearly: only our loops run
    sets.push("cronjobSchedule=0 0 1 1 *".into());
    let r = install(Helm::V4, c, "install", &ns, "loops", &sets, false).await;
    assert_eq!(r.code, 0, "helm install: {r}");
    for i in 1..=3 {
        let job = format!("loop-{i}");
        c.create_job_from_cronjob(&ns, &job, "loops-1-cronjob");
        let j = finished_job(c, &ns, &job).await;
        assert_eq!(
            j["status"]["succeeded"],
            1,
            "loop {i}: {j}\n{}",
            c.logs(&ns, &format!("job/{job}"))
        );
        // kubectl made it the CronJob's
        assert_eq!(
            j["metadata"]["ownerReferences"][0]["kind"], "CronJob",
            "{j}"
        );
    }
    let res = report_json(c, &ns, "loops").await;
    assert_eq!(res["numLoops"], 3, "{res}");
    let secrets: Api<Secret> = Api::namespaced(c.client(), &ns);
    let lp = ListParams::default().labels("app.kubernetes.io/instance=loops");
    assert_eq!(secrets.list(&lp).await.expect("list").items.len(), 1);
    let s = secrets.get("loops").await.expect("secret");
    let result = s
        .data
        .as_ref()
        .and_then(|d| d.get("result.yaml"))
        .map(|b| b.0.clone())
        .expect("result.yaml");
    assert!(result.len() < 64 * 1024, "result is {} bytes", result.len());
    let r = iter8_assert(c, "completed,nofailure,slos", "loops", &ns, &[]).await;
    assert_eq!(r.code, 0, "{r}");
    let r = iter8(c, &["log", "--release", "loops", "-n", &ns]).await;
    assert_eq!(r.code, 0, "{r}");
    for l in ["loop 1", "loop 2", "loop 3", "cronjob loops-1-cronjob"] {
        assert!(r.out.contains(l), "log lacks {l}: {r}");
    }
    // newest first
    let (p3, p1) = (r.out.find("loop 3"), r.out.find("loop 1"));
    assert!(p3 < p1, "{r}");
    let r = helm(c, &["uninstall", "loops", "-n", &ns, "--wait"]).await;
    assert_eq!(r.code, 0, "{r}");
    // The loops' Jobs are the CronJob's: garbage collection removes them and their pods.
    nothing_left(c, &ns, "loops").await;
    let jobs: Api<Job> = Api::namespaced(c.client(), &ns);
    wait_for(
        "the loops' Jobs to be collected",
        Duration::from_secs(90),
        || async {
            jobs.list(&ListParams::default())
                .await
                .ok()
                .filter(|l| l.items.is_empty())
                .map(|_| ())
        },
    )
    .await
    .expect("the loop Jobs are collected with their CronJob");
    c.delete_namespace(&ns).await;
}

pub async fn a_cronjob_schedule_fires_and_uninstall_collects_its_jobs(c: &Cluster) {
    let ns = c.namespace("schedule").await.expect("namespace");
    let addr = target().await;
    let mut sets = http_sets(&format!("http://{addr}/get"), "2000");
    sets.push("runner=cronjob".into());
    sets.push("cronjobSchedule=* * * * *".into());
    let r = install(Helm::V4, c, "install", &ns, "every", &sets, false).await;
    assert_eq!(r.code, 0, "helm install: {r}");
    // The CronJob controller starts a loop at the next minute.
    let jobs: Api<Job> = Api::namespaced(c.client(), &ns);
    let name = wait_for(
        "the CronJob controller's first loop",
        Duration::from_secs(150),
        || async {
            let l = jobs.list(&ListParams::default()).await.ok()?;
            l.items.into_iter().find_map(|j| {
                let owned = j
                    .metadata
                    .owner_references
                    .as_ref()?
                    .iter()
                    .any(|o| o.kind == "CronJob" && o.name == "every-1-cronjob");
                owned.then(|| j.metadata.name.clone()).flatten()
            })
        },
    )
    .await
    .expect("a scheduled Job");
    let j = finished_job(c, &ns, &name).await;
    assert_eq!(j["status"]["succeeded"], 1, "{j}");
    let r = iter8_assert(c, "completed,nofailure,slos", "every", &ns, &[]).await;
    assert_eq!(r.code, 0, "{r}");
    assert!(report_json(c, &ns, "every").await["numLoops"].as_u64() >= Some(1));
    let r = helm(c, &["uninstall", "every", "-n", &ns, "--wait"]).await;
    assert_eq!(r.code, 0, "{r}");
    nothing_left(c, &ns, "every").await;
    let pods: Api<Pod> = Api::namespaced(c.client(), &ns);
    wait_for(
        "the scheduled loops' Jobs and pods to be collected",
        Duration::from_secs(90),
        || async {
            let j = jobs.list(&ListParams::default()).await.ok()?;
            let p = pods.list(&ListParams::default()).await.ok()?;
            (j.items.is_empty() && p.items.is_empty()).then_some(())
        },
    )
    .await
    .expect("garbage collection of the CronJob's Jobs and pods");
    c.delete_namespace(&ns).await;
}
