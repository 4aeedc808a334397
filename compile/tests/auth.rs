//! Usage plans, API keys and authorizers: what reaches the snapshot, and what is refused.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Kind, StatusDetail, reasons};
use causeway_snapshot::{AuthorizerSettings, JwksSource, ResponseFormat};
use sha2::{Digest, Sha256};
use support::{assert_base_served, assert_refused, route_keys, status, with_base};

const ALICE: &str = "alice-raw-key-0123456789abcdef";
const BOB: &str = "bob-raw-key-0123456789abcdef00";

const KEYS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: shop}
data:
  alice: YWxpY2UtcmF3LWtleS0wMTIzNDU2Nzg5YWJjZGVm
stringData:
  bob: bob-raw-key-0123456789abcdef00
---
apiVersion: causeway.dev/v1alpha1
kind: UsagePlan
metadata: {name: gold, namespace: shop}
spec:
  apiStages: [{api: pets, stage: prod, routeThrottles: {"GET /pets": {rateLimit: 5, burstLimit: 10}}}]
  throttle: {rateLimit: 100, burstLimit: 200}
  quota: {limit: 10000, period: MONTH}
  apiKeys:
    - id: alice
      secretRef: {name: keys, key: alice}
    - id: bob
      secretRef: {name: keys, key: bob}
      enabled: false
      quota: {limit: 10, period: DAY}
"#;

