//! YAML → compile: any text is loaded or refused with an error, and every object that loads
//! ends Accepted or with a reason — never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway_fuzz::compile_yaml(data));
