//! The committed JSON Schemas match the Rust types. `UPDATE_SCHEMAS=1 cargo test -p iter8
//! --test schemas` rewrites them.

use std::path::PathBuf;

use iter8::model::schema::{experiment_schema, result_schema};

fn check(name: &str, schema: serde_json::Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    let fresh = serde_json::to_string_pretty(&schema).expect("json") + "\n";
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, &fresh).expect("write schema");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is out of date with the Rust types; run `UPDATE_SCHEMAS=1 cargo test -p iter8 --test schemas` and commit it",
        path.display()
    );
}

#[test]
fn experiment_schema_is_current() {
    check("experiment.json", experiment_schema());
}

#[test]
fn result_schema_is_current() {
    check("result.json", result_schema());
}

#[test]
fn experiment_schema_describes_the_envelope() {
    let s = experiment_schema().to_string();
    for needle in [
        "\"spec\"",
        "\"run\"",
        "\"if\"",
        "\"with\"",
        "\"assess\"",
        "SLOs",
    ] {
        assert!(s.contains(needle), "schema lacks {needle}");
    }
}