fn sha(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

#[test]
fn a_usage_plan_carries_key_hashes_and_its_stages_but_never_the_raw_keys() {
    let c = with_base(KEYS);
    assert!(status(&c, Kind::UsagePlan, "gold").is_accepted());
    assert_eq!(
        status(&c, Kind::UsagePlan, "gold").detail,
        StatusDetail::UsagePlan { key_count: 2 }
    );
    let plan = &c.snapshot.usage_plans[0];
    assert_eq!(plan.id, "shop/gold");
    assert_eq!(plan.stages[0].stage, "shop/pets/prod");
    assert_eq!(plan.stages[0].route_throttles["GET /pets"].burst, 10);
    assert_eq!(plan.quota.map(|q| q.limit), Some(10_000));
    let keys: Vec<(&str, &str, bool)> = plan
        .keys
        .iter()
        .map(|k| (k.id.as_str(), k.sha256.as_str(), k.enabled))
        .collect();
    assert_eq!(
        keys,
        [
            ("alice", sha(ALICE).as_str(), true),
            ("bob", sha(BOB).as_str(), false)
        ]
    );
    assert_eq!(plan.keys[1].quota.map(|q| q.limit), Some(10));
    let bytes = String::from_utf8(c.snapshot.to_bytes()).expect("utf-8");
    assert!(!bytes.contains(ALICE) && !bytes.contains(BOB));
}

#[test]
fn a_plan_whose_key_secret_is_missing_names_the_key_and_is_left_out() {
    let c = with_base(&KEYS.replace("key: bob}", "key: carol}"));
    let message = assert_refused(&c, Kind::UsagePlan, "gold", reasons::SECRET_NOT_FOUND);
    assert!(message.contains("\"bob\""), "{message}");
    assert!(message.contains("carol"), "{message}");
    assert!(c.snapshot.usage_plans.is_empty());
    assert_base_served(&c);
}

#[test]
fn a_plan_bound_to_a_stage_that_does_not_exist_gets_stage_not_found() {
    let c = with_base(&KEYS.replace("stage: prod", "stage: nope"));
    assert_refused(&c, Kind::UsagePlan, "gold", reasons::STAGE_NOT_FOUND);
}

#[test]
fn a_newer_plan_binding_the_same_key_value_to_the_same_stage_is_refused() {
    let c = with_base(&format!(
        r#"{KEYS}
---
apiVersion: causeway.dev/v1alpha1
kind: UsagePlan
metadata: {{name: silver, namespace: shop, creationTimestamp: "2025-01-01T00:00:00Z"}}
spec:
  apiStages: [{{api: pets, stage: prod}}]
  apiKeys: [{{id: also-alice, secretRef: {{name: keys, key: alice}}}}]
"#
    ));
    assert!(status(&c, Kind::UsagePlan, "gold").is_accepted());
    let message = assert_refused(&c, Kind::UsagePlan, "silver", reasons::INVALID);
    assert!(message.contains("shop/gold"), "{message}");
}

const JWT: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Authorizer
metadata: {name: jwt, namespace: shop}
spec:
  apiRef: {name: pets}
  type: JWT
  jwt: {issuer: "https://issuer.example.com", audiences: [pets], jwksUri: "https://issuer.example.com/keys"}
  forwardHeaders: {X-Causeway-Sub: "$context.authorizer.claims.sub"}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: private, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /private
  authorizerRef: {name: jwt}
  authorizationScopes: [pets:write, pets:read]
  apiKeyRequired: true
  integration: {type: MOCK}
"#;

#[test]
fn a_route_naming_a_jwt_authorizer_carries_it_and_its_scopes_to_the_stage() {
    let c = with_base(JWT);
    assert!(status(&c, Kind::Authorizer, "jwt").is_accepted());
    assert!(status(&c, Kind::Route, "private").is_accepted());
    let stage = c.snapshot.stage("shop/pets/prod").expect("stage");
    let route = stage
        .main
        .routes
        .iter()
        .find(|r| r.key == "GET /private")
        .expect("route");
    let authorization = route.authorization.as_ref().expect("authorization");
    assert_eq!(authorization.authorizer, "shop/jwt");
    assert_eq!(authorization.scopes, ["pets:read", "pets:write"]);
    assert!(route.api_key_required);
    let authorizer = &c.snapshot.authorizers["shop/jwt"];
    assert_eq!(authorizer.identity_source, ["header.authorization"]);
    assert_eq!(
        authorizer.forward_headers["x-causeway-sub"],
        "$context.authorizer.claims.sub"
    );
    let AuthorizerSettings::Jwt(jwt) = &authorizer.settings else {
        panic!("jwt settings")
    };
    assert_eq!(jwt.algorithms, ["ES256", "RS256"]);
    assert_eq!(jwt.leeway_seconds, 60);
    assert_eq!(
        jwt.jwks,
        JwksSource::Uri("https://issuer.example.com/keys".into())
    );
}

#[test]
fn jwt_authorizers_allowing_none_or_hmac_are_refused_as_invalid() {
    for alg in ["none", "HS256"] {
        let c = with_base(&JWT.replace(
            "jwksUri: \"https://issuer.example.com/keys\"",
            &format!("algorithms: [RS256, {alg}]"),
        ));
        let message = assert_refused(&c, Kind::Authorizer, "jwt", reasons::INVALID);
        assert!(message.contains(alg), "{message}");
        assert_refused(&c, Kind::Route, "private", reasons::AUTHORIZER_NOT_FOUND);
        assert_eq!(route_keys(&c, "shop/pets/prod"), ["GET /pets"]);
    }
}

#[test]
fn an_inline_jwks_is_read_from_its_secret_and_a_missing_one_is_secret_not_found() {
    let inline = JWT.replace(
        "jwksUri: \"https://issuer.example.com/keys\"",
        "jwksSecretRef: {name: jwks, key: jwks.json}",
    );
    let missing = with_base(&inline);
    assert_refused(&missing, Kind::Authorizer, "jwt", reasons::SECRET_NOT_FOUND);
    let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}"#;
    let c = with_base(&format!(
        "{inline}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: jwks, namespace: shop}}\nstringData:\n  jwks.json: '{jwks}'\n"
    ));
    let AuthorizerSettings::Jwt(jwt) = &c.snapshot.authorizers["shop/jwt"].settings else {
        panic!("jwt settings")
    };
    assert_eq!(jwt.jwks, JwksSource::Inline(jwks.into()));
}

#[test]
fn a_route_naming_an_authorizer_of_another_api_gets_authorizer_not_found() {
    let c = with_base(&format!(
        "{}\n---\napiVersion: causeway.dev/v1alpha1\nkind: Api\nmetadata: {{name: cats, namespace: shop}}\nspec: {{}}\n",
        JWT.replace(
            "apiRef: {name: pets}\n  type: JWT",
            "apiRef: {name: cats}\n  type: JWT"
        )
    ));
    assert!(status(&c, Kind::Authorizer, "jwt").is_accepted());
    let message = assert_refused(&c, Kind::Route, "private", reasons::AUTHORIZER_NOT_FOUND);
    assert!(message.contains("shop/cats"), "{message}");
}

