//! JSON Schemas generated from the Rust types: `runner/schema/experiment.json` (the
//! experiment document) and `runner/schema/result.json` (the result). Committed; a test
//! regenerates them and fails on drift (`UPDATE_SCHEMAS=1` rewrites them).

use schemars::generate::SchemaSettings;

use super::result::ExperimentResult;
use super::spec::ExperimentDocument;

/// The schema of the experiment document.
pub fn experiment_schema() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<ExperimentDocument>().to_value()
}

/// The schema of the result.
pub fn result_schema() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<ExperimentResult>().to_value()
}
