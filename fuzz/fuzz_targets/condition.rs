//! `if:` conditions: parse any text; evaluate what parses against a few results.
#![no_main]
use iter8::model::condition::Condition;
use iter8::model::ExperimentResult;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = Condition::parse(text) else {
        return;
    };
    let fresh = ExperimentResult::new(3);
    let _ = c.eval(&fresh);
    let mut later = ExperimentResult::new(2);
    later.num_loops = u32::MAX.into();
    later.num_completed_tasks = 1;
    later.failure = true;
    let _ = c.eval(&later);
});
