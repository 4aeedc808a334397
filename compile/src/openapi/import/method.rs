//! An operation's declarations → `RouteSpec.method` (API Gateway's method request and method
//! responses): `operationId`, the parameters it takes and its `responses` with their headers
//! and body models. Nothing here changes what is served; `causeway export` writes it back, so
//! that an SDK generated from the export has the operation's names, parameters and types.

use std::collections::BTreeMap;

use causeway_crds::route::{MethodResponseSpec, MethodSpec};
use serde_json::{Map, Value};

use super::Importer;
use crate::openapi::document::{Dialect, child, leftover_keys, resolve};

/// The keys of a response object that are carried (`description`, `headers`, the body schema)
/// and those that are documentation only.
const RESPONSE_KEYS: [&str; 4] = ["description", "headers", "content", "schema"];
const RESPONSE_DOC_KEYS: [&str; 2] = ["links", "examples"];

impl Importer<'_> {
    /// The method declarations of an operation: its `operationId`, its declared parameters
    /// (`declared`, from the path item's and the operation's `parameters`) and its responses.
    /// `None` when it declares nothing.
    pub(super) fn method(
        &mut self,
        op: &Map<String, Value>,
        at: &str,
        declared: BTreeMap<String, bool>,
    ) -> Option<MethodSpec> {
        let mut spec = MethodSpec {
            operation_name: op
                .get("operationId")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            request_parameters: declared,
            responses: Vec::new(),
        };
        if let Some(responses) = op.get("responses").and_then(Value::as_object) {
            let rat = child(at, "responses");
            let produces = super::strings(op.get("produces").or_else(|| self.doc.get("produces")));
            for (code, raw) in responses {
                let pat = child(&rat, code);
                let status = code.parse::<u16>().ok().filter(|s| (100..=599).contains(s));
                let Some(status) = status else {
                    self.notes.ignored(
                        &pat,
                        "API Gateway's method responses are by status code (no default or ranges): documentation only",
                    );
                    continue;
                };
                let Some((r, at)) = resolve(self.doc, raw, &pat, &mut self.notes) else {
                    continue;
                };
                let Some(r) = r.as_object().cloned() else {
                    self.notes.dropped(&at, "a response must be a mapping");
                    continue;
                };
                spec.responses
                    .push(self.method_response(status, &r, &at, &produces));
            }
        }
        let empty = spec.operation_name.is_none()
            && spec.request_parameters.is_empty()
            && spec.responses.is_empty();
        (!empty).then_some(spec)
    }

    fn method_response(
        &mut self,
        status: u16,
        r: &Map<String, Value>,
        at: &str,
        produces: &[String],
    ) -> MethodResponseSpec {
        leftover_keys(r, at, &RESPONSE_KEYS, &RESPONSE_DOC_KEYS, &mut self.notes);
        let mut response = MethodResponseSpec {
            status_code: status,
            description: r
                .get("description")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            response_parameters: BTreeMap::new(),
            response_models: BTreeMap::new(),
        };
        if let Some(headers) = r.get("headers").and_then(Value::as_object) {
            for (name, h) in headers {
                let required = h.get("required").and_then(Value::as_bool) == Some(true);
                response
                    .response_parameters
                    .insert(format!("method.response.header.{name}"), required);
            }
        }
        let mut schemas: Vec<(String, Value, String)> = Vec::new();
        if self.dialect == Dialect::Swagger2 {
            if let Some(schema) = r.get("schema") {
                let types = if produces.is_empty() {
                    vec!["application/json".to_string()]
                } else {
                    produces.to_vec()
                };
                for t in types {
                    schemas.push((t, schema.clone(), child(at, "schema")));
                }
            }
        } else if let Some(content) = r.get("content").and_then(Value::as_object) {
            for (ct, media) in content {
                if let Some(schema) = media.get("schema") {
                    let sat = child(&child(&child(at, "content"), ct), "schema");
                    schemas.push((ct.clone(), schema.clone(), sat));
                }
            }
        }
        for (ct, schema, sat) in schemas {
            if let Some(model) = self.response_model(&schema, &sat) {
                response.response_models.insert(ct, model);
            }
        }
        response
    }

    /// The model a response schema names (`$ref` to an imported model); an inline schema is
    /// documentation only here (API Gateway would make a model of it; name it instead).
    fn response_model(&mut self, schema: &Value, at: &str) -> Option<String> {
        let base = self.dialect.schemas_pointer();
        let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
            self.notes.ignored(
                at,
                "an inline response schema is not carried over: name it in the document's schemas to have it exported",
            );
            return None;
        };
        let target = r
            .strip_prefix('#')
            .and_then(|p| p.strip_prefix(base))
            .and_then(|p| p.strip_prefix('/'))
            .map(|n| n.replace("~1", "/").replace("~0", "~"));
        match target {
            Some(n) if self.model_names.contains(&n) => Some(n),
            _ => {
                self.notes.ignored(
                    at,
                    format!("the response schema {r:?} is not an imported model: not carried over"),
                );
                None
            }
        }
    }
}
