//! Go templates (custommetrics provider templates, notify payloads): any template text
//! over a fixed data document renders or errors, never panics, overflows the stack or
//! runs unbounded.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Any UTF-8 text: gtmpl (vendor/gtmpl) lexes on this thread, so a panic or a loop in it is
    // a finding here (seeds/gotemplate holds the ones found so far).
    let values = serde_json::json!({
        "a": 1, "s": "text", "l": [1, 2.5, "x", null], "m": {"k": {"n": true}},
        "Insights": {"NumVersions": 2}, "elapsedTimeSeconds": 10
    });
    let _ = iter8::tasks::gotemplate::render("fuzz", text, &values);
    // gtmpl's parser on the raw text, without our pre-scan (gotemplate/scan.rs) in front: it
    // must error, not panic or hang, on whatever the pre-scan would have refused. Only within
    // the limits render enforces first (size, nesting: gtmpl's parser recurses), as render
    // does.
    if iter8::tasks::bounded::check_template(text).is_ok() {
        let _ = gtmpl::Template::default().parse(text);
    }
});
