//! Lambda answer mapping: any bytes from a function map to a response or to a reason (502),
//! in both payload formats, and a mapped status is a real HTTP status.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for v1 in [true, false] {
        if let Ok(status) = causeway_proxy::fuzzing::lambda_answer(data, v1) {
            assert!((100..1000).contains(&status));
        }
    }
});
