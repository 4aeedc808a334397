//! The properties the fuzz targets check, one function per target. `fuzz_targets/*` hand them
//! libFuzzer's input (`bench/fuzz.sh`); `tests/tests/fuzz_corpus.rs` replays `fuzz/corpus/*`
//! and a few seconds of mutations of it through the same functions on every `.ci/run`, on the
//! stable toolchain. Each function returns normally or panics with the property it broke.

use causeway_compile::{CompileOptions, Inventory, compile};
use causeway_snapshot::{RouteMatch, RouteMethod, RouteTable};

/// Path normalization and routing: normalizing is idempotent, and the path a route table
/// matches is the path that is forwarded (the normalized one, unchanged by a second pass).
pub fn path_routing(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(once) = causeway_proxy::fuzzing::normalize_path(raw) else {
        return;
    };
    let twice =
        causeway_proxy::fuzzing::normalize_path(&once).expect("a normalized path normalizes again");
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
}

/// Request head hygiene: any method, request target and `Host` headers (NUL-separated) are
/// checked without a panic, and a target whose path is refused is refused whatever the host
/// says.
pub fn request_head(data: &[u8]) {
    let mut pieces = data.split(|b| *b == 0);
    let method = pieces.next().unwrap_or_default();
    let Ok(target) = std::str::from_utf8(pieces.next().unwrap_or_default()) else {
        return;
    };
    let hosts: Vec<&[u8]> = pieces.take(3).collect();
    if let Some(accepted) = causeway_proxy::fuzzing::request_head(method, target, &hosts)
        && accepted
    {
        // `request_head` refused nothing, so the path it checked (the Uri's: no query, no
        // fragment) normalizes.
        if let Ok(uri) = target.parse::<http::Uri>()
            && uri.path().starts_with('/')
        {
            assert!(causeway_proxy::fuzzing::normalize_path(uri.path()).is_ok());
        }
    }
}

/// YAML → compile: any text is loaded or refused with an error, and every object that loads
/// ends Accepted or with a reason — never a panic.
pub fn compile_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut inventory = Inventory::default();
    if inventory.add_yaml("fuzz.yaml", text).is_err() {
        return;
    }
    let compiled = compile(&inventory, &CompileOptions::default());
    for status in &compiled.statuses {
        let accepted = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Accepted")
            .expect("every object has an Accepted condition");
        if accepted.status != "True" {
            assert!(!accepted.reason.is_empty(), "refused without a reason");
        }
    }
}

/// Lambda answer mapping: any bytes from a function map to a response or to a reason (502),
/// in both payload formats, and a mapped status is a real HTTP status.
pub fn lambda_answer(data: &[u8]) {
    for v1 in [true, false] {
        if let Ok(status) = causeway_proxy::fuzzing::lambda_answer(data, v1) {
            assert!((100..1000).contains(&status));
        }
    }
}

/// SigV4 canonicalization: any method, target, headers and body (NUL-separated) are verified
/// or refused without a panic.
pub fn sigv4(data: &[u8]) {
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
}

/// Names the functions, pools and schemes the `openapi_import` corpus uses, so that mutations
/// reach the integration and authorizer code behind the mapping file.
const IMPORT_MAPPING: &str = "lambda:\n  f: {uri: \"http://127.0.0.1:9000\"}\n  calc: {uri: \"http://127.0.0.1:9050\"}\ncognito:\n  us-east-1_AbCd: {audiences: [web]}\nsecuritySchemes:\n  oauth: {issuer: \"https://idp.example.com\", audiences: [api]}\n";

/// OpenAPI import: any text (YAML or JSON, any shape) is imported or refused with an error —
/// never a panic — with and without `allow_insecure_drop`; every note carries a JSON pointer,
/// and what is imported loads back as YAML and compiles.
pub fn openapi_import(data: &[u8]) {
    use causeway_compile::openapi::{ImportMapping, ImportOptions, import};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mapping = ImportMapping::parse(IMPORT_MAPPING).expect("the fuzz mapping parses");
    for allow_insecure_drop in [false, true] {
        let options = ImportOptions {
            mapping: mapping.clone(),
            allow_insecure_drop,
            ..ImportOptions::default()
        };
        let Ok(imported) = import(text, &options) else {
            continue;
        };
        for note in &imported.notes {
            assert!(
                note.pointer.is_empty() || note.pointer.starts_with('/'),
                "a note without a JSON pointer: {note}"
            );
        }
        let mut inventory = Inventory::default();
        inventory
            .add_yaml("imported.yaml", &imported.to_yaml())
            .expect("what the importer writes loads back");
        let _ = compile(&inventory, &CompileOptions::default());
    }
}

/// A target's property: returns, or panics naming what broke.
pub type Property = fn(&[u8]);

/// Every target: its name (also its corpus directory) and its property.
pub const TARGETS: &[(&str, Property)] = &[
    ("path_routing", path_routing),
    ("request_head", request_head),
    ("compile_yaml", compile_yaml),
    ("lambda_answer", lambda_answer),
    ("sigv4", sigv4),
    ("openapi_import", openapi_import),
];
