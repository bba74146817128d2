//! JSON Schemas generated from the Rust types: `runner/schema/experiment.json` (the
//! experiment document) and `runner/schema/result.json` (the result). Committed; a test
//! regenerates them and fails on drift (`UPDATE_SCHEMAS=1` rewrites them).

use schemars::generate::SchemaSettings;

use super::result::ExperimentResult;
use super::spec::ExperimentDocument;

/// The schema of the experiment document.
pub fn experiment_schema() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator
        .into_root_schema_for::<ExperimentDocument>()
        .to_value();
    // `with:` may be left out (a task with all-default inputs): not required.
    if let Some(variants) = schema
        .pointer_mut("/$defs/TaskEntry/anyOf/0/oneOf")
        .and_then(|v| v.as_array_mut())
    {
        for v in variants {
            if let Some(req) = v.get_mut("required").and_then(|r| r.as_array_mut()) {
                req.retain(|f| f != "with");
            }
        }
    }
    schema
}

/// The schema of the result.
pub fn result_schema() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    generator
        .into_root_schema_for::<ExperimentResult>()
        .to_value()
}
