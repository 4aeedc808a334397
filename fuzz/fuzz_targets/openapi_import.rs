//! OpenAPI import: any text is imported or refused with an error — never a panic — and what is
//! imported loads back and compiles (the property is `causeway_fuzz::openapi_import`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| causeway_fuzz::openapi_import(data));
