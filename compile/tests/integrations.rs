//! Issue 8 in compile: LAMBDA_PROXY integrations, models and request validators, parameter
//! mapping, and stage response caching — what a user writes, what the snapshot holds, and what
//! is refused with which reason.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Compiled, Kind, reasons};
use causeway_snapshot::mapping::{MappingAction, MappingTarget};
use causeway_snapshot::{
    CacheInvalidationPolicy, Integration, LAMBDA_INVOKE_PATH, PayloadFormat, RouteConfig,
};
use support::{BASE, assert_base_served, assert_refused, compile_yaml, status, with_base};

fn route<'a>(c: &'a Compiled, key: &str) -> &'a RouteConfig {
    c.snapshot
        .stage("shop/pets/prod")
        .and_then(|s| s.main.routes.iter().find(|r| r.key == key))
        .unwrap_or_else(|| panic!("route {key} is served"))
}

const MODELS_API: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: pets, namespace: shop}
spec:
  models:
    - name: Pet
      schema:
        $schema: "http://json-schema.org/draft-04/schema#"
        type: object
        required: [name]
        properties: {name: {type: string}}
"#;

/// [`BASE`] with its Api replaced by `api`.
fn with_api(api: &str, extra: &str) -> Compiled {
    let base = BASE.replacen(
        "apiVersion: causeway.dev/v1alpha1\nkind: Api\nmetadata: {name: pets, namespace: shop}\nspec: {}\n",
        "",
        1,
    );
    compile_yaml(&format!("{api}\n---\n{base}\n---\n{extra}"))
}

#[test]
fn a_lambda_proxy_route_defaults_to_the_runtime_interface_emulator_path_and_payload_2_0() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: fn, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: POST /fn
  integration: {type: LAMBDA_PROXY, backendRef: {name: pets, port: 80}}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: fn1, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /fn1
  integration:
    type: LAMBDA_PROXY
    uri: "http://pets.shop:80/custom/invoke"
    payloadFormatVersion: "1.0"
    timeoutMillis: 3000
"#,
    );
    assert!(status(&c, Kind::Route, "fn").is_accepted());
    let Integration::LambdaProxy(l) = &route(&c, "POST /fn").integration else {
        panic!("a LAMBDA_PROXY integration");
    };
    assert_eq!(l.path, LAMBDA_INVOKE_PATH);
    assert_eq!(l.payload_format, PayloadFormat::V2);
    let backend = &c.snapshot.backends[&l.backend];
    assert_eq!(backend.endpoints, ["10.0.0.1:8080"]);
    let Integration::LambdaProxy(l1) = &route(&c, "GET /fn1").integration else {
        panic!("a LAMBDA_PROXY integration");
    };
    assert_eq!(
        (l1.path.as_str(), l1.payload_format, l1.timeout_ms),
        ("/custom/invoke", PayloadFormat::V1, 3000)
    );
    assert_base_served(&c);
}

#[test]
fn an_api_whose_model_is_not_a_json_schema_or_fetches_a_remote_ref_is_invalid() {
    for schema in [
        r#"{type: 12}"#,
        r#"{$ref: "http://schemas.example.com/pet.json"}"#,
    ] {
        let c = compile_yaml(&format!(
            r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {{name: broken, namespace: shop}}
spec:
  models: [{{name: Pet, schema: {schema}}}]
"#
        ));
        let message = assert_refused(&c, Kind::Api, "broken", reasons::INVALID);
        assert!(message.contains("spec.models[0].schema"), "{message}");
    }
}

#[test]
fn a_validator_resolves_its_models_and_a_missing_model_leaves_the_route_out() {
    let c = with_api(
        MODELS_API,
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: add-pet, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: POST /pets
  integration: {type: HTTP_PROXY, backendRef: {name: pets, port: 80}}
  requestValidation:
    validateBody: true
    requiredHeaders: [X-Client]
    requiredQueryStrings: [dry]
    models: {application/json: Pet}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: bad-model, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: PUT /pets
  integration: {type: HTTP_PROXY, backendRef: {name: pets, port: 80}}
  requestValidation: {models: {application/json: Cat}}
"#,
    );
    let v = route(&c, "POST /pets")
        .validation
        .clone()
        .expect("validation in the snapshot");
    assert_eq!(v.required_headers, ["x-client"]);
    assert_eq!(v.required_query_strings, ["dry"]);
    assert_eq!(v.body_models["application/json"].name, "Pet");
    let message = assert_refused(&c, Kind::Route, "bad-model", reasons::MODEL_NOT_FOUND);
    assert!(message.contains("\"Cat\""), "{message}");
    assert!(route(&c, "GET /pets").validation.is_none());
}

