//! Fuzz target: index spec strings (`IndexSpec::parse`, then `validate_spec` for a
//! dimension taken from the input). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vladdb::codecs::index::validate_spec;
use vladdb::codecs::spec::IndexSpec;

fuzz_target!(|data: &[u8]| {
    let (dim, text) = match data.split_first() {
        Some((d, rest)) => (*d as usize * 7 + 1, rest),
        None => return,
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Ok(spec) = IndexSpec::parse(text) {
        let _ = validate_spec(&spec, dim);
        // The canonical form must parse back to the same spec.
        let again = IndexSpec::parse(&spec.to_string()).expect("canonical spec reparses");
        assert_eq!(again.to_string(), spec.to_string());
    }
});
