//! The blast radius of one object is that object: a Stage whose variables render a value the
//! proxy would refuse is left out with a reason, and every other object still compiles.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Kind, reasons};
use support::{assert_refused, status, with_base};

const TENANTS: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: tagged, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  routeKey: GET /tagged
  integration:
    type: HTTP_PROXY
    backendRef: {name: pets, port: 80}
    requestHeaders:
      x-tenant: ${stageVariables.tenant}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: good, namespace: shop}
spec:
  apiRef: {name: pets}
  autoDeploy: true
  variables: {tenant: acme}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: bad, namespace: shop}
spec:
  apiRef: {name: pets}
  autoDeploy: true
  variables: {tenant: "acme\r\nx-admin: true"}
---
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: shop}
stringData:
  bob: bob-raw-key-0123456789abcdef00
---
apiVersion: causeway.dev/v1alpha1
kind: UsagePlan
metadata: {name: gold, namespace: shop}
spec:
  apiStages: [{api: pets, stage: good}]
  apiKeys:
    - id: bob
      secretRef: {name: keys, key: bob}
      enabled: false
"#;

#[test]
fn a_stage_whose_variable_renders_a_bad_header_value_is_refused_alone() {
    let c = with_base(TENANTS);
    let message = assert_refused(&c, Kind::Stage, "bad", reasons::INVALID_STAGE_VARIABLE);
    assert!(message.contains("spec.variables"), "{message}");
    assert!(message.contains("GET /tagged"), "{message}");
    assert!(message.contains("x-tenant"), "{message}");
    assert!(c.snapshot.stage("shop/pets/bad").is_none());
    for s in &c.statuses {
        if !(s.kind == Kind::Stage && s.name == "bad") {
            assert!(s.is_accepted(), "{s:#?}");
        }
    }
    let good = c.snapshot.stage("shop/pets/good").expect("good is served");
    assert!(good.main.routes.iter().any(|r| r.key == "GET /tagged"));
    assert!(status(&c, Kind::UsagePlan, "gold").is_accepted());
    let plan = &c.snapshot.usage_plans[0];
    assert!(plan.keys.iter().any(|k| k.id == "bob" && !k.enabled));
}

#[test]
fn a_canary_override_that_renders_a_bad_header_value_refuses_the_stage() {
    let first = with_base(TENANTS);
    let current = &first
        .deployments
        .iter()
        .find(|d| d.api == "shop/pets")
        .expect("the Api has a deployment")
        .id;
    let c = with_base(&format!(
        r#"{TENANTS}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {{name: tilted, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  autoDeploy: true
  variables: {{tenant: acme}}
  canary:
    deploymentId: {current}
    percentTraffic: 10
    stageVariableOverrides: {{tenant: "\u0007bell"}}
"#
    ));
    let message = assert_refused(&c, Kind::Stage, "tilted", reasons::INVALID_STAGE_VARIABLE);
    assert!(
        message.contains("spec.canary.stageVariableOverrides"),
        "{message}"
    );
    assert!(status(&c, Kind::Stage, "good").is_accepted());
}

#[test]
fn a_mapping_or_mock_header_that_a_variable_breaks_refuses_only_that_stage() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: mapped, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  routeKey: GET /mapped
  integration:
    type: HTTP_PROXY
    backendRef: {name: pets, port: 80}
    requestParameters:
      "overwrite:header.x-tenant": "t-${stageVariables.tenant}"
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: mocked, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  routeKey: GET /mocked
  integration:
    type: MOCK
    mock:
      headers: {x-color: "${stageVariables.color}"}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: mapped-bad, namespace: shop}
spec:
  apiRef: {name: pets}
  autoDeploy: true
  variables: {tenant: "a\nb", color: blue}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: mocked-bad, namespace: shop}
spec:
  apiRef: {name: pets}
  autoDeploy: true
  variables: {tenant: ok, color: "\u007f"}
"#,
    );
    let message = assert_refused(
        &c,
        Kind::Stage,
        "mapped-bad",
        reasons::INVALID_STAGE_VARIABLE,
    );
    assert!(message.contains("GET /mapped"), "{message}");
    let message = assert_refused(
        &c,
        Kind::Stage,
        "mocked-bad",
        reasons::INVALID_STAGE_VARIABLE,
    );
    assert!(message.contains("x-color"), "{message}");
    assert!(status(&c, Kind::Stage, "prod").is_accepted());
    assert!(status(&c, Kind::Route, "mapped").is_accepted());
    assert!(status(&c, Kind::Route, "mocked").is_accepted());
}
