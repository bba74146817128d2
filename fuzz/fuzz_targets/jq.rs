//! jq expressions of custommetrics over a response body: input is `expression \0 json`.
//! Any pair gives a number or an error, never a panic or a stack overflow. Builtins that
//! can run forever on their own (`repeat`, `range`, `until`, ...) are left out here: the
//! task bounds them with its time budget, which a fuzzer would report as a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

const ENDLESS: [&str; 5] = ["repeat", "range", "until", "while", "recurse"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (expr, json) = text.split_once('\0').unwrap_or((text, "{\"a\":[1,2,{\"b\":3}]}"));
    if ENDLESS.iter().any(|w| expr.contains(w)) {
        return;
    }
    let _ = iter8::tasks::custommetrics::jq_first_number(expr, json.as_bytes());
});
