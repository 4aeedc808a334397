//! Schema helpers for fields that schemars cannot describe structurally.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Any JSON value, kept as is by the API server (`x-kubernetes-preserve-unknown-fields`).
pub fn any_json(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Removes `default: ""` from the properties of an object schema: schemars adds it for
/// `#[serde(default)]` strings, and Kubernetes 1.20 reads it as null and refuses the CRD.
pub fn drop_empty_string_defaults(schema: &mut Schema) {
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for prop in props.values_mut() {
            if let Some(p) = prop.as_object_mut()
                && p.get("default").is_some_and(|d| d == "")
            {
                p.remove("default");
            }
        }
    }
}
