//! Rendering as Go's text/template and Helm's Sprig do.

use super::*;
use serde_json::json;

fn r(t: &str, d: serde_json::Value) -> Result<String, TemplateError> {
    render("t", t, &d)
}

#[test]
fn sprig_functions_behave_as_in_helm() {
    let d = json!({"a": "x", "n": 3, "labels": {"app": "web"}, "l": ["p", "q"]});
    assert_eq!(
        r(r#"{{ .missing | default "d" }}"#, d.clone()).unwrap(),
        "d"
    );
    assert_eq!(r(r#"{{ .a | default "d" }}"#, d.clone()).unwrap(), "x");
    assert_eq!(r(r#"{{ .a | quote }}"#, d.clone()).unwrap(), "\"x\"");
    assert_eq!(r(r#"{{ .a | upper }}"#, d.clone()).unwrap(), "X");
    assert_eq!(r(r#"{{ join "," .l }}"#, d.clone()).unwrap(), "p,q");
    assert_eq!(r(r#"{{ add .n 2 }}"#, d.clone()).unwrap(), "5");
    assert_eq!(r(r#"{{ div 7 2 }}"#, d.clone()).unwrap(), "3");
    assert_eq!(r(r#"{{ mul .n 1.5 }}"#, d.clone()).unwrap(), "4.5");
    assert_eq!(r(r#"{{ divf 50 100 }}"#, d.clone()).unwrap(), "0.5");
    assert_eq!(
        r(r#"{{ divf 99.9 100 }}"#, d.clone()).unwrap(),
        "0.9990000000000001"
    );
    assert_eq!(r(r#"{{ max .n 10 }}"#, d.clone()).unwrap(), "10");
    assert_eq!(
        r(r#"{{ replace "a" "b" "banana" }}"#, d.clone()).unwrap(),
        "bbnbnb"
    );
    assert_eq!(
        r(r#"{{ toJson .labels }}"#, d.clone()).unwrap(),
        r#"{"app":"web"}"#
    );
    assert_eq!(
        r(r#"{{ toJson (dict "k" (list 1 "two")) }}"#, d.clone()).unwrap(),
        r#"{"k":[1,"two"]}"#
    );
    assert_eq!(r(r#"{{ "a b" | b64enc }}"#, d.clone()).unwrap(), "YSBi");
    assert_eq!(
        r(r#"{{ printf "%d-%s" .n .a }}"#, d.clone()).unwrap(),
        "3-x"
    );
    assert_eq!(
        r(r#"{{ "a b&c" | urlquery }}"#, d.clone()).unwrap(),
        "a+b%26c"
    );
    assert_eq!(r(r#"{{ kindOf .labels }}"#, d.clone()).unwrap(), "map");
    assert_eq!(r(r#"{{ float64 "1.5" }}"#, d.clone()).unwrap(), "1.5");
    assert_eq!(r(r#"{{ int 2.7 }}"#, d.clone()).unwrap(), "2");
    assert_eq!(r(r#"{{ trim "  z " }}"#, d.clone()).unwrap(), "z");
    assert_eq!(
        r(
            "{{- range $k, $v := .labels }}{{ $k }}={{ $v }}{{ end }}",
            d.clone()
        )
        .unwrap(),
        "app=web"
    );
}

#[test]
fn iter8_style_templates_with_define_and_fail() {
    let t = r#"{{- define "labels" }}
{{- range $key, $val := .labels }}
{{- if or (eq (kindOf $val) "slice") (eq (kindOf $val) "map") }}
{{- fail (printf "labels should be primitive but %s is not" $key) }}
{{- end }}{{ $key }}="{{ $val }}",
{{- end }}
{{- end -}}
q: sum(m{ {{- template "labels" . }}}[{{ .elapsedTimeSeconds }}s])"#;
    let out = r(
        t,
        json!({"labels": {"app": "web"}, "elapsedTimeSeconds": 5}),
    )
    .unwrap();
    assert_eq!(out, "q: sum(m{app=\"web\",}[5s])");
    let e = r(
        t,
        json!({"labels": {"app": ["x"]}, "elapsedTimeSeconds": 5}),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("labels should be primitive but app is not"),
        "{msg}"
    );
    assert!(msg.contains("line 4"), "{msg}");
}

#[test]
fn syntax_errors_name_template_and_line() {
    let e = r("a: 1\nb: {{ .x \n", json!({})).unwrap_err();
    assert!(
        matches!(e, TemplateError::Parse { line: Some(2), .. }),
        "{e}"
    );
    let e = r("a: 1\nb: 2\nc: {{ nosuchfn .x }}\n", json!({})).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("\"t\" line 3"), "{msg}");
    assert!(msg.contains("nosuchfn"), "{msg}");
}

#[test]
fn missing_value_is_an_error_with_its_line() {
    let e = r("a: 1\nb: {{ .x }}\n", json!({"y": 1})).unwrap_err();
    assert_eq!(
        e,
        TemplateError::MissingValue {
            name: "t".into(),
            line: Some(2),
            snippet: "b: <no value>".into()
        }
    );
    let e = r(
        "a: 1\n\nq: {{ required \"set labels\" .labels }}\n",
        json!({}),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("line 3") && msg.contains("set labels"),
        "{msg}"
    );
}

/// A provider template in the shape of Iter8 v0.14's Istio template (the one the v0.15
/// custom-metrics tutorials fetch; written here from the structure of iter8-tools/iter8
/// `testdata/custommetrics/istio-prom.tpl`): a `define`d label block ranging over
/// `.labels` with `kindOf` / `fail` / `printf`, a defaulted URL, and one metric per
/// `.latencyPercentiles` entry using `$`.
const ISTIO_SHAPE: &str = r#"# Iter8 substitutes the placeholders (labels, latencyPercentiles: optional)
{{- define "labels"}}
{{- range $key, $val := .labels }}
{{- if or (eq (kindOf $val) "slice") (eq (kindOf $val) "map")}}
{{- fail (printf "labels should be a primitive types but received: %s" $key) }}
{{- end }}
        {{ $key }}="{{ $val }}",
{{- end }}
{{- end}}

url: {{ .istioPromURL | default "http://prometheus.istio-system:9090/api/v1/query" }}
metrics:
- name: request-count
  params:
  - name: query
    value: |
      sum(last_over_time(istio_requests_total{
        {{- template "labels" . }}
      }[{{ .elapsedTimeSeconds }}s])) or on() vector(0)
{{- range $i, $p := .latencyPercentiles }}
- name: latency-p{{ $p }}
  params:
  - name: query
    value: |
      histogram_quantile(0.{{ $p }}, sum(rate(istio_request_duration_milliseconds_bucket{
        {{- template "labels" $ }}
      }[{{ $.elapsedTimeSeconds }}s])) by (le))
{{- end }}"#;

#[test]
fn range_over_missing_values_runs_zero_times_as_in_go() {
    // Neither labels nor latencyPercentiles: Go ranges zero times (gtmpl alone refused).
    let out = r(ISTIO_SHAPE, json!({"elapsedTimeSeconds": 30})).unwrap();
    assert!(
        out.contains("url: http://prometheus.istio-system:9090/api/v1/query\n"),
        "{out}"
    );
    assert!(
        out.contains("sum(last_over_time(istio_requests_total{\n      }[30s]))"),
        "{out}"
    );
    assert!(!out.contains("latency-p"), "{out}");
    assert!(!out.contains('\u{E000}'), "markers removed: {out:?}");
    // With both: a label line per label, a metric per percentile.
    let out = r(
        ISTIO_SHAPE,
        json!({"elapsedTimeSeconds": 30, "labels": {"destination_workload": "web-v1"},
               "latencyPercentiles": [50, 95]}),
    )
    .unwrap();
    assert_eq!(out.matches("destination_workload=\"web-v1\",").count(), 3);
    assert!(out.contains("- name: latency-p95"), "{out}");
    assert!(out.contains("histogram_quantile(0.95,"), "{out}");
    // else runs when a range over a missing value is empty; with and if skip it.
    assert_eq!(
        r(
            "{{ range .none }}x{{ else }}empty{{ end }}|{{ with .none }}w{{ end }}|{{ if .none }}i{{ end }}",
            json!({})
        )
        .unwrap(),
        "empty||"
    );
}

#[test]
fn errors_name_the_line_of_the_action_that_failed() {
    // The failing `fail` is inside the define (line 5), reached through `template`.
    let e = r(
        ISTIO_SHAPE,
        json!({"elapsedTimeSeconds": 30, "labels": {"app": ["a", "b"]}}),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("line 5"), "{msg}");
    assert!(msg.contains("received: app"), "{msg}");
    // The word of the message (div) appears on an earlier action: the failing one is line 3.
    let e = r(
        "{{- $divisor := .d }}\nratio:\nq: {{ div 10 $divisor }}\n",
        json!({"d": 0}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("line 3"), "{e}");
    // A missing value printed on line 2; the same name is present under `with` on line 1.
    let e = r(
        "{{ with .inner }}x: {{ .name }}{{ end }}\ny: {{ .name }}\n",
        json!({"inner": {"name": "n"}}),
    )
    .unwrap_err();
    assert!(
        matches!(&e, TemplateError::MissingValue { line: Some(2), snippet, .. } if snippet == "y: <no value>"),
        "{e:?}"
    );
}

#[test]
fn instrumenting_keeps_whitespace_trimming_and_strings() {
    let t = "a:  {{- \"}}\" -}}  b {{ `{{x}}` }}\n{{/* c {{ */}}{{- range $k := .l -}} {{ $k }} {{- end }}";
    assert_eq!(r(t, json!({"l": [1, 2]})).unwrap(), "a:}}b {{x}}\n12");
}

/// Found by the `gotemplate` fuzz target: gtmpl's lexer panicked (a byte index inside a
/// multi-byte character) on a non-ASCII character in an action. The patched lexer steps back
/// whole characters and refuses the character as Go does.
#[test]
fn a_template_gtmpl_panicked_on_is_an_error() {
    let text = "{{ printf \"%d\" .a \u{e000}| quote }}";
    let e = render("t", text, &json!({"a": 1})).expect_err("Go refuses it too");
    assert!(
        matches!(&e, TemplateError::Parse { message, .. } if message.contains("unrecognized character")),
        "{e}"
    );
}

/// Found by the `spec` fuzz target through notify's payloadTemplate: the same gtmpl panic.
/// Go reads non-ASCII letters in names and anywhere in strings and text; so do we now.
#[test]
fn non_ascii_in_actions_reads_as_in_go() {
    let e = render("t", "{{ \u{4b4}ummar|J ts yoon }}", &json!({})).expect_err("no such function");
    assert!(matches!(&e, TemplateError::Parse { .. }), "{e}");
    let out = render(
        "t",
        "naïve {{ \"ключ\" }} {{ `ü` }} {{ index . \"ключ\" }} {{ .clé }} {{ $é := 2 }}{{ $é }}",
        &json!({"ключ": 7, "clé": 8}),
    )
    .expect("non-ASCII in names, strings and text renders");
    assert_eq!(out, "naïve ключ ü 7 8 2");
}

/// Found by the `spec` fuzz target: an action left open after a pipe made gtmpl's parser
/// wait forever (notify validates its payloadTemplate before anything runs).
#[test]
fn an_action_left_open_after_a_pipe_is_an_error() {
    let e = render("t", "{{ .Summary | toJson   ", &json!({})).expect_err("unclosed");
    assert!(matches!(e, TemplateError::Parse { .. }), "{e}");
}

/// gtmpl itself (vendored, patched) no longer hangs or panics on texts left open: each is an
/// error from it, not only from our pre-scan.
#[test]
fn the_patched_engine_itself_errors_on_texts_left_open() {
    for text in [
        "{{ .Summary | toJson   ",
        "{{ \"abc }}\n",
        "{{ 'a }}",
        "x {{ `abc }}",
        "{{/* abc }}",
        "a\nb {{{{ runs. (`run: x }} y }} z` requ ",
        "{{-  - \u{e000}|d \" }} \"%\" }}",
        "{{\"\\u\"}}",
    ] {
        assert!(gtmpl::Template::default().parse(text).is_err(), "{text:?}");
    }
}

/// Found by the 10-minute fuzz runs: a raw string opened in an action that swallows every
/// later `}}` (gtmpl's parser waited forever), and a multi-byte character in an action that
/// sits before a quote our older check took for the action's string. Both are refused with
/// the line, quickly.
#[test]
fn texts_left_open_are_refused_with_their_line() {
    let hang = "a\nb {{{{ runs. (`run: x }} y }} z` requ ";
    let e = render("t", hang, &json!({})).expect_err("unclosed");
    assert!(
        matches!(&e, TemplateError::Parse { line: Some(2), message, .. } if message.contains("unclosed action")),
        "{e}"
    );
    let panic = "{{-  - \u{e000}|d \" }} \"%\" }}";
    let e = render("t", panic, &json!({})).expect_err("refused");
    assert!(
        matches!(&e, TemplateError::Parse { message, .. } if message.contains("unterminated quoted string")),
        "{e}"
    );
    for (text, what) in [
        ("{{ \"abc }}\n", "unterminated quoted string"),
        ("{{ 'a }}", "unterminated character constant"),
        ("x {{ `abc }}", "unterminated raw string"),
        ("{{/* abc }}", "unclosed comment"),
        ("{{ \"a\\", "unterminated quoted string"),
    ] {
        let e = render("t", text, &json!({})).expect_err(text);
        assert!(
            matches!(&e, TemplateError::Parse { message, .. } if message.contains(what)),
            "{text:?}: {e}"
        );
    }
    // Strings, raw strings over lines, comments and trim markers still work.
    let ok = "{{- /* c }} */ -}} {{ \"}}\" }}{{ `a\n}}` }}{{ 'x' }}";
    assert_eq!(render("t", ok, &json!({})).expect("renders"), "}}a\n}}120");
}

/// Found by a 10-minute run of the gotemplate fuzz target (in the shipped istio provider
/// template, mutated): `{{- ` after a multi-byte character made gtmpl's lexer panic. Go reads
/// it; so do we, with the same output and lines.
#[test]
fn a_trimmed_action_after_a_multi_byte_character_renders_as_in_go() {
    let data = json!({"l": [1, 2]});
    assert_eq!(
        render("t", "ok ✅\n  {{- range .l }} {{ . }}{{ end }}", &data).expect("renders"),
        "ok ✅ 1 2"
    );
    assert_eq!(render("t", "é{{- 1 -}} ü", &data).expect("renders"), "é1ü");
    assert_eq!(
        render("t", "é \u{a0}{{- 1 }}", &data).expect("renders"),
        "é \u{a0}1"
    );
    // A later error still names the line as written.
    let e = render("t", "✅\n{{- .l }}\n{{ .missing.x }}", &data).expect_err("missing");
    assert!(
        matches!(&e, TemplateError::Render { line: Some(3), .. }),
        "{e:?}"
    );
}

/// Found by a 10-minute run of the gotemplate fuzz target: gtmpl looped forever unquoting
/// `"\u"`. Invalid escapes are refused as Go refuses them; valid ones still work.
#[test]
fn invalid_escapes_in_strings_are_refused_and_valid_ones_work() {
    for bad in [
        r#"{{"\u"}}"#,
        r#"{{ "\q" }}"#,
        r#"{{ '\xZ' }}"#,
        r#"{{ "\ud800" }}"#,
        r#"{{ "\400" }}"#,
    ] {
        let e = render("t", bad, &json!({})).expect_err(bad);
        assert!(
            matches!(&e, TemplateError::Parse { line: Some(1), message, .. } if message.contains("invalid escape")),
            "{bad}: {e}"
        );
    }
    let ok = r#"{{ "a\tb\u00e9\x41\101\a\v" }}"#;
    assert_eq!(
        render("t", ok, &json!({})).expect("renders"),
        "a\tbéAA\u{7}\u{b}"
    );
}

/// Found by a 10-minute run of the gotemplate fuzz target: gtmpl's lexer read `"\\\\"` as
/// an escaped quote and ran on past it (its parser then waited forever on `{{"\\\\"}}" `).
/// The patched lexer reads it as Go does: two backslashes that unquote to one.
#[test]
fn strings_ending_in_an_escaped_backslash_render_as_in_go() {
    let data = json!({});
    assert_eq!(
        render("t", r#"{{"\\"}}" "#, &data).expect("renders"),
        "\\\" "
    );
    assert_eq!(
        render("t", r#"{{ "a\\\\" }}"#, &data).expect("renders"),
        "a\\\\"
    );
    assert_eq!(
        render("t", r#"{{ "a\\\\b" }}"#, &data).expect("renders"),
        "a\\\\b"
    );
    assert_eq!(render("t", r#"{{ '\\' }}"#, &data).expect("renders"), "92");
    let e = render("t", r#"{{ '\\\\' }}"#, &data).expect_err("two characters");
    assert!(matches!(&e, TemplateError::Parse { .. }), "{e}");
}

/// Found by a 3-minute gotemplate fuzz run: gtmpl unquoted raw strings too (a `\b` in one
/// became a backspace) and panicked on one ending in a backslash. Raw strings are now taken as
/// written, as in Go.
#[test]
fn raw_strings_are_taken_as_written() {
    let data = json!({});
    assert_eq!(render("t", "{{ `a\\` }}", &data).expect("renders"), "a\\");
    assert_eq!(
        render("t", "{{ `\\b\\n\\u` }}", &data).expect("renders"),
        "\\b\\n\\u"
    );
}

/// Found by an 11-minute gotemplate fuzz run on the vendored gtmpl: a printf width Rust's
/// formatting cannot take (over 65535) panicked; it is an error naming the format.
#[test]
fn a_printf_width_rust_cannot_format_is_an_error() {
    let e = render("t", "{{ printf \"%070000d\" 1 }}", &json!({})).expect_err("too wide");
    assert!(e.to_string().contains("over 65535"), "{e}");
    assert_eq!(
        render("t", "{{ printf \"%5d\" 1 }}", &json!({})).expect("renders"),
        "    1"
    );
}
