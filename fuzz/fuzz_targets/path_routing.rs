//! Path normalization and routing: normalizing is idempotent, and the path a route table
//! matches is the path that is forwarded (the normalized one, unchanged by a second pass).
#![no_main]

use causeway_snapshot::{RouteMatch, RouteMethod, RouteTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(once) = causeway_proxy::fuzzing::normalize_path(raw) else {
        return;
    };
    let twice = causeway_proxy::fuzzing::normalize_path(&once)
        .expect("a normalized path normalizes again");
    assert_eq!(once, twice, "normalize is not idempotent for {raw:?}");
    assert!(once.starts_with('/'), "{once:?} is not absolute");
    let routes = [
        ("GET /pets/{id}", "/pets/{id}"),
        ("GET /files/{proxy+}", "/files/{*proxy}"),
        ("ANY /{proxy+}", "/{*proxy}"),
    ];
    let table = RouteTable::build(routes.iter().map(|(key, pattern)| {
        let method = if key.starts_with("ANY") {
            RouteMethod::Any
        } else {
            RouteMethod::Get
        };
        let matcher = RouteMatch::Path {
            method,
            pattern: pattern.to_string(),
        };
        (key.to_string(), matcher, key.to_string())
    }))
    .expect("routes build");
    if let Some(hit) = table.lookup("GET", &once) {
        // Parameters are pieces of the path that is forwarded, never more.
        for (_, value) in &hit.params {
            assert!(once.contains(value.as_str()), "{value:?} not in {once:?}");
        }
    }
});
