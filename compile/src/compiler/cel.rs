//! The CRDs' CEL rules, evaluated here too: API servers before 1.25 (and standalone mode)
//! do not enforce `x-kubernetes-validations`, and an object that breaks them must not be served.

use std::sync::LazyLock;

use causeway_crds::{Api, Authorizer, Route, Stage, UsagePlan, VpcLink};
use kube::CustomResourceExt;
use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use serde::Serialize;

use super::Problem;
use crate::reasons;
use crate::status::Kind;

/// The OpenAPI schema of a CRD's only version, compiled once per kind; `None` when the schema
/// has no CEL rule at all (then there is nothing to evaluate, and no reason to encode the
/// object: a UsagePlan with 100,000 keys would be walked for nothing).
fn schema_of(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Option<CompiledSchema> {
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default();
    schema
        .to_string()
        .contains("x-kubernetes-validations")
        .then(|| compile_schema(&schema))
}

static API: LazyLock<Option<CompiledSchema>> = LazyLock::new(|| schema_of(Api::crd()));
static ROUTE: LazyLock<Option<CompiledSchema>> = LazyLock::new(|| schema_of(Route::crd()));
static STAGE: LazyLock<Option<CompiledSchema>> = LazyLock::new(|| schema_of(Stage::crd()));
static USAGE_PLAN: LazyLock<Option<CompiledSchema>> = LazyLock::new(|| schema_of(UsagePlan::crd()));
static AUTHORIZER: LazyLock<Option<CompiledSchema>> = LazyLock::new(|| schema_of(Authorizer::crd()));
static VPC_LINK: LazyLock<Option<CompiledSchema>> = LazyLock::new(|| schema_of(VpcLink::crd()));
static VALIDATOR: LazyLock<Validator> = LazyLock::new(Validator::new);

/// Checks `object` (of `kind`) against its CRD's CEL rules. Every failed rule is reported, in a
/// stable order (the validator walks maps in hash order).
pub(crate) fn check<T: Serialize>(kind: Kind, object: &T) -> Result<(), Problem> {
    let schema: &Option<CompiledSchema> = match kind {
        Kind::Api => &API,
        Kind::Route => &ROUTE,
        Kind::Stage => &STAGE,
        Kind::UsagePlan => &USAGE_PLAN,
        Kind::Authorizer => &AUTHORIZER,
        Kind::VpcLink => &VPC_LINK,
    };
    let Some(schema) = schema else {
        return Ok(());
    };
    let value = serde_json::to_value(object).unwrap_or_default();
    match VALIDATOR.validate_compiled(schema, &value, None) {
        Ok(()) => Ok(()),
        Err(errors) => {
            let mut messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
            messages.sort();
            messages.dedup();
            Err(Problem::invalid(
                reasons::VALIDATION_RULE_FAILED,
                messages.join("; "),
            ))
        }
    }
}
