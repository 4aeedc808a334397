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
static AUTHORIZER: LazyLock<Option<CompiledSchema>> =
    LazyLock::new(|| schema_of(Authorizer::crd()));
static VPC_LINK: LazyLock<Option<CompiledSchema>> = LazyLock::new(|| schema_of(VpcLink::crd()));
static VALIDATOR: LazyLock<Validator> = LazyLock::new(Validator::new);

/// The Route CRD's rules, as this function evaluates them natively: Routes are the most
/// numerous objects, and the CEL interpreter (which compiles the `matches` regex on every call)
/// took most of a full compile of 10,000 of them.
const ROUTE_RULES: [&str; 3] = [
    "self == '$default' || self.startsWith('$') || self.matches('^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) /') || !self.contains(' ')",
    "self.type == 'MOCK' || has(self.backendRef) || has(self.uri)",
    "!(has(self.backendRef) && has(self.uri))",
];

/// Whether the Route CRD's rules are exactly [`ROUTE_RULES`] (found once from the generated
/// schema): the native evaluation is used only then, so a rule added to the CRD is never
/// skipped.
static ROUTE_RULES_KNOWN: LazyLock<bool> = LazyLock::new(|| {
    let schema = serde_json::to_value(Route::crd()).unwrap_or_default();
    let mut rules = Vec::new();
    collect_rules(&schema, &mut rules);
    rules.sort();
    let mut known: Vec<String> = ROUTE_RULES.iter().map(|r| (*r).to_string()).collect();
    known.sort();
    rules == known
});

fn collect_rules(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "x-kubernetes-validations" {
                    for rule in v.as_array().into_iter().flatten() {
                        if let Some(r) = rule.get("rule").and_then(serde_json::Value::as_str) {
                            out.push(r.to_string());
                        }
                    }
                } else {
                    collect_rules(v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_rules(v, out)),
        _ => {}
    }
}

/// [`check`] for a Route: when the Route's rules are [`ROUTE_RULES`] and all of them hold, as
/// decided natively, the CEL interpreter is not run; otherwise it decides (and words the
/// message).
pub(crate) fn check_route(route: &Route) -> Result<(), Problem> {
    if *ROUTE_RULES_KNOWN && route_rules_hold(&route.spec) {
        return Ok(());
    }
    check(Kind::Route, route)
}

/// [`ROUTE_RULES`], evaluated on the typed spec. Never true where CEL would refuse.
fn route_rules_hold(spec: &causeway_crds::route::RouteSpec) -> bool {
    const METHODS: [&str; 8] = [
        "GET ", "POST ", "PUT ", "PATCH ", "DELETE ", "HEAD ", "OPTIONS ", "ANY ",
    ];
    let key = spec.route_key.as_str();
    let key_ok = key == "$default"
        || key.starts_with('$')
        || METHODS.iter().any(|m| {
            key.strip_prefix(m)
                .is_some_and(|rest| rest.starts_with('/'))
        })
        || !key.contains(' ');
    let integration = &spec.integration;
    let target = integration.type_ == causeway_crds::route::IntegrationType::Mock
        || integration.backend_ref.is_some()
        || integration.uri.is_some();
    let not_both = !(integration.backend_ref.is_some() && integration.uri.is_some());
    key_ok && target && not_both
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_rules_are_the_ones_evaluated_natively() {
        assert!(
            *ROUTE_RULES_KNOWN,
            "the Route CRD's CEL rules changed: update ROUTE_RULES and route_rules_hold"
        );
    }

    #[test]
    fn the_native_route_rules_never_pass_what_cel_refuses() {
        let keys = [
            "$default",
            "$connect",
            "GET /a",
            "ANY /{proxy+}",
            "GET a",
            "GET  /a",
            "get /a",
            "POST /",
            "FETCH /x",
            "custom",
            "a b",
            "OPTIONS /x y",
            "",
        ];
        let integrations = [
            serde_json::json!({"type": "MOCK"}),
            serde_json::json!({"type": "HTTP_PROXY"}),
            serde_json::json!({"type": "HTTP_PROXY", "uri": "http://x"}),
            serde_json::json!({"type": "HTTP_PROXY", "backendRef": {"name": "s", "port": 80}}),
            serde_json::json!({"type": "HTTP_PROXY", "uri": "http://x", "backendRef": {"name": "s", "port": 80}}),
            serde_json::json!({"type": "MOCK", "uri": "http://x", "backendRef": {"name": "s", "port": 80}}),
        ];
        for key in keys {
            for integration in &integrations {
                let route: Route = serde_json::from_value(serde_json::json!({
                    "apiVersion": "causeway.dev/v1alpha1",
                    "kind": "Route",
                    "metadata": {"name": "r", "namespace": "n"},
                    "spec": {"apiRef": {"name": "a"}, "routeKey": key, "integration": integration},
                }))
                .expect("a route");
                let native = route_rules_hold(&route.spec);
                let cel = check(Kind::Route, &route).is_ok();
                assert_eq!(native, cel, "{key:?} {integration}");
            }
        }
    }
}
