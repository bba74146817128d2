use super::*;

#[test]
fn jq_numbers_and_numeric_strings() {
    let prom = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"1.5"]}]}}"#;
    assert_eq!(jq_first_number(".data.result[0].value[1]", prom), Ok(1.5));
    assert_eq!(
        jq_first_number(".data.result[0].value[1] | tonumber", prom),
        Ok(1.5)
    );
    assert_eq!(
        jq_first_number(".a[] | .x", br#"{"a":[{"x":3},{"x":4}]}"#),
        Ok(3.0)
    );
    let none = br#"{"data":{"result":[]}}"#;
    assert!(jq_first_number(".data.result[0].value[1]", none)
        .unwrap_err()
        .contains("no data"));
    assert!(jq_first_number(".s", br#"{"s":"abc"}"#)
        .unwrap_err()
        .contains("not a number"));
    assert!(jq_first_number(".s", br#"{"s":"NaN"}"#)
        .unwrap_err()
        .contains("NaN"));
    assert!(jq_first_number(".[", b"{}")
        .unwrap_err()
        .contains("does not parse"));
    assert!(jq_first_number("nosuchfn", b"{}")
        .unwrap_err()
        .contains("does not compile"));
    assert!(jq_first_number(".", b"not json")
        .unwrap_err()
        .contains("not JSON"));
}

#[test]
fn sources_resolve_and_validate() {
    let t: CustomMetricsTask = serde_yaml::from_str(
        r#"
templates:
  a: builtin:prometheus
  b: https://example.com/x.tpl
  c: /etc/t.tpl
  d: "url: {{ .u }}"
  e: {file: /x}
"#,
    )
    .unwrap();
    t.validate().unwrap();
    assert_eq!(
        t.templates["a"].resolve(),
        Ok(Source::Builtin("prometheus"))
    );
    assert_eq!(
        t.templates["b"].resolve(),
        Ok(Source::Url("https://example.com/x.tpl"))
    );
    assert_eq!(t.templates["c"].resolve(), Ok(Source::File("/etc/t.tpl")));
    assert_eq!(
        t.templates["d"].resolve(),
        Ok(Source::Inline("url: {{ .u }}"))
    );
    assert_eq!(t.templates["e"].resolve(), Ok(Source::File("/x")));
    assert_eq!(t.metric_prefixes(), vec!["a", "b", "c", "d", "e"]);

    let bad: CustomMetricsTask = serde_yaml::from_str("templates: {a: 'builtin:nope'}").unwrap();
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("templates.a") && e.contains("prometheus"), "{e}");
    let bad: CustomMetricsTask =
        serde_yaml::from_str("templates: {a: {file: x, url: 'http://h'}}").unwrap();
    assert!(bad.validate().is_err());
    let bad: CustomMetricsTask = serde_yaml::from_str(
        "templates: {a: builtin:istio}\nauth: {a: {bearerTokenFile: /t, bearerTokenEnv: T}}",
    )
    .unwrap();
    assert!(bad.validate().unwrap_err().to_string().contains("auth.a"));
    let bad: CustomMetricsTask = serde_yaml::from_str(
        "templates: {a: builtin:istio}\nversionValues: [{}, {}]\nversionNames: [x]",
    )
    .unwrap();
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("versionNames"));
    assert!(serde_yaml::from_str::<CustomMetricsTask>("templates: {}\nbogus: 1").is_err());
}

#[test]
fn json_schema_documents_the_inputs() {
    let schema = serde_json::to_value(schemars::schema_for!(CustomMetricsTask)).unwrap();
    let props = &schema["properties"];
    for key in [
        "templates",
        "values",
        "versionValues",
        "versionNames",
        "startingTime",
        "auth",
        "failOnError",
        "timeout",
    ] {
        assert!(props.get(key).is_some(), "{key} missing from {schema}");
    }
    assert_eq!(schema["additionalProperties"], false);
    assert!(props["templates"]["description"]
        .as_str()
        .unwrap()
        .contains("builtin:prometheus"));
}

#[test]
fn starting_time_in_the_go_layout_iter8_users_write() {
    let t: CustomMetricsTask = serde_yaml::from_str(
        "templates: {p: builtin:prometheus}\nversionValues:\n\
         - {startingTime: \"Jan 1, 2024 at 12:10am (UTC)\"}\n\
         - {startingTime: \"yesterday\"}\n",
    )
    .unwrap();
    let start = DateTime::parse_from_rfc3339("2024-01-01T00:20:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let d0 = t.template_data(0, start, start).unwrap();
    assert_eq!(d0["elapsedTimeSeconds"], 600);
    let e = t.validate().unwrap_err().to_string();
    assert!(e.contains("versionValues[1].startingTime"), "{e}");
    assert!(e.contains("Jan 2, 2006") || e.contains("at 12:00pm"), "{e}");
}

#[test]
fn values_merge_per_version_with_elapsed_time() {
    let t: CustomMetricsTask = serde_yaml::from_str(
        r#"
templates: {p: builtin:prometheus}
values: {labels: {app: web, version: v1}, x: 1}
versionValues:
- {}
- {labels: {version: v2}, startingTime: "2024-01-01T00:00:00Z"}
versionNames: [stable, canary]
"#,
    )
    .unwrap();
    let start = DateTime::parse_from_rfc3339("2024-01-01T00:10:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let now = start + chrono::Duration::seconds(42);
    let d0 = t.template_data(0, start, now).unwrap();
    let d1 = t.template_data(1, start, now).unwrap();
    assert_eq!(d0["labels"]["version"], "v1");
    assert_eq!(d0["elapsedTimeSeconds"], 42);
    assert_eq!(d0["Values"]["x"], 1);
    assert_eq!(d1["labels"]["version"], "v2");
    assert_eq!(d1["labels"]["app"], "web");
    assert_eq!(d1["elapsedTimeSeconds"], 642);
    assert_eq!(d1["Version"]["name"], "canary");
    // the task's startingTime moves the window start of versions without their own
    let mut t2 = t.clone();
    t2.starting_time = Some(start - chrono::Duration::seconds(100));
    assert_eq!(
        t2.template_data(0, start, now).unwrap()["elapsedTimeSeconds"],
        142
    );
    assert_eq!(
        t2.template_data(1, start, now).unwrap()["elapsedTimeSeconds"],
        642
    );
}

#[test]
fn shipped_templates_render_to_valid_specs() {
    for (name, text) in BUILTIN_PROVIDERS {
        let data = serde_json::json!({
            "labels": {"app": "web", "version": "v2"},
            "elapsedTimeSeconds": 0,
            "latencyPercentiles": [50, 99.9],
        });
        let spec = render_spec(name, text, &data).unwrap();
        let names: Vec<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "request-count",
                "error-count",
                "error-rate",
                "latency-mean",
                "latency-p50",
                "latency-p99.9"
            ],
            "{name}"
        );
        let q = &spec.metrics[0].params.as_ref().unwrap()[0].value;
        assert!(q.contains("app=\"web\""), "{q}");
        assert!(q.contains("[60s]"), "{q}");
        let p50 = &spec.metrics[4].params.as_ref().unwrap()[0].value;
        assert!(p50.contains("histogram_quantile(0.5,"), "{p50}");
        // a window as long as the elapsed time, once longer than the minimum
        let later = serde_json::json!({"elapsedTimeSeconds": 90});
        let spec = render_spec(name, text, &later).unwrap();
        let q = &spec.metrics[0].params.as_ref().unwrap()[0].value;
        assert!(q.contains("[90s]"), "{q}");
    }
}
