//! Request validation: the Api's models (JSON Schemas, draft-04 as API Gateway uses, or newer)
//! and each route's validator.
//!
//! Every model must compile as a JSON Schema with no remote `$ref` (the schema crate is built
//! without HTTP or file retrieval, so a remote reference fails to compile: there is no SSRF
//! through a schema); an Api with a model that does not compile is `Accepted=False, Invalid`.
//! A route whose validator names a model the Api lacks is `ResolvedRefs=False, ModelNotFound`
//! and is left out, since serving it unvalidated would fail open.

use std::collections::{BTreeMap, BTreeSet};

use causeway_crds::api::ModelSpec;
use causeway_crds::route::RequestValidationSpec;
use causeway_snapshot::{Model, RequestValidation};

use super::Problem;
use crate::reasons;

/// Checks that every model has a unique name and compiles as a JSON Schema.
pub(crate) fn check_models(models: &[ModelSpec]) -> Result<(), Problem> {
    let mut names = BTreeSet::new();
    for (i, model) in models.iter().enumerate() {
        let field = format!("spec.models[{i}]");
        if model.name.is_empty() || !names.insert(model.name.as_str()) {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!("{field}.name {:?} is empty or listed twice", model.name),
            ));
        }
        if let Err(e) = jsonschema::validator_for(&model.schema) {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!(
                    "{field}.schema (model {:?}) is not a valid JSON Schema: {e}",
                    model.name
                ),
            ));
        }
    }
    Ok(())
}

/// A route's validator with its models resolved, or `None` when it checks nothing.
pub(crate) fn compile_validation(
    spec: Option<&RequestValidationSpec>,
    models: &[ModelSpec],
) -> Result<Option<RequestValidation>, Problem> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let validate_parameters = spec.validate_parameters.unwrap_or(true);
    let validate_body = spec.validate_body.unwrap_or(!spec.models.is_empty());
    let mut out = RequestValidation::default();
    if validate_parameters {
        for (i, q) in spec.required_query_strings.iter().enumerate() {
            if q.is_empty() || q.chars().any(|c| c.is_whitespace() || "&=#".contains(c)) {
                return Err(Problem::invalid(
                    reasons::INVALID,
                    format!(
                        "spec.requestValidation.requiredQueryStrings[{i}] {q:?} is not a query-string name"
                    ),
                ));
            }
        }
        for (i, h) in spec.required_headers.iter().enumerate() {
            if http_token(h).is_none() {
                return Err(Problem::invalid(
                    reasons::INVALID,
                    format!(
                        "spec.requestValidation.requiredHeaders[{i}] {h:?} is not a header name"
                    ),
                ));
            }
        }
        out.required_query_strings = sorted(spec.required_query_strings.iter().cloned());
        out.required_headers = sorted(spec.required_headers.iter().map(|h| h.to_ascii_lowercase()));
    }
    if validate_body {
        if spec.models.is_empty() {
            return Err(Problem::invalid(
                reasons::INVALID,
                "spec.requestValidation: validateBody needs at least one entry in models",
            ));
        }
        let mut body_models = BTreeMap::new();
        for (content_type, name) in &spec.models {
            let Some(model) = models.iter().find(|m| &m.name == name) else {
                return Err(Problem::unresolved(
                    reasons::MODEL_NOT_FOUND,
                    format!(
                        "spec.requestValidation.models[{content_type:?}]: the Api has no model {name:?}"
                    ),
                ));
            };
            let key = content_type.trim().to_ascii_lowercase();
            body_models.insert(
                key,
                Model {
                    name: model.name.clone(),
                    schema: model.schema.clone(),
                },
            );
        }
        out.body_models = body_models;
    }
    if out == RequestValidation::default() {
        return Ok(None);
    }
    Ok(Some(out))
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    items.collect::<BTreeSet<_>>().into_iter().collect()
}

fn http_token(s: &str) -> Option<&str> {
    (!s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c)))
    .then_some(s)
}
