//! SigV4 canonicalization: any method, target, headers and body are verified or refused
//! without a panic; random input never carries a valid signature.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway_fuzz::sigv4(data));
