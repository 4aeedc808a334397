//! The crate graph is the architecture: the proxy must never depend on a Kubernetes client.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use causeway_e2e::repo_root;

#[test]
fn the_proxy_has_no_kubernetes_client_in_its_dependency_tree() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().unwrap())
                .collect();
            (n["id"].as_str().unwrap(), deps)
        })
        .collect();
    let proxy = names
        .iter()
        .find(|(_, n)| **n == "causeway-proxy")
        .map(|(id, _)| *id)
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut stack = vec![proxy];
    while let Some(id) = stack.pop() {
        if seen.insert(names[id]) {
            stack.extend(nodes.get(id).into_iter().flatten().copied());
        }
    }
    assert!(
        seen.contains("hyper"),
        "walk found the proxy's dependencies: {seen:?}"
    );
    for forbidden in [
        "kube",
        "kube-client",
        "kube-runtime",
        "kube-core",
        "k8s-openapi",
        "causeway-compile",
    ] {
        assert!(
            !seen.contains(forbidden),
            "causeway-proxy depends on {forbidden}"
        );
    }
}