const FUNCTION: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Authorizer
metadata: {name: fn, namespace: shop}
spec:
  apiRef: {name: pets}
  type: TOKEN
  function:
    backendRef: {name: pets, port: 80}
    identityValidationExpression: "Bearer [A-Za-z0-9._-]+"
    resultTtlSeconds: 60
    responseFormat: IAM
"#;

#[test]
fn a_token_authorizer_resolves_its_service_like_an_integration_with_defaults() {
    let c = with_base(FUNCTION);
    assert!(status(&c, Kind::Authorizer, "fn").is_accepted());
    let authorizer = &c.snapshot.authorizers["shop/fn"];
    let AuthorizerSettings::Token(f) = &authorizer.settings else {
        panic!("token settings")
    };
    assert_eq!(f.backend, "svc/shop/pets:80");
    assert_eq!(f.path, "/2015-03-31/functions/function/invocations");
    assert_eq!((f.timeout_ms, f.ttl_seconds), (10_000, 60));
    assert_eq!(f.response_format, ResponseFormat::Iam);
    assert_eq!(
        c.snapshot.backends["svc/shop/pets:80"].endpoints,
        ["10.0.0.1:8080"]
    );
}

#[test]
fn function_authorizers_with_a_bad_regex_a_long_ttl_or_a_missing_service_are_refused() {
    let bad_regex = with_base(&FUNCTION.replace("[A-Za-z0-9._-]+", "(unclosed"));
    assert_refused(&bad_regex, Kind::Authorizer, "fn", reasons::INVALID);
    let missing = with_base(&FUNCTION.replace("name: pets, port: 80", "name: ghost, port: 80"));
    assert_refused(&missing, Kind::Authorizer, "fn", reasons::BACKEND_NOT_FOUND);
    let c = with_base(&FUNCTION.replace("resultTtlSeconds: 60", "resultTtlSeconds: 7200"));
    let status = status(&c, Kind::Authorizer, "fn");
    assert!(!status.is_accepted(), "a TTL above 3600 s is refused");
}

#[test]
fn a_sigv4_authorizer_reads_every_access_key_of_its_secret() {
    let c = with_base(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: iam, namespace: shop}
stringData: {AKID1: secret-one, AKID2: secret-two}
---
apiVersion: causeway.dev/v1alpha1
kind: Authorizer
metadata: {name: iam, namespace: shop}
spec:
  apiRef: {name: pets}
  type: SIGV4
  sigv4: {credentialsSecretRef: {name: iam}, region: eu-west-1}
"#,
    );
    let AuthorizerSettings::Sigv4(s) = &c.snapshot.authorizers["shop/iam"].settings else {
        panic!("sigv4 settings")
    };
    assert_eq!(
        (s.region.as_str(), s.service.as_str()),
        ("eu-west-1", "execute-api")
    );
    assert_eq!(s.max_skew_seconds, 300);
    assert_eq!(s.secret_access_keys.len(), 2);
    assert_eq!(s.secret_access_keys["AKID2"], "secret-two");
}

const SERVICE_ACCOUNT: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Authorizer
metadata: {name: sa, namespace: shop}
spec:
  apiRef: {name: pets}
  type: SERVICE_ACCOUNT
  serviceAccount:
    audiences: [pets]
    allow: [{name: checkout}, {name: "*", namespace: ops}]
"#;

const CLUSTER_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"c1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

#[test]
fn a_service_account_authorizer_without_cluster_keys_gets_service_account_keys_not_found() {
    let c = with_base(SERVICE_ACCOUNT);
    assert_refused(
        &c,
        Kind::Authorizer,
        "sa",
        reasons::SERVICE_ACCOUNT_KEYS_NOT_FOUND,
    );
}

