//! Go templates (custommetrics provider templates, notify payloads): any template text
//! over a fixed data document renders or errors, never panics, overflows the stack or
//! runs unbounded.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Non-ASCII text too: a multi-byte character in an action made gtmpl's lexer thread panic
    // (seeds/gotemplate/gtmpl-lexer-panic); check_template refuses it before gtmpl reads it.
    let values = serde_json::json!({
        "a": 1, "s": "text", "l": [1, 2.5, "x", null], "m": {"k": {"n": true}},
        "Insights": {"NumVersions": 2}, "elapsedTimeSeconds": 10
    });
    let _ = iter8::tasks::gotemplate::render("fuzz", text, &values);
});
