//! SigV4 canonicalization: any method, target, headers and body are verified or refused
//! without a panic; random input never carries a valid signature.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut pieces = data.split(|b| *b == 0);
    let method = pieces.next().unwrap_or_default();
    let Ok(target) = std::str::from_utf8(pieces.next().unwrap_or_default()) else {
        return;
    };
    let body = pieces.next().unwrap_or_default();
    let raw: Vec<&[u8]> = pieces.collect();
    let headers: Vec<(&[u8], &[u8])> = raw
        .chunks(2)
        .filter_map(|c| Some((*c.first()?, *c.get(1)?)))
        .collect();
    let _ = causeway_proxy::fuzzing::sigv4(method, target, &headers, body);
});
