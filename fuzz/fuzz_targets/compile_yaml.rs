//! YAML → compile: any text is loaded or refused with an error, and every object that loads
//! ends Accepted or with a reason — never a panic.
#![no_main]

use causeway_compile::{CompileOptions, Inventory, compile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
