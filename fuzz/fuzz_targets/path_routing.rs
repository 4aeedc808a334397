//! Path normalization and routing: normalizing is idempotent, and the path a route table
//! matches is the path that is forwarded (the normalized one, unchanged by a second pass).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway_fuzz::path_routing(data));
