//! OpenAPI import: any text (YAML or JSON, any shape) is imported or refused with an error —
//! never a panic — with and without `--allow-insecure-drop`; every note carries a JSON pointer,
//! and what is imported loads back as YAML and compiles.
#![no_main]

use causeway_compile::openapi::{ImportMapping, ImportOptions, import};
use causeway_compile::{CompileOptions, Inventory, compile};
use libfuzzer_sys::fuzz_target;

/// Names the functions, pools and schemes the seed corpus uses, so that mutations reach the
/// integration and authorizer code behind the mapping file.
const MAPPING: &str = "lambda:\n  f: {uri: \"http://127.0.0.1:9000\"}\n  calc: {uri: \"http://127.0.0.1:9050\"}\ncognito:\n  us-east-1_AbCd: {audiences: [web]}\nsecuritySchemes:\n  oauth: {issuer: \"https://idp.example.com\", audiences: [api]}\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mapping = ImportMapping::parse(MAPPING).expect("the fuzz mapping parses");
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
});
