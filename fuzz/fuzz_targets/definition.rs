//! A workflow definition file (YAML, or JSON when it starts with `{`) through parsing,
//! conversion and validation: see `wfm::fuzzing::definition`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wfm::fuzzing::definition(data));
