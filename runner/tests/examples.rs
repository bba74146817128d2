//! The shipped examples (`examples/*.yaml` at the repository root) are valid experiments.

use std::path::PathBuf;

use iter8::engine::{prepare, EngineError};

#[test]
fn every_example_is_a_valid_experiment() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).expect("read example");
        match prepare(&text) {
            Ok(plan) => assert!(plan.num_tasks() > 0, "{}", path.display()),
            Err(EngineError::Invalid(problems)) => {
                // Until the http task is part of the task list, only that may be missing.
                assert_eq!(problems.len(), 1, "{}: {problems:?}", path.display());
                assert!(
                    problems[0].to_string().contains("unknown task `http`"),
                    "{}: {}",
                    path.display(),
                    problems[0]
                );
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    assert!(seen >= 4, "expected the shipped examples, found {seen}");
    let run_only = std::fs::read_to_string(dir.join("run-only.yaml")).expect("run-only");
    assert_eq!(
        prepare(&run_only).expect("run-only is valid").num_tasks(),
        3
    );
}
