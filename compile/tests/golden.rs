//! Golden tests: YAML a user would apply in, snapshot + statuses + deployment ids out.

use causeway_compile::{CompileOptions, Compiled, Inventory, compile};
use serde_json::json;

fn compile_text(name: &str, text: &str) -> Compiled {
    let mut inventory = Inventory::default();
    inventory.add_yaml(name, text).expect("fixture parses");
    compile(&inventory, &CompileOptions::default())
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn golden(compiled: &Compiled) -> serde_json::Value {
    json!({
        "snapshot": compiled.snapshot,
        "statuses": compiled.statuses,
        "deployments": compiled
            .deployments
            .iter()
            .map(|d| json!({"api": d.api, "id": d.id}))
            .collect::<Vec<_>>(),
    })
}

#[test]
fn the_petstore_example_compiles_to_two_stages_of_six_routes() {
    let compiled = compile_text("petstore.yaml", &fixture("petstore.yaml"));
    assert!(
        compiled.statuses.iter().all(|s| s.is_accepted()),
        "{:#?}",
        compiled
            .statuses
            .iter()
            .filter_map(|s| s.problem())
            .collect::<Vec<_>>()
    );
    assert_eq!(compiled.snapshot.stages.len(), 2);
    assert!(
        compiled
            .snapshot
            .stages
            .iter()
            .all(|s| s.main.routes.len() == 6)
    );
    insta::assert_json_snapshot!("petstore", golden(&compiled));
}

#[test]
fn domains_canaries_policies_and_url_backends_compile_as_documented() {
    let text = fixture("domains_and_canary.yaml");
    let first = compile_text("domains_and_canary.yaml", &text);
    let id = first
        .deployments
        .iter()
        .find(|d| d.api == "shop/orders")
        .expect("orders is deployed")
        .id
        .clone();
    let compiled = compile_text(
        "domains_and_canary.yaml",
        &text.replace("will-be-replaced", &id),
    );
    assert!(
        compiled.statuses.iter().all(|s| s.is_accepted()),
        "{:#?}",
        compiled
            .statuses
            .iter()
            .filter_map(|s| s.problem())
            .collect::<Vec<_>>()
    );
    insta::assert_json_snapshot!("domains_and_canary", golden(&compiled));
}

#[test]
fn objects_wrong_in_one_way_each_get_their_reason_and_the_rest_is_served() {
    let compiled = compile_text("rejections.yaml", &fixture("rejections.yaml"));
    let stage = compiled
        .snapshot
        .stage("shop/pets/prod")
        .expect("prod served");
    assert_eq!(stage.main.routes.len(), 1);
    insta::assert_yaml_snapshot!("rejections", golden(&compiled));
}
