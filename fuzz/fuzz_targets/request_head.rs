//! Request head hygiene: any method, request target and `Host` headers are checked without a
//! panic, and a target whose path is refused is refused whatever the host says.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway_fuzz::request_head(data));
