//! Schema helpers for fields that schemars cannot describe structurally.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Any JSON value, kept as is by the API server (`x-kubernetes-preserve-unknown-fields`).
pub fn any_json(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
