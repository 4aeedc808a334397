//! Lambda answer mapping: any bytes from a function map to a response or to a reason (502),
//! in both payload formats, and a mapped status is a real HTTP status.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway_fuzz::lambda_answer(data));
