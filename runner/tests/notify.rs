//! The `notify` task against a local HTTP receiver: generic, Slack and GitHub forms,
//! softFailure, and secrets that never show up.
#![allow(clippy::unwrap_used)] // test support helpers outside #[test] fns

mod support;

use std::sync::Arc;

use chrono::Utc;
use iter8::model::{
    ExperimentResult, FailedTask, Insights, MetricMeta, MetricType, Slo, Slos, SlosSatisfied,
};
use iter8::tasks::notify::{NotifyTask, Summary};
use iter8::tasks::{Progress, TaskContext, TaskError};
use support::{closed_port, LogBuf, Seen, TestServer};

/// Two versions, one SLO each way; v2 misses the latency SLO and has an unavailable metric.
fn insights() -> Insights {
    let mut i = Insights::default();
    i.ensure_versions(&["v1".into(), "v2".into()]);
    i.register_metric(
        "http/latency-mean",
        MetricMeta::new(MetricType::Gauge, "mean", Some("msec")),
    );
    i.register_metric(
        "http/error-rate",
        MetricMeta::new(MetricType::Gauge, "errors", None),
    );
    i.record(0, "http/latency-mean", 12.5);
    i.record(1, "http/latency-mean", 250.0);
    i.record(0, "http/error-rate", 0.0);
    i.record(1, "http/error-rate", 0.01);
    i.mark_unavailable(1, "prom/request-count", "no data");
    i.slos = Some(Slos {
        upper: vec![Slo {
            metric: "http/latency-mean".into(),
            limit: 100.0,
        }],
        lower: vec![],
    });
    i.slos_satisfied = Some(SlosSatisfied {
        upper: vec![vec![true, false]],
        lower: vec![],
    });
    i
}

async fn run(task: &NotifyTask, insights: &mut Insights) -> Result<(), TaskError> {
    task.validate()?;
    let progress = Progress::default();
    let mut ctx = TaskContext {
        index: 2,
        experiment_start: Utc::now(),
        namespace: None,
        insights,
        progress: &progress,
        kube: None,
    };
    task.run(&mut ctx).await
}

fn as_f64s(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        serde_json::Value::Array(a) => a.into_iter().map(as_f64s).collect(),
        serde_json::Value::Object(o) => o.into_iter().map(|(k, v)| (k, as_f64s(v))).collect(),
        other => other,
    }
}

fn ok_receiver() -> support::Handler {
    Arc::new(|_s: &Seen| (200, "text/plain".into(), "ok".into()))
}

