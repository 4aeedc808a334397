//! Helpers shared by the behaviour tests (included with `#[path]`, not a test crate itself).

#![allow(dead_code)]

use causeway_compile::{CompileOptions, Compiled, Inventory, Kind, ObjectStatus, compile};

/// An Api `shop/pets` with one Route (`GET /pets` to Service `pets`) and a Stage `prod`.
pub const BASE: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: pets, namespace: shop}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: pets, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: pets-abc
  namespace: shop
  labels: {kubernetes.io/service-name: pets}
addressType: IPv4
endpoints:
  - addresses: ["10.0.0.1"]
  - addresses: ["10.0.0.2"]
    conditions: {ready: false}
ports: [{name: http, port: 8080}]
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: list-pets, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  apiRef: {name: pets}
  routeKey: GET /pets
  integration: {type: HTTP_PROXY, backendRef: {name: pets, port: 80}}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: prod, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec: {apiRef: {name: pets}, autoDeploy: true}
"#;

/// An inventory from YAML documents.
pub fn inventory(yaml: &str) -> Inventory {
    let mut inventory = Inventory::default();
    inventory
        .add_yaml("test.yaml", yaml)
        .expect("test YAML parses");
    inventory
}

/// Compiles YAML documents with default options.
pub fn compile_yaml(yaml: &str) -> Compiled {
    compile(&inventory(yaml), &CompileOptions::default())
}

/// Compiles [`BASE`] plus more documents.
pub fn with_base(extra: &str) -> Compiled {
    compile_yaml(&format!("{BASE}\n---\n{extra}"))
}

/// The status of one object.
pub fn status<'a>(compiled: &'a Compiled, kind: Kind, name: &str) -> &'a ObjectStatus {
    compiled
        .statuses
        .iter()
        .find(|s| s.kind == kind && s.name == name)
        .unwrap_or_else(|| panic!("no status for {kind:?} {name}"))
}

/// Asserts the object was refused with exactly this reason, and returns its message.
pub fn assert_refused(compiled: &Compiled, kind: Kind, name: &str, reason: &str) -> String {
    let status = status(compiled, kind, name);
    let problem = status
        .problem()
        .unwrap_or_else(|| panic!("{kind:?} {name} was accepted"));
    assert_eq!(problem.reason, reason, "{problem:#?}");
    assert!(!status.is_accepted());
    problem.message.clone()
}

/// Asserts that the base Api still serves `GET /pets` on stage `prod`.
pub fn assert_base_served(compiled: &Compiled) {
    let stage = compiled
        .snapshot
        .stage("shop/pets/prod")
        .expect("stage shop/pets/prod is served");
    assert!(
        stage.main.routes.iter().any(|r| r.key == "GET /pets"),
        "GET /pets is served"
    );
    assert!(status(compiled, Kind::Api, "pets").is_accepted());
}

/// The route keys a stage serves.
pub fn route_keys(compiled: &Compiled, stage: &str) -> Vec<String> {
    compiled
        .snapshot
        .stage(stage)
        .map(|s| s.main.routes.iter().map(|r| r.key.clone()).collect())
        .unwrap_or_default()
}
