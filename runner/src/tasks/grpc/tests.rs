//! Parameter resolution and validation of the grpc task.

use super::*;

fn task(yaml: &str) -> GrpcTask {
    serde_yaml::from_str(yaml).unwrap()
}

fn err(yaml: &str) -> String {
    task(yaml).validate().unwrap_err().to_string()
}

#[test]
fn defaults_and_names() {
    let t = task("host: 127.0.0.1:1\ncall: helloworld.Greeter.SayHello\nconnectTimeout: 3s\n");
    let targets = t.targets().unwrap();
    assert_eq!(targets.len(), 1);
    let tg = &targets[0];
    assert_eq!(tg.plan.total, Some(200));
    assert_eq!(tg.plan.concurrency, 50);
    assert_eq!(tg.connections, 1);
    assert_eq!(tg.plan.rps, None);
    assert_eq!(tg.timeout, Duration::from_secs(20));
    assert_eq!(tg.connect_timeout, Duration::from_secs(3));
    assert_eq!(tg.source.value, Source::Reflection);
    assert_eq!(tg.service, "helloworld.Greeter");
    assert_eq!(tg.method, "SayHello");
    assert!(tg.tls.is_none());
    assert_eq!(t.metric_prefixes(), vec!["grpc"]);
    let t = task("host: h:1\ncall: a.S/M\nconnect-timeout: 1s\nduration: 2s\ntotal: 5\nrps: 0\n");
    let tg = &t.targets().unwrap()[0];
    assert_eq!(tg.connect_timeout, Duration::from_secs(1));
    assert_eq!(tg.plan.total, None, "duration wins over total, as in ghz");
    assert_eq!(tg.plan.duration, Some(Duration::from_secs(2)));
}

#[test]
fn endpoints_override_the_top_level_keys() {
    let t = task(
        "host: h:1\ncall: a.S/M\ntotal: 10\ndata: {name: top}\nendpoints:\n  v1: {}\n  v2: {host: other:2, total: 3, data: {name: v2}}\n",
    );
    let tg = t.targets().unwrap();
    assert_eq!(t.metric_prefixes(), vec!["grpc-v1", "grpc-v2"]);
    assert!(t.version_names().is_empty());
    assert_eq!(tg[0].host.value, "h:1");
    assert_eq!(tg[0].plan.total, Some(10));
    assert_eq!(tg[0].data.field, "data");
    assert_eq!(tg[1].host.value, "other:2");
    assert_eq!(tg[1].plan.total, Some(3));
    assert_eq!(tg[1].data.field, "endpoints.v2.data");
    assert_eq!(tg[1].prefix, "grpc-v2");
}

#[test]
fn bad_input_names_the_field() {
    assert!(err("call: a.S/M").starts_with("host: missing"));
    assert!(err("host: h:1").starts_with("call: missing"));
    assert!(err("host: h:1\ncall: SayHello").starts_with("call: \"SayHello\" is not a method name"));
    assert!(err("host: h:1\ncall: a.S/M\nproto: x.proto\nprotoset: y")
        .starts_with("protoset: give only one"));
    assert!(err("host: h:1\ncall: a.S/M\ndata: 3").starts_with("data: must be a JSON object"));
    assert!(err("host: h:1\ncall: a.S/M\ndata: [{a: 1}, 2]")
        .starts_with("data[1]: must be a JSON object"));
    assert!(
        err("host: h:1\ncall: a.S/M\nconcurrency: 2\nconnections: 3")
            .starts_with("connections: must be between 1 and concurrency (2)")
    );
    assert!(err("host: h:1\ncall: a.S/M\nrps: -1").starts_with("rps: must be 0"));
    assert!(err("host: h:1\ncall: a.S/M\ntotal: 0").starts_with("total: must be at least 1"));
    assert!(err("host: h:1\ncall: a.S/M\nprotoURL: file:///etc/x").starts_with("protoURL: "));
    assert!(err("host: h:1\ncall: a.S/M\nmetadata: {\"bad key\": x}")
        .starts_with("metadata.bad key: invalid metadata key"));
    assert!(err("call: a.S/M\nendpoints:\n  v1: {}\n").starts_with("endpoints.v1.host: missing"));
    assert!(err("host: h\ncall: a.S/M\nendpoints:\n  v1: {call: x}\n")
        .starts_with("endpoints.v1.call: \"x\" is not"));
    assert!(
        err("host: h\ncall: a.S/M\nwarmupNumRequests: 1\nwarmupDuration: 1s")
            .starts_with("warmupDuration: give either")
    );
    assert!(serde_yaml::from_str::<GrpcTask>("host: h\nnumRequests: 3").is_err());
}

#[test]
fn load_plan_follows_ghz_semantics() {
    let t = task("host: h:1\ncall: a.S/M\ntotal: 7\nconcurrency: 8\nconnections: 4\nrps: 50\nwarmupNumRequests: 3\ntimeout: 2s\n");
    let tg = &t.targets().unwrap()[0];
    let plan = tg.load_plan();
    assert_eq!(plan.stop, Stop::count(7));
    assert_eq!(
        plan.connections, 8,
        "the engine's workers are ghz's concurrency"
    );
    assert_eq!(plan.qps, 50.0);
    assert_eq!(plan.warmup, Some(Stop::count(3)));
    assert_eq!(plan.timeout, Duration::from_secs(2));
    assert_eq!(4 % plan.threads, 0, "a connection's workers share a thread");
    let t = task("host: h:1\ncall: a.S/M\nduration: 5s\nwarmupDuration: 1s\n");
    let plan = t.targets().unwrap()[0].load_plan();
    assert_eq!(plan.stop, Stop::duration(Duration::from_secs(5)));
    assert_eq!(plan.warmup, Some(Stop::duration(Duration::from_secs(1))));
    assert_eq!(plan.qps, 0.0);
    assert_eq!(plan.threads, 1);
    assert_eq!(threads_for(1), 1);
    assert!(threads_for(7) == 1 || threads_for(7) == 7);
}
