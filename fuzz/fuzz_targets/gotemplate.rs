//! Go templates (custommetrics provider templates, notify payloads): any template text
//! over a fixed data document renders or errors, never panics, overflows the stack or
//! runs unbounded.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // gtmpl's lexer thread panics on a multi-byte character in an action (the first finding
    // of this target, seeds/gotemplate/gtmpl-lexer-panic); the runner turns that into a parse
    // error (a unit test proves it), but libFuzzer aborts on a panic in any thread.
    if !text.is_ascii() {
        return;
    }
    let values = serde_json::json!({
        "a": 1, "s": "text", "l": [1, 2.5, "x", null], "m": {"k": {"n": true}},
        "Insights": {"NumVersions": 2}, "elapsedTimeSeconds": 10
    });
    let _ = iter8::tasks::gotemplate::render("fuzz", text, &values);
});
