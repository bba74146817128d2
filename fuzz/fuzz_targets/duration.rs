//! Durations: a string, a YAML scalar; what parses formats and parses back to itself
//! (within rounding of the printed digits).
#![no_main]
use iter8::model::duration::{format_duration, parse_duration, GoDuration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        let shown = format_duration(d);
        if let Err(e) = parse_duration(&shown) {
            panic!("{text:?} parsed to {d:?}, shown as {shown:?}, which does not parse: {e}");
        }
    }
    // A bare number (JSON / YAML) is seconds: any number is a duration or an error.
    let _ = serde_json::from_str::<GoDuration>(text);
});