#[tokio::test]
async fn generic_post_with_templated_payload() {
    let srv = TestServer::start(ok_receiver()).await;
    let task: NotifyTask = serde_yaml::from_str(&format!(
        r#"
url: {url}
headers: {{X-Source: iter8}}
params: {{team: a b, k: "1"}}
payloadTemplate: |
  {{"ok": {{{{ .slosSatisfied }}}}, "tasks": {{{{ .numCompletedTasks }}}}, "versions": [{{{{ range $i, $v := .versions }}}}{{{{ if $i }}}},{{{{ end }}}}{{"name": {{{{ $v.name | quote }}}}, "slos": {{{{ $v.slosSatisfied }}}}, "mean": {{{{ index $v.metrics "http/latency-mean" }}}}}}{{{{ end }}}}]}}
"#,
        url = srv.url("/hook")
    ))
    .unwrap();
    run(&task, &mut insights()).await.unwrap();
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(r.query, "k=1&team=a+b");
    assert_eq!(r.header("x-source"), Some("iter8"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({
            "ok": false,
            "tasks": 2,
            "versions": [
                {"name": "v1", "slos": true, "mean": 12.5},
                {"name": "v2", "slos": false, "mean": 250}
            ]
        })
    );
}

#[tokio::test]
async fn generic_get_without_payload_and_whole_summary_via_to_json() {
    let srv = TestServer::start(ok_receiver()).await;
    let task: NotifyTask = serde_yaml::from_str(&format!("url: {}\n", srv.url("/ping"))).unwrap();
    run(&task, &mut insights()).await.unwrap();
    let r = &srv.requests()[0];
    assert_eq!(r.method, "GET");
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-type"), None);

    // the whole summary as the payload
    let task: NotifyTask = serde_yaml::from_str(&format!(
        "url: {}\npayloadTemplate: '{{{{ toJson .Summary }}}}'\n",
        srv.url("/sum")
    ))
    .unwrap();
    run(&task, &mut insights()).await.unwrap();
    let r = &srv.requests()[1];
    let expected = serde_json::to_value(Summary::from_insights(&insights(), 2)).unwrap();
    // numbers compare by value (250 and 250.0 are the same JSON number to a receiver)
    assert_eq!(as_f64s(r.json()), as_f64s(expected));
    assert_eq!(
        r.json()["versions"][1]["unavailable"]["prom/request-count"],
        "no data"
    );
    assert_eq!(r.json()["versions"][1]["slos"][0]["value"], 250.0);
    assert_eq!(r.json()["slosSatisfied"], false);
}

#[tokio::test]
async fn slack_block_kit_payload_is_valid_json_with_blocks() {
    let srv = TestServer::start(ok_receiver()).await;
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("webhook");
    std::fs::write(
        &url_file,
        format!("{}\n", srv.url("/services/T000/B000/SECRETPATH")),
    )
    .unwrap();
    for task_yaml in [
        format!(
            "slack: {{url: {}}}\n",
            srv.url("/services/T000/B000/SECRETPATH")
        ),
        format!("slack: {{urlFile: {}}}\n", url_file.display()),
    ] {
        let task: NotifyTask = serde_yaml::from_str(&task_yaml).unwrap();
        run(&task, &mut insights()).await.unwrap();
    }
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/services/T000/B000/SECRETPATH");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json();
        assert_eq!(body["text"], "Iter8 experiment: ⚠️ SLOs not satisfied");
        let blocks = body["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks.len(), 4); // header, facts, one section per version
        for b in blocks {
            assert!(b["type"] == "header" || b["type"] == "section");
            let t = &b["text"];
            assert!(t["type"] == "plain_text" || t["type"] == "mrkdwn");
            assert!(t["text"].as_str().unwrap().len() <= 3000);
        }
        let v2 = blocks[3]["text"]["text"].as_str().unwrap();
        assert!(v2.starts_with("*v2* ❌"), "{v2}");
        assert!(v2.contains("`http/latency-mean` = 250 (<= 100)"), "{v2}");
        assert!(
            v2.contains("`prom/request-count` unavailable: no data"),
            "{v2}"
        );
    }
}

#[tokio::test]
async fn github_repository_dispatch() {
    let srv = TestServer::start(Arc::new(|_s: &Seen| {
        (204, "text/plain".into(), String::new())
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "ghp_T0KEN_never_shown\n").unwrap();
    let task: NotifyTask = serde_yaml::from_str(&format!(
        "github: {{owner: my-org, repo: my-app, tokenFile: {}, eventType: iter8-done, apiURL: '{}'}}\n",
        token_file.display(),
        srv.url("")
    ))
    .unwrap();
    let mut ins = insights();
    run(&task, &mut ins).await.unwrap();
    let r = &srv.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/repos/my-org/my-app/dispatches");
    assert_eq!(
        r.header("authorization"),
        Some("Bearer ghp_T0KEN_never_shown")
    );
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("iter8/"));
    assert_eq!(
        r.json(),
        serde_json::json!({
            "event_type": "iter8-done",
            "client_payload": serde_json::to_value(Summary::from_insights(&insights(), 2)).unwrap(),
        })
    );
    // token from the environment
    std::env::set_var("ITER8_TEST_GH_TOKEN", "env_gh_t0ken");
    let task: NotifyTask = serde_yaml::from_str(&format!(
        "github: {{owner: o, repo: r, tokenEnv: ITER8_TEST_GH_TOKEN, apiURL: '{}'}}\n",
        srv.url("/api/v3")
    ))
    .unwrap();
    run(&task, &mut ins).await.unwrap();
    let r = &srv.requests()[1];
    assert_eq!(r.path, "/api/v3/repos/o/r/dispatches");
    assert_eq!(r.header("authorization"), Some("Bearer env_gh_t0ken"));
    assert_eq!(r.json()["event_type"], "iter8");
}

#[tokio::test]
async fn soft_failure_and_secrets_never_leak() {
    // A receiver that refuses, echoing what it got (including the Authorization header).
    let srv = TestServer::start(Arc::new(|s: &Seen| {
        let echo = format!("denied: {:?}", s.headers);
        (401, "text/plain".into(), echo)
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "ghp_SECRET_abc123").unwrap();
    let logs = LogBuf::default();
    let _guard = logs.install();
    let yaml = |soft: bool| {
        format!(
            "github: {{owner: o, repo: r, tokenFile: {}, apiURL: '{}'}}\nsoftFailure: {soft}\n",
            token_file.display(),
            srv.url("")
        )
    };

    // softFailure: false -> the task fails, with the status in the message
    let task: NotifyTask = serde_yaml::from_str(&yaml(false)).unwrap();
    let mut ins = insights();
    let err = run(&task, &mut ins).await.unwrap_err().to_string();
    assert!(err.contains("HTTP 401"), "{err}");
    // softFailure: true -> the task succeeds, the failure is logged
    let task: NotifyTask = serde_yaml::from_str(&yaml(true)).unwrap();
    run(&task, &mut ins).await.unwrap();
    let log = logs.text();
    assert!(
        log.contains("HTTP 401") && log.contains("softFailure"),
        "{log}"
    );
    assert_eq!(srv.requests().len(), 2);

    // nobody listening: fails / soft-fails the same way
    let down = closed_port();
    for soft in [false, true] {
        let task: NotifyTask = serde_yaml::from_str(&format!(
            "url: http://127.0.0.1:{down}/x\nsoftFailure: {soft}\n"
        ))
        .unwrap();
        let r = run(&task, &mut ins).await;
        assert_eq!(r.is_ok(), soft, "{r:?}");
        if let Err(e) = r {
            assert!(e.to_string().contains("cannot connect"), "{e}");
        }
    }

    // a Slack webhook URL from a file is a secret too
    let hook = dir.path().join("hook");
    std::fs::write(&hook, srv.url("/services/T1/B1/HOOKSECRET")).unwrap();
    let task: NotifyTask =
        serde_yaml::from_str(&format!("slack: {{urlFile: {}}}\n", hook.display())).unwrap();
    let err = run(&task, &mut ins).await.unwrap_err().to_string();
    assert!(
        err.contains("HTTP 401") && err.contains(&hook.display().to_string()),
        "{err}"
    );

    // generic form with a bearer token from the environment, echoed back by the server
    std::env::set_var("ITER8_TEST_NOTIFY_TOKEN", "generic-t0ken-987");
    let task: NotifyTask = serde_yaml::from_str(&format!(
        "url: {}\nauth: {{bearerTokenEnv: ITER8_TEST_NOTIFY_TOKEN}}\n",
        srv.url("/generic")
    ))
    .unwrap();
    let err2 = run(&task, &mut ins).await.unwrap_err().to_string();
    assert!(
        err2.contains("HTTP 401") && err2.contains("Bearer ***"),
        "{err2}"
    );
    let generic = srv
        .requests()
        .into_iter()
        .find(|r| r.path == "/generic")
        .unwrap();
    assert_eq!(
        generic.header("authorization"),
        Some("Bearer generic-t0ken-987")
    );
    let err = format!("{err}\n{err2}");

    let result = {
        let mut r = ExperimentResult::new(3);
        r.insights = Some(ins);
        serde_yaml::to_string(&r).unwrap()
    };
    let everything = format!("{err}\n{}\n{result}", logs.text());
    for secret in ["ghp_SECRET_abc123", "HOOKSECRET", "generic-t0ken-987"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

#[test]
fn summary_from_result_and_validation() {
    let mut r = ExperimentResult::new(4);
    r.num_loops = 3;
    r.num_completed_tasks = 2;
    r.failure = true;
    r.failed_task = Some(FailedTask {
        index: 2,
        task: "assess".into(),
        message: "boom".into(),
    });
    r.insights = Some(insights());
    let s = Summary::from_result(&r);
    assert_eq!(s.completed, Some(false));
    assert!(s.failure);
    assert_eq!(s.failure_reason.as_deref(), Some("task 3 (assess): boom"));
    assert_eq!(s.num_loops, Some(3));
    assert!(!s.slos_satisfied);
    assert!(s.versions[0].slos[0].satisfied);
    assert_eq!(s.versions[1].slos[0].value, Some(250.0));
    let slack = iter8::tasks::notify::slack_payload(&s);
    assert_eq!(slack["text"], "Iter8 experiment: ❌ failed");
    assert!(slack["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("*Failure:* task 3 (assess): boom"));

    let mut ok = ExperimentResult::new(1);
    ok.num_completed_tasks = 1;
    ok.num_loops = 1;
    let slack = iter8::tasks::notify::slack_payload(&Summary::from_result(&ok));
    assert_eq!(slack["text"], "Iter8 experiment: ✅ no failure");
    assert_eq!(slack["blocks"].as_array().unwrap().len(), 2);

    for (yaml, field) in [
        ("{}", "url"),
        ("{url: 'http://a', slack: {url: 'http://b'}}", "url"),
        ("{url: 'ftp://a'}", "url"),
        ("{slack: {}}", "slack"),
        ("{github: {owner: o, repo: r}}", "github"),
        (
            "{github: {owner: o/x, repo: r, tokenEnv: T}}",
            "github.owner",
        ),
        (
            "{url: 'http://a', payloadTemplate: '{{ if }}'}",
            "payloadTemplate",
        ),
        ("{url: 'http://a', method: 'B A D'}", "method"),
    ] {
        let t: NotifyTask = serde_yaml::from_str(yaml).unwrap();
        match t.validate() {
            Err(TaskError::Invalid { field: f, .. }) => assert_eq!(f, field, "{yaml}"),
            other => panic!("{yaml}: {other:?}"),
        }
    }
    assert!(serde_yaml::from_str::<NotifyTask>("{url: 'http://a', bogus: 1}").is_err());
}

/// Iter8's `payloadTemplateURL`: the template is fetched when the task runs.
#[tokio::test]
async fn payload_template_from_a_url() {
    let srv = TestServer::start(Arc::new(|s: &Seen| match s.path.as_str() {
        "/payload.tpl" => (
            200,
            "text/plain".into(),
            r#"{"ok": {{ .slosSatisfied }}, "tasks": {{ .numCompletedTasks }}}"#.into(),
        ),
        "/hook" => (200, "text/plain".into(), "ok".into()),
        _ => (404, "text/plain".into(), "not found".into()),
    }))
    .await;
    let task = |template: &str| -> NotifyTask {
        serde_yaml::from_str(&format!(
            "url: {}\npayloadTemplateURL: {}\nsoftFailure: false\n",
            srv.url("/hook"),
            srv.url(template)
        ))
        .unwrap()
    };
    run(&task("/payload.tpl"), &mut insights()).await.unwrap();
    let hook: Vec<_> = srv
        .requests()
        .into_iter()
        .filter(|r| r.path == "/hook")
        .collect();
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].json(), serde_json::json!({"ok": false, "tasks": 2}));
    // A template that cannot be fetched: the error names the field and the URL.
    let e = run(&task("/gone.tpl"), &mut insights()).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("payloadTemplateURL") && msg.contains("/gone.tpl") && msg.contains("404"),
        "{msg}"
    );
    // Both forms: refused before anything is sent.
    let both: NotifyTask = serde_yaml::from_str(&format!(
        "url: {}\npayloadTemplate: x\npayloadTemplateURL: {}\n",
        srv.url("/hook"),
        srv.url("/payload.tpl")
    ))
    .unwrap();
    assert!(both
        .validate()
        .unwrap_err()
        .to_string()
        .contains("payloadTemplateURL"));
}
