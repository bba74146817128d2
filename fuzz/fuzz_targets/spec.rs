//! The experiment document: parse and validate any text without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(plan) = iter8::engine::prepare(text) {
            // A valid plan can describe itself.
            let _ = plan.num_tasks();
        }
    }
});