#[test]
fn parameter_mappings_compile_into_the_snapshot_with_stage_variables_substituted() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: mapped, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /owners/{id}
  integration:
    type: HTTP
    backendRef: {name: pets, port: 80}
    requestParameters:
      overwrite:header.x-owner: "$request.path.id"
      append:querystring.env: "${stageVariables.env}-x"
      overwrite:path: "/v2/owners/$request.path.id"
      remove:header.cookie: "''"
    responseParameters:
      overwrite:statuscode: "200"
      append:header.x-from: "$context.stage"
"#,
    );
    assert!(status(&c, Kind::Route, "mapped").is_accepted());
    let Integration::HttpProxy(h) = &route(&c, "GET /owners/{id}").integration else {
        panic!("HTTP integrations forward");
    };
    let env = h
        .request_parameters
        .iter()
        .find(|m| m.target == MappingTarget::Querystring("env".into()))
        .expect("env mapping");
    assert_eq!(
        (env.action, env.value.as_str()),
        (MappingAction::Append, "-x")
    );
    let cookie = h
        .request_parameters
        .iter()
        .find(|m| m.target == MappingTarget::Header("cookie".into()))
        .expect("cookie mapping");
    assert_eq!(
        (cookie.action, cookie.value.as_str()),
        (MappingAction::Remove, "")
    );
    assert_eq!(h.response_parameters.len(), 2);
}

#[test]
fn a_malformed_mapping_is_refused_as_invalid_mapping_naming_the_key() {
    for (key, value) in [
        ("replace:header.x", "1"),
        ("overwrite:body", "1"),
        ("overwrite:header.x", "$request.body.name"),
        ("overwrite:header.x", "$request.path.nope"),
        ("append:path", "/x"),
    ] {
        let c = with_base(&format!(
            r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {{name: mapped, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  routeKey: GET /owners/{{id}}
  integration:
    type: HTTP_PROXY
    backendRef: {{name: pets, port: 80}}
    requestParameters: {{"{key}": "{value}"}}
"#
        ));
        let message = assert_refused(&c, Kind::Route, "mapped", reasons::INVALID_MAPPING);
        assert!(message.contains(key), "{key}: {message}");
        assert_base_served(&c);
    }
}

#[test]
fn a_stage_cache_caches_routes_by_default_with_route_overrides() {
    let c = compile_yaml(&BASE.replace(
        "spec: {apiRef: {name: pets}, autoDeploy: true}",
        r#"spec:
  apiRef: {name: pets}
  autoDeploy: true
  cache: {enabled: true, capacityBytes: 1048576, ttlSeconds: 60, cacheStatusHeader: true}
  routeSettings:
    - routeKey: GET /pets
      cacheTtlSeconds: 5
      cacheKeyParameters: [method.request.querystring.kind, header.X-Api-Key]
      cacheInvalidation: FAIL_WITH_403"#,
    ));
    let stage = c.snapshot.stage("shop/pets/prod").expect("stage");
    let cache = stage.cache.clone().expect("stage cache");
    assert_eq!(
        (cache.capacity_bytes, cache.status_header),
        (1_048_576, true)
    );
    assert!(
        !cache.share_across_principals,
        "callers do not share entries unless the stage says so"
    );
    let rc = route(&c, "GET /pets").cache.clone().expect("route cache");
    assert_eq!(rc.ttl_seconds, 5);
    assert_eq!(rc.key_parameters, ["header.x-api-key", "querystring.kind"]);
    assert_eq!(rc.invalidation, CacheInvalidationPolicy::FailWith403);
}

#[test]
fn a_stage_may_share_cache_entries_across_principals() {
    let c = compile_yaml(&BASE.replace(
        "spec: {apiRef: {name: pets}, autoDeploy: true}",
        "spec:\n  apiRef: {name: pets}\n  autoDeploy: true\n  cache: {enabled: true, shareAcrossPrincipals: true}",
    ));
    let stage = c.snapshot.stage("shop/pets/prod").expect("stage");
    let cache = stage.cache.clone().expect("stage cache");
    assert!(cache.share_across_principals);
}

#[test]
fn a_cache_ttl_over_an_hour_or_a_bad_key_parameter_is_invalid() {
    for settings in [
        "cache: {enabled: true, ttlSeconds: 3601}",
        "cache: {enabled: true}\n  routeSettings: [{routeKey: GET /pets, cacheKeyParameters: [body.x]}]",
    ] {
        let c = compile_yaml(&BASE.replace(
            "spec: {apiRef: {name: pets}, autoDeploy: true}",
            &format!("spec:\n  apiRef: {{name: pets}}\n  autoDeploy: true\n  {settings}"),
        ));
        assert_refused(&c, Kind::Stage, "prod", reasons::INVALID);
    }
}

#[test]
fn stages_without_a_cache_and_routes_without_new_features_keep_their_snapshot_shape() {
    let c = with_base("");
    let json = String::from_utf8(c.snapshot.to_bytes()).expect("utf8");
    for field in [
        "\"cache\"",
        "\"validation\"",
        "requestParameters",
        "payloadFormat",
    ] {
        assert!(!json.contains(field), "{field} in {json}");
    }
}
