//! Request head hygiene: any method, request target and `Host` headers are checked without a
//! panic, and a target whose path is refused is refused whatever the host says.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut pieces = data.split(|b| *b == 0);
    let method = pieces.next().unwrap_or_default();
    let Ok(target) = std::str::from_utf8(pieces.next().unwrap_or_default()) else {
        return;
    };
    let hosts: Vec<&[u8]> = pieces.take(3).collect();
    if let Some(accepted) = causeway_proxy::fuzzing::request_head(method, target, &hosts)
        && accepted
    {
        let path = target.split('?').next().unwrap_or_default();
        if path.starts_with('/') {
            assert!(causeway_proxy::fuzzing::normalize_path(path).is_ok());
        }
    }
});
