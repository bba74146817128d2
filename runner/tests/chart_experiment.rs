//! The experiments the chart renders (the committed snapshots of charts/iter8/ci/*-values.yaml,
//! kept current by the chart tests) are valid for this runner: every task the runner knows
//! parses and validates. Tasks the runner does not know yet are listed, not failed, so the
//! check grows with the task set (it reads the names from the generated experiment schema).

use std::path::PathBuf;

use iter8::model::spec::parse_experiment;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn known_tasks() -> Vec<String> {
    let schema =
        std::fs::read_to_string(root().join("runner/schema/experiment.json")).expect("schema");
    let mut names: Vec<String> = schema
        .split("\"const\": \"")
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The experiment.yaml of the Secret in a rendered snapshot.
fn experiment_of(snapshot: &str) -> Option<String> {
    snapshot.split("\n---\n").find_map(|doc| {
        let v: serde_yaml::Value = serde_yaml::from_str(doc).ok()?;
        if v.get("kind")?.as_str()? != "Secret" {
            return None;
        }
        Some(
            v.get("stringData")?
                .get("experiment.yaml")?
                .as_str()?
                .to_string(),
        )
    })
}

#[test]
fn rendered_experiments_are_valid_for_the_runner() {
    let known = known_tasks();
    assert!(known.contains(&"ready".to_string()), "{known:?}");
    let dir = root().join("tests/chart/snapshots");
    let mut checked = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("snapshots") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).expect("read");
        let exp = experiment_of(&text)
            .unwrap_or_else(|| panic!("{}: no Secret with experiment.yaml", path.display()));
        let doc: serde_yaml::Value = serde_yaml::from_str(&exp).expect("experiment yaml");
        let metadata = doc.get("metadata").cloned().expect("metadata");
        let spec = doc
            .get("spec")
            .and_then(|s| s.as_sequence())
            .expect("spec list");
        for (i, task) in spec.iter().enumerate() {
            let name = task.get("task").and_then(|t| t.as_str()).unwrap_or("run");
            if !known.iter().any(|k| k == name) {
                eprintln!(
                    "{}: task {} ({name}) not known to this runner yet: skipped",
                    path.display(),
                    i + 1
                );
                continue;
            }
            let mut one = serde_yaml::Mapping::new();
            one.insert("metadata".into(), metadata.clone());
            one.insert(
                "spec".into(),
                serde_yaml::Value::Sequence(vec![task.clone()]),
            );
            let yaml = serde_yaml::to_string(&one).expect("yaml");
            let parsed = parse_experiment(&yaml).unwrap_or_else(|e| {
                panic!("{}: task {} ({name}): {e}\n{yaml}", path.display(), i + 1)
            });
            for t in &parsed.tasks {
                t.spec
                    .validate()
                    .unwrap_or_else(|e| panic!("{}: task {} ({name}): {e}", path.display(), i + 1));
            }
            checked += 1;
        }
    }
    assert!(
        files >= 3,
        "expected the job, cronjob and none snapshots, found {files}"
    );
    assert!(checked >= 2, "only {checked} rendered tasks were checked");
}
