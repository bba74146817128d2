use super::*;
use crate::model::{Slo, Slos, SlosSatisfied};

fn result(loops: u64, completed: usize, tasks: usize, failure: bool) -> ExperimentResult {
    let mut r = ExperimentResult::new(tasks);
    r.num_loops = loops;
    r.num_completed_tasks = completed;
    r.failure = failure;
    r
}

fn with_slos(mut r: ExperimentResult, ok: bool) -> ExperimentResult {
    let i = r.insights_mut();
    i.ensure_versions(&["v1".into()]);
    i.slos = Some(Slos {
        upper: vec![Slo {
            metric: "http/latency-mean".into(),
            limit: 10.0,
        }],
        lower: vec![],
    });
    i.slos_satisfied = Some(SlosSatisfied {
        upper: vec![vec![ok]],
        lower: vec![],
    });
    r
}

fn eval_str(src: &str, r: &ExperimentResult) -> bool {
    Condition::parse(src)
        .unwrap_or_else(|e| panic!("{e}"))
        .eval(r)
}

fn parse_err(src: &str) -> String {
    match Condition::parse(src) {
        Err(e) => e.to_string(),
        Ok(c) => panic!("{src:?} parsed as {c:?}"),
    }
}

#[test]
fn functions_follow_the_result() {
    let good = with_slos(result(1, 2, 2, false), true);
    let bad = with_slos(result(1, 1, 2, true), false);
    for (src, on_good, on_bad) in [
        ("SLOs()", true, false),
        ("Completed()", true, false),
        ("NoFailure()", true, false),
        ("Result.Failure", false, true),
        ("slos()", true, false),
    ] {
        assert_eq!(eval_str(src, &good), on_good, "{src} on good");
        assert_eq!(eval_str(src, &bad), on_bad, "{src} on bad");
    }
    // No SLOs at all: satisfied (nothing to violate).
    assert!(eval_str("SLOs()", &result(1, 0, 1, false)));
}

#[test]
fn comparison_functions_follow_the_comparisons() {
    use crate::model::verdicts::{
        Comparisons, MetricComparison, StatTest, Verdict, VersionComparison,
    };
    let mut r = result(1, 2, 2, false);
    assert!(!eval_str("Comparisons()", &r) && !eval_str("winner()", &r));
    let verdict = |v: Verdict| VersionComparison {
        version: 1,
        version_name: "v2".into(),
        verdict: v,
        baseline_samples: 100,
        samples: 100,
        statistic: None,
        p_value: None,
        method: None,
        effect: None,
        ci_lower: None,
        ci_upper: None,
        probability_greater: None,
        baseline_rate: None,
        rate: None,
        note: None,
    };
    let with = |v: Verdict, winner: Option<usize>| Comparisons {
        baseline: 0,
        baseline_name: "v1".into(),
        alpha: 0.05,
        min_samples: 20,
        metrics: vec![MetricComparison {
            metric: "http/latency".into(),
            test: StatTest::MannWhitneyU,
            versions: vec![verdict(v)],
            winner,
            winner_name: None,
        }],
    };
    r.insights_mut().comparisons = Some(with(Verdict::Better, Some(1)));
    assert!(eval_str("Comparisons() && Winner()", &r));
    r.insights_mut().comparisons = Some(with(Verdict::NoDifference, None));
    assert!(eval_str("Comparisons() && !Winner()", &r));
    r.insights_mut().comparisons = Some(with(Verdict::NotEnoughData, None));
    assert!(!eval_str("Comparisons()", &r));
    r.insights_mut().comparisons = Some(with(Verdict::Worse, Some(0)));
    assert!(eval_str("not Comparisons() and Winner()", &r));
    assert!(parse_err("Winner").contains("is a function: write Winner()"));
}

#[test]
fn truth_tables_of_not_and_or() {
    let r = result(1, 0, 1, false);
    for a in [false, true] {
        for b in [false, true] {
            let (sa, sb) = (a.to_string(), b.to_string());
            assert_eq!(eval_str(&format!("{sa} && {sb}"), &r), a && b);
            assert_eq!(eval_str(&format!("{sa} and {sb}"), &r), a && b);
            assert_eq!(eval_str(&format!("{sa} || {sb}"), &r), a || b);
            assert_eq!(eval_str(&format!("{sa} or {sb}"), &r), a || b);
            assert_eq!(eval_str(&format!("{sa} == {sb}"), &r), a == b);
            assert_eq!(eval_str(&format!("{sa} != {sb}"), &r), a != b);
        }
        assert_eq!(eval_str(&format!("!{a}"), &r), !a);
        assert_eq!(eval_str(&format!("not {a}"), &r), !a);
    }
}

