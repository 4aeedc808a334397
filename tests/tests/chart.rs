//! Checks of the Helm chart that need no `helm` binary.

use causeway_e2e::repo_root;

#[test]
fn the_chart_ships_exactly_the_committed_crds() {
    let root = repo_root();
    let committed =
        std::fs::read_to_string(root.join("deploy/crds/causeway.dev.yaml")).expect("deploy/crds");
    let chart =
        std::fs::read_to_string(root.join("charts/causeway/files/crds.yaml")).expect("chart CRDs");
    assert!(
        committed == chart,
        "charts/causeway/files/crds.yaml is stale: cp deploy/crds/causeway.dev.yaml charts/causeway/files/crds.yaml"
    );
}

#[test]
fn the_values_schema_is_json_and_requires_the_image() {
    let text = std::fs::read_to_string(repo_root().join("charts/causeway/values.schema.json"))
        .expect("schema");
    let schema: serde_json::Value =
        serde_json::from_str(&text).expect("values.schema.json is JSON");
    assert!(
        schema["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|v| v == "image"))
    );
}

#[test]
fn the_proxy_gets_no_kubernetes_credentials() {
    let text = std::fs::read_to_string(repo_root().join("charts/causeway/templates/proxy.yaml"))
        .expect("proxy.yaml");
    assert_eq!(
        text.matches("automountServiceAccountToken: false").count(),
        2,
        "ServiceAccount and pod"
    );
    let rbac =
        std::fs::read_to_string(repo_root().join("charts/causeway/templates/controller-rbac.yaml"))
            .expect("rbac");
    assert!(
        !rbac.contains("causeway-proxy"),
        "no binding names the proxy's ServiceAccount"
    );
}
