//! Request validation (design §4 step 7): required query strings and headers, and the body
//! against the JSON Schema model for its content type. An invalid request is answered 400
//! (BAD_REQUEST_PARAMETERS or BAD_REQUEST_BODY) and the backend is never called.
//!
//! Schemas are compiled when a snapshot is applied, once per distinct schema (routes and stages
//! share validators), never per request. The schema crate is built without remote retrieval:
//! a remote `$ref` fails to build, so a schema cannot make the proxy fetch anything.
//! Only routes that validate a body buffer it; others stream as before.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use causeway_snapshot::RequestValidation;
use http::Request;
use http::header::{self, HeaderName};
use http_body_util::BodyExt;

use crate::body::{ProxyBody, full};
use crate::error::{RequestError, SchemaError};

/// A route's validator, ready to run.
pub(crate) struct RouteValidator {
    required_query: Vec<String>,
    required_headers: Vec<HeaderName>,
    /// By lowercase media type or `$default`.
    models: BTreeMap<String, Arc<jsonschema::Validator>>,
}

/// Compiled schemas of one snapshot, by schema text, so equal schemas compile once.
#[derive(Default)]
pub(crate) struct SchemaCache {
    compiled: HashMap<String, Arc<jsonschema::Validator>>,
}

impl SchemaCache {
    fn get(
        &mut self,
        name: &str,
        schema: &serde_json::Value,
    ) -> Result<Arc<jsonschema::Validator>, SchemaError> {
        let text = schema.to_string();
        if let Some(v) = self.compiled.get(&text) {
            return Ok(Arc::clone(v));
        }
        let validator = jsonschema::validator_for(schema).map_err(|e| SchemaError {
            model: name.to_string(),
            message: e.to_string(),
        })?;
        let validator = Arc::new(validator);
        self.compiled.insert(text, Arc::clone(&validator));
        Ok(validator)
    }
}

impl RouteValidator {
    /// Builds a route's validator, compiling its schemas through `cache`.
    pub(crate) fn build(
        spec: &RequestValidation,
        cache: &mut SchemaCache,
    ) -> Result<Self, SchemaError> {
        let mut models = BTreeMap::new();
        for (content_type, model) in &spec.body_models {
            models.insert(
                content_type.to_ascii_lowercase(),
                cache.get(&model.name, &model.schema)?,
            );
        }
        let required_headers = spec
            .required_headers
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes()).map_err(|_| SchemaError {
                    model: String::new(),
                    message: format!("required header {h:?} is not a header name"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            required_query: spec.required_query_strings.clone(),
            required_headers,
            models,
        })
    }

    /// Checks a request; returns it (with its body buffered when it was validated) or the
    /// reason it is refused.
    pub(crate) async fn check(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Request<ProxyBody>, RequestError> {
        let query = crate::context::query_pairs(request.uri().query());
        let mut missing: Vec<String> = self
            .required_query
            .iter()
            .filter(|q| !query.iter().any(|(k, _)| k == *q))
            .cloned()
            .collect();
        missing.extend(
            self.required_headers
                .iter()
                .filter(|h| !request.headers().contains_key(*h))
                .map(|h| h.to_string()),
        );
        if !missing.is_empty() {
            return Err(RequestError::MissingParameters(missing));
        }
        if self.models.is_empty() {
            return Ok(request);
        }
        let media = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_else(|| "application/json".to_string());
        let Some(validator) = self
            .models
            .get(&media)
            .or_else(|| self.models.get("$default"))
        else {
            // No model for this content type: API Gateway passes such bodies through.
            return Ok(request);
        };
        let (parts, body) = request.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(RequestError::ReadBody)?
            .to_bytes();
        let instance: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| RequestError::InvalidBody {
                detail: format!("the body is not JSON: {e}"),
            })?
        };
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{e} (at {at})")
                }
            })
            .collect();
        if !errors.is_empty() {
            return Err(RequestError::InvalidBody {
                detail: format!("[{}]", errors.join(", ")),
            });
        }
        Ok(Request::from_parts(parts, full(bytes)))
    }
}