#[test]
fn comparisons_and_arithmetic_on_result_fields() {
    let r = result(3, 1, 4, false);
    for (src, want) in [
        ("Result.NumLoops == 3", true),
        ("Result.NumLoops != 3", false),
        ("Result.NumLoops > 2", true),
        ("Result.NumLoops >= 3", true),
        ("Result.NumLoops < 3", false),
        ("Result.NumLoops <= 2.5", false),
        ("Result.NumLoops % 2 == 1", true),
        ("Result.NumLoops * 2 - 1 == 5", true),
        ("Result.NumLoops / 2 == 1.5", true),
        ("-Result.NumLoops < 0", true),
        ("Result.NumCompletedTasks == 1", true),
        ("Result.NumTasks == 4", true),
        ("Result.Insights.NumVersions == 0", true),
        ("result.numloops == 3", true),
    ] {
        assert_eq!(eval_str(src, &r), want, "{src}");
    }
}

#[test]
fn precedence_and_parentheses() {
    let r = result(1, 0, 1, false);
    // and binds tighter than or
    assert!(eval_str("true || false && false", &r));
    assert!(!eval_str("(true || false) && false", &r));
    // not binds tighter than and / or
    assert!(!eval_str("not true or false", &r));
    assert!(eval_str("not (true and false)", &r));
    assert!(eval_str("!false && !false", &r));
    // comparisons bind tighter than and; arithmetic tighter than comparisons
    assert!(eval_str("Result.NumLoops == 1 && 1 + 2 * 3 == 7", &r));
    assert!(eval_str("(1 + 2) * 3 == 9", &r));
    // left associativity
    assert!(eval_str("8 - 4 - 2 == 2", &r));
    assert!(eval_str("!!true", &r));
    assert!(eval_str("  SLOs()  ", &r));
}

#[test]
fn parse_errors_say_what_and_where() {
    assert!(parse_err("").contains("the condition is empty"));
    assert!(parse_err("SLOs(").contains("missing `)` after SLOs( at column 1"));
    assert!(parse_err("SLOs(1)").contains("SLOs() at column 1 takes no arguments"));
    assert!(parse_err("(true").contains("missing `)`"));
    assert!(parse_err("true)").contains("unexpected `)` at column 5"));
    assert!(parse_err("Slos").contains("is a function: write Slos()"));
    assert!(parse_err("Foo()").contains("unknown function Foo()"));
    assert!(parse_err("Result.NumLoop > 1").contains("unknown name `Result.NumLoop`"));
    assert!(parse_err("Result.NumLoops = 1").contains("use `==`"));
    assert!(parse_err("true & false").contains("use `&&` or `and`"));
    assert!(parse_err("true | false").contains("use `||` or `or`"));
    assert!(parse_err("Result.NumLoops").contains("is a number, not true/false"));
    assert!(parse_err("not Result.NumLoops").contains("needs a boolean"));
    assert!(parse_err("Result.NumLoops and true").contains("needs a boolean on both sides"));
    assert!(parse_err("true < 1").contains("needs a number on both sides"));
    assert!(parse_err("true == 1").contains("compares a boolean with a number"));
    assert!(parse_err("-true").contains("needs a number"));
    assert!(parse_err("true &&").contains("ends early"));
    assert!(parse_err("1.2.3 > 1").contains("bad number"));
    assert!(parse_err("true $").contains("unexpected character '$' at column 6"));
    let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_err(&deep).contains("nested more than 64 levels"));
    assert!(parse_err(&"!".repeat(10_000)).contains("nested more than 64 levels"));
    let ok = format!("{}true{}", "(".repeat(30), ")".repeat(30));
    assert!(Condition::parse(&ok).is_ok());
    let e = Condition::parse("SLOs() and").unwrap_err();
    assert_eq!(e.expression, "SLOs() and");
    assert!(e.to_string().starts_with("cannot parse \"SLOs() and\": "));
}
