use super::*;
use crate::model::metrics::percentile_suffix;

fn task(yaml: &str) -> HttpTask {
    serde_yaml::from_str(yaml).unwrap()
}

fn invalid_field(t: &HttpTask) -> String {
    match t.validate() {
        Err(TaskError::Invalid { field, message }) => {
            assert!(!message.is_empty());
            field
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn every_validation_error_names_the_field() {
    let cases = [
        ("numRequests: 5", "url"),
        ("url: ftp://x/y", "url"),
        ("url: 127.0.0.1:8080/get", "url"),
        ("url: 'http://'", "url"),
        ("url: http://a/\nnumRequests: 0", "numRequests"),
        ("url: http://a/\nduration: 0s", "duration"),
        ("url: http://a/\nqps: .nan", "qps"),
        ("url: http://a/\nconnections: 0", "connections"),
        ("url: http://a/\ntimeout: 0s", "timeout"),
        (
            "url: http://a/\npayloadStr: x\npayloadFile: /tmp/x",
            "payloadFile",
        ),
        (
            "url: http://a/\nheaders: {'bad name': x}",
            "headers.bad name",
        ),
        ("url: http://a/\nheaders: {X-A: \"a\\nb\"}", "headers.X-A"),
        ("url: http://a/\ncontentType: \"a\\nb\"", "contentType"),
        ("url: http://a/\nerrorRanges: [{}]", "errorRanges[0]"),
        (
            "url: http://a/\nerrorRanges: [{lower: 500}, {lower: 500, upper: 400}]",
            "errorRanges[1]",
        ),
        ("url: http://a/\npercentiles: [101]", "percentiles[0]"),
        ("url: http://a/\ncaFile: ''", "caFile"),
        (
            "endpoints: {v1: {url: http://a/}, v2: {}}",
            "endpoints.v2.url",
        ),
        (
            "url: http://a/\nendpoints: {v1: {numRequests: 0}}",
            "endpoints.v1.numRequests",
        ),
    ];
    for (yaml, field) in cases {
        let t = task(yaml);
        assert_eq!(invalid_field(&t), field, "{yaml}");
        let msg = t.validate().unwrap_err().to_string();
        assert!(msg.starts_with(field), "{msg}");
    }
}

#[test]
fn unknown_and_mistyped_parameters_are_rejected() {
    let e = serde_yaml::from_str::<HttpTask>("url: http://a/\nnumRequest: 3")
        .unwrap_err()
        .to_string();
    assert!(e.contains("numRequest"), "{e}");
    let e = serde_yaml::from_str::<HttpTask>("url: http://a/\nqps: fast")
        .unwrap_err()
        .to_string();
    assert!(e.contains("qps"), "{e}");
    let e = serde_yaml::from_str::<HttpTask>("url: http://a/\nduration: 10 sec")
        .unwrap_err()
        .to_string();
    assert!(e.contains("duration"), "{e}");
}

#[test]
fn defaults_and_overrides() {
    let t = task(
        "url: http://a/\nqps: 20\nheaders: {A: '1', B: '2'}\nendpoints:\n  \
             v2: {duration: 2s, headers: {B: '3'}}\n  v1: {url: 'http://b/', connections: 9}\n",
    );
    t.validate().unwrap();
    let r = t.resolve();
    assert_eq!(
        r.iter()
            .map(|r| r.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["v1", "v2"]
    );
    assert_eq!(r[0].url.as_deref(), Some("http://b/"));
    assert_eq!(r[0].connections, 9);
    assert_eq!(r[0].qps, 20.0);
    assert_eq!(r[0].stop().num_requests, Some(DEFAULT_NUM_REQUESTS));
    assert_eq!(r[1].stop().num_requests, None);
    assert_eq!(r[1].stop().duration, Some(Duration::from_secs(2)));
    assert_eq!(r[1].connections, DEFAULT_CONNECTIONS);
    assert_eq!(r[1].headers["A"], "1");
    assert_eq!(r[1].headers["B"], "3");
    assert_eq!(r[1].error_ranges, default_error_ranges());
    assert_eq!(
        t.metric_prefixes(),
        ["http-v1".to_string(), "http-v2".into()]
    );
    assert!(t.version_names().is_empty());
    // both: numRequests wins, duration is ignored (Iter8: fortio's Exactly)
    let both = task("url: http://a/\nnumRequests: 7\nduration: 1s");
    let stop = both.resolve()[0].stop();
    assert_eq!((stop.num_requests, stop.duration), (Some(7), None));
    let single = task("url: http://a/");
    let r = single.resolve();
    assert_eq!(r[0].qps, DEFAULT_QPS);
    assert_eq!(r[0].timeout, DEFAULT_TIMEOUT);
    assert_eq!(single.metric_prefixes(), ["http".to_string()]);
}

#[test]
fn percentiles_always_include_the_defaults() {
    let t = task("url: http://a/\npercentiles: [99.99, 50, 99.90]");
    let names: Vec<String> = t
        .all_percentiles()
        .iter()
        .map(|p| percentile_suffix(*p))
        .collect();
    assert_eq!(
        names,
        ["p50", "p75", "p90", "p95", "p99", "p99.9", "p99.99"]
    );
}

#[test]
fn error_ranges_are_inclusive() {
    let r = ErrorRange {
        lower: Some(500),
        upper: Some(503),
    };
    assert!(!r.contains(499));
    assert!(r.contains(500));
    assert!(r.contains(503));
    assert!(!r.contains(504));
    let open = ErrorRange {
        lower: None,
        upper: Some(199),
    };
    assert!(open.contains(100));
    assert!(!open.contains(200));
}
