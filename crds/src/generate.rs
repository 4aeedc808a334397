//! The CRD YAML generator: `causeway crds` prints it, and `deploy/crds/causeway.dev.yaml` holds
//! the committed copy (a test fails when that copy is stale).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Api, Authorizer, Route, Stage, UsagePlan, VpcLink};

/// Where the committed CRD YAML lives, relative to the repository root.
pub const COMMITTED_PATH: &str = "deploy/crds/causeway.dev.yaml";

/// The six CRDs, in a fixed order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Api::crd(),
        Route::crd(),
        Stage::crd(),
        UsagePlan::crd(),
        Authorizer::crd(),
        VpcLink::crd(),
    ]
}

/// All CRDs as one multi-document YAML stream, byte-identical for the same types.
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::from(
        "# Generated from the Rust types in crds/ by `causeway crds`. Do not edit by hand;\n\
         # regenerate with: cargo run -p causeway -- crds > deploy/crds/causeway.dev.yaml\n",
    );
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crd_yaml_matches_the_rust_types() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/crds/causeway.dev.yaml"
        );
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        let generated = crds_yaml().expect("CRDs serialize");
        assert!(
            committed == generated,
            "{COMMITTED_PATH} is stale: run `cargo run -p causeway -- crds > {COMMITTED_PATH}`"
        );
    }

    #[test]
    fn every_kind_has_a_short_name_the_causeway_category_and_a_status_subresource() {
        for crd in crds() {
            let names = &crd.spec.names;
            let short = names.short_names.clone().unwrap_or_default();
            assert!(short.iter().all(|s| s.starts_with("cw")), "{short:?}");
            assert_eq!(
                names.categories.clone().unwrap_or_default(),
                vec!["causeway"]
            );
            let version = &crd.spec.versions[0];
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
            assert!(
                version
                    .additional_printer_columns
                    .as_ref()
                    .is_some_and(|c| c.len() >= 2)
            );
        }
    }

    #[test]
    fn every_schema_property_has_a_description_for_kubectl_explain() {
        fn walk(path: &str, v: &serde_json::Value, missing: &mut Vec<String>) {
            if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
                for (name, prop) in props {
                    let here = format!("{path}.{name}");
                    let top = matches!(name.as_str(), "apiVersion" | "kind" | "metadata");
                    if !top && prop.get("description").is_none() {
                        missing.push(here.clone());
                    }
                    walk(&here, prop, missing);
                }
            }
            for key in ["items", "additionalProperties"] {
                if let Some(inner) = v.get(key) {
                    walk(path, inner, missing);
                }
            }
        }
        let mut missing = Vec::new();
        for crd in crds() {
            let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            walk(
                &crd.spec.names.kind,
                &schema["openAPIV3Schema"],
                &mut missing,
            );
        }
        assert!(
            missing.is_empty(),
            "fields without a doc comment: {missing:?}"
        );
    }

    #[test]
    fn cel_rules_are_in_the_schema_and_evaluate_client_side() {
        use crate::stage::StageSpec;
        let yaml = crds_yaml().unwrap();
        assert!(yaml.contains("x-kubernetes-validations"));
        let both: crate::Stage = serde_json::from_value(serde_json::json!({
            "apiVersion": "causeway.dev/v1alpha1", "kind": "Stage",
            "metadata": {"name": "prod", "namespace": "default"},
            "spec": {"apiRef": {"name": "pets"}, "deploymentId": "abc", "autoDeploy": true}
        }))
        .unwrap();
        assert!(both.validate_cel().is_err());
        let one = crate::Stage::new(
            "prod",
            StageSpec {
                api_ref: crate::common::ApiRef {
                    name: "pets".into(),
                },
                stage_name: None,
                description: None,
                deployment_id: None,
                auto_deploy: Some(true),
                variables: Default::default(),
                throttle: None,
                route_settings: vec![],
                canary: None,
                cache: None,
                access_log: None,
                domains: vec![],
            },
        );
        assert!(one.validate_cel().is_ok(), "{:?}", one.validate_cel());
    }
}