#[test]
fn a_service_account_authorizer_carries_the_cluster_keys_and_who_may_call() {
    let options = causeway_compile::CompileOptions {
        service_account_issuer: Some("https://oidc.cluster.example".into()),
        service_account_jwks: Some(CLUSTER_JWKS.into()),
        ..causeway_compile::CompileOptions::default()
    };
    let inventory = support::inventory(&format!("{}\n---\n{SERVICE_ACCOUNT}", support::BASE));
    let c = causeway_compile::compile(&inventory, &options);
    assert!(status(&c, Kind::Authorizer, "sa").is_accepted());
    let AuthorizerSettings::ServiceAccount(sa) = &c.snapshot.authorizers["shop/sa"].settings else {
        panic!("service account settings")
    };
    assert_eq!(sa.jwt.issuer, "https://oidc.cluster.example");
    assert_eq!(sa.jwt.audiences, ["pets"]);
    assert_eq!(sa.jwt.jwks, JwksSource::Inline(CLUSTER_JWKS.into()));
    assert_eq!(
        sa.allow,
        [
            ("ops".to_string(), "*".to_string()),
            ("shop".to_string(), "checkout".to_string())
        ]
    );
}

#[test]
fn a_service_account_authorizer_without_an_audience_is_refused() {
    let c = with_base(&format!(
        "{}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: cluster-jwks, namespace: shop}}\nstringData:\n  jwks: '{CLUSTER_JWKS}'\n",
        SERVICE_ACCOUNT.replace(
            "audiences: [pets]",
            "jwksSecretRef: {name: cluster-jwks, key: jwks}"
        )
    ));
    let message = assert_refused(&c, Kind::Authorizer, "sa", reasons::INVALID);
    assert!(message.contains("audience"), "{message}");
}

const MTLS: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Authorizer
metadata: {name: certs, namespace: shop}
spec:
  apiRef: {name: pets}
  type: MTLS
  mtls: {allowedSubjects: [client.example.com, "*.ops.example.com", client.example.com]}
"#;

#[test]
fn an_mtls_authorizer_carries_its_allowed_subjects_sorted_and_deduplicated() {
    let c = with_base(MTLS);
    assert!(status(&c, Kind::Authorizer, "certs").is_accepted());
    let AuthorizerSettings::Mtls(m) = &c.snapshot.authorizers["shop/certs"].settings else {
        panic!("not mtls: {:?}", c.snapshot.authorizers["shop/certs"]);
    };
    assert_eq!(
        m.allowed_subjects,
        vec![
            "*.ops.example.com".to_string(),
            "client.example.com".to_string()
        ]
    );
    assert!(
        c.snapshot.authorizers["shop/certs"]
            .identity_source
            .is_empty()
    );
}

#[test]
fn an_mtls_authorizer_with_its_own_ca_is_refused_until_that_is_built() {
    let c = with_base(&MTLS.replace("mtls: {", "mtls: {caSecretRef: {name: client-ca}, "));
    let message = assert_refused(&c, Kind::Authorizer, "certs", reasons::UNSUPPORTED_FEATURE);
    assert!(message.contains("caSecretRef"), "{message}");
    assert!(c.snapshot.authorizers.is_empty());
}

#[test]
fn an_mtls_authorizer_with_a_bad_pattern_or_an_identity_source_is_invalid() {
    let c = with_base(&MTLS.replace("\"*.ops.example.com\"", "\"a*b\""));
    let message = assert_refused(&c, Kind::Authorizer, "certs", reasons::INVALID);
    assert!(message.contains("allowedSubjects[1]"), "{message}");
    let c = with_base(&MTLS.replace(
        "  type: MTLS",
        "  type: MTLS\n  identitySource: [$request.header.x-client]",
    ));
    let message = assert_refused(&c, Kind::Authorizer, "certs", reasons::INVALID);
    assert!(message.contains("identitySource"), "{message}");
}

#[test]
fn routes_without_authorizers_keep_their_deployment_ids() {
    // Adding authorization fields to the deployment definition must not change the id of a
    // deployment that uses none of them (pinned stages keep working across upgrades).
    let before = with_base("");
    let after = with_base(JWT.split("---").next().unwrap_or_default());
    assert_eq!(before.deployments[0].id, after.deployments[0].id);
}

#[test]
fn an_api_reading_keys_from_an_authorizer_is_refused_until_that_is_built() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: keyed, namespace: shop}
spec: {apiKeySource: AUTHORIZER}
"#,
    );
    assert_refused(&c, Kind::Api, "keyed", reasons::UNSUPPORTED_FEATURE);
    assert_base_served(&c);
}
