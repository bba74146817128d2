//! A stored result as `iter8 report` / `assert` read it: parse, then render every format
//! and check every assert condition, without panicking or allocating from one number.
#![no_main]
use iter8::report::{render, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(result) = iter8::model::result::parse_result(text) else {
        return;
    };
    for format in [Format::Text, Format::Json, Format::Yaml, Format::Html] {
        let _ = render(&result, format, false);
    }
    for c in [
        iter8::cli::Condition::Completed,
        iter8::cli::Condition::NoFailure,
        iter8::cli::Condition::Slos,
    ] {
        if !c.holds(&result) {
            let _ = c.explain(&result);
        }
    }
});
