//! The `causeway` binary's offline commands: `crds`, `validate` and `export` refusals.

use std::process::Command;

use causeway_e2e::{bin, repo_root};

#[test]
fn causeway_crds_prints_exactly_the_committed_yaml() {
    let out = Command::new(bin("causeway")).arg("crds").output().unwrap();
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(repo_root().join("deploy/crds/causeway.dev.yaml")).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "deploy/crds is stale"
    );
}

#[test]
fn every_example_directory_passes_validate() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let has_yaml = path.is_dir()
            && std::fs::read_dir(&path)
                .unwrap()
                .any(|e| e.unwrap().path().extension().and_then(|x| x.to_str()) == Some("yaml"));
        if !has_yaml {
            continue;
        }
        let out = Command::new(bin("causeway"))
            .args(["validate", "-f", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not validate:\n{}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 1, "no example directories found");
}

#[test]
fn validate_names_a_rejected_object_with_its_reason_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("api.yaml"),
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: shop, namespace: default}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: orphan, namespace: default}
spec:
  apiRef: {name: shop}
  routeKey: GET /orders
  integration: {type: HTTP_PROXY, backendRef: {name: missing-service, port: 80}}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: fine, namespace: default}
spec:
  apiRef: {name: shop}
  routeKey: GET /ping
  integration: {type: MOCK, mock: {body: pong}}
"#,
    )
    .unwrap();
    let out = Command::new(bin("causeway"))
        .args(["validate", "-f", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let orphan = stdout
        .lines()
        .find(|l| l.contains("default/orphan"))
        .expect("orphan row");
    assert!(
        orphan.contains("False") && orphan.contains("BackendNotFound"),
        "{orphan}"
    );
    let fine = stdout
        .lines()
        .find(|l| l.contains("default/fine"))
        .expect("fine row");
    assert!(fine.contains("True"), "{fine}");
}

#[test]
fn validate_reports_an_unreadable_file_by_name_and_exits_two() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: causeway.dev/v1alpha1\nkind: Stage\nmetadata: {name: x}\nspec: 3\n",
    )
    .unwrap();
    let out = Command::new(bin("causeway"))
        .args(["validate", "-f", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("Stage x"),
        "{stderr}"
    );
}

#[test]
fn the_same_object_in_two_files_is_an_error_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let api = "apiVersion: causeway.dev/v1alpha1\nkind: Api\nmetadata: {name: shop, namespace: default}\nspec: {}\n";
    std::fs::write(dir.path().join("one.yaml"), api).unwrap();
    std::fs::write(dir.path().join("two.yaml"), api).unwrap();
    let out = Command::new(bin("causeway"))
        .args(["validate", "-f", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Api default/shop is defined twice")
            && stderr.contains("one.yaml")
            && stderr.contains("two.yaml"),
        "{stderr}"
    );
}

#[test]
fn standalone_refuses_to_start_on_a_path_that_does_not_exist() {
    let out = Command::new(bin("causeway"))
        .args([
            "standalone",
            "-f",
            "/nonexistent/causeway-config",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/causeway-config does not exist"),
        "{stderr}"
    );
}

#[test]
fn exporting_a_websocket_api_is_refused_with_the_reason() {
    let dir = repo_root().join("examples/websocket");
    let out = Command::new(bin("causeway"))
        .args(["export", "chat", "-f", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("WebSocket Api"), "{stderr}");
    assert!(out.stdout.is_empty(), "no partial document is written");
}
