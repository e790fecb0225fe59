//! A template (and optionally, after a NUL byte, a JSON context) through checking and
//! evaluation: see `wfm::fuzzing::template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wfm::fuzzing::template(data));
