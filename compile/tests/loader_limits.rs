//! The YAML loader's limits: derived from the size of the input, so that a large tenant's
//! files load, while alias expansion stays bounded and every limit that is hit is named.

use std::fmt::Write as _;

use causeway_compile::load::{LoadError, MAX_ALIAS_REPLAYED_NODES, YamlLimits, parse_documents};
use causeway_compile::{CompileOptions, Inventory, Kind, StatusDetail, compile};

const KEYS: usize = 100_000;

/// One file: an Api with a Stage, a UsagePlan with `keys` API keys, and a Secret per key (the
/// way a tenant who issues keys one by one writes them).
fn usage_plan_file(keys: usize) -> String {
    let mut out = String::with_capacity(keys * 220);
    out.push_str(
        "apiVersion: causeway.dev/v1alpha1\nkind: Api\nmetadata: {name: big, namespace: tenant}\nspec: {}\n---\n\
         apiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {name: r, namespace: tenant}\nspec:\n  apiRef: {name: big}\n  routeKey: GET /r\n  apiKeyRequired: true\n  integration: {type: MOCK}\n---\n\
         apiVersion: causeway.dev/v1alpha1\nkind: Stage\nmetadata: {name: prod, namespace: tenant}\nspec: {apiRef: {name: big}, autoDeploy: true}\n---\n\
         apiVersion: causeway.dev/v1alpha1\nkind: UsagePlan\nmetadata: {name: large, namespace: tenant}\nspec:\n  apiStages: [{api: big, stage: prod}]\n  apiKeys:\n",
    );
    for i in 0..keys {
        let _ = writeln!(
            out,
            "  - id: key-{i}\n    secretRef: {{name: key-{i}, key: value}}"
        );
    }
    for i in 0..keys {
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: key-{i}, namespace: tenant}}\nstringData: {{value: k-{i:0>8}-0123456789abcdef}}\n"
        );
    }
    out
}

#[test]
fn a_usage_plan_with_100_000_keys_and_a_secret_per_key_loads_and_compiles_heavy() {
    let text = usage_plan_file(KEYS);
    let defaults = YamlLimits::for_input(1);
    assert!(
        KEYS + 4 > defaults.max_documents,
        "the file has more documents than the small-file floor allows"
    );
    let objects = parse_documents("tenant.yaml", &text, "default").expect("the file loads");
    assert_eq!(objects.len(), KEYS + 4);

    let mut inventory = Inventory::default();
    for object in objects {
        inventory.add(object);
    }
    let compiled = compile(&inventory, &CompileOptions::default());
    let plan = compiled
        .statuses
        .iter()
        .find(|s| s.kind == Kind::UsagePlan)
        .expect("a status for the plan");
    assert!(plan.is_accepted(), "{:?}", plan.problem());
    assert_eq!(
        plan.detail,
        StatusDetail::UsagePlan {
            key_count: KEYS as u32
        }
    );
    assert_eq!(compiled.snapshot.usage_plans[0].keys.len(), KEYS);
}

/// The classic billion laughs: nine levels of nine aliases each, 9^9 nodes from 1 KB.
fn billion_laughs() -> String {
    let mut out = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut previous = 'a';
    for c in 'b'..='i' {
        let refs = vec![format!("*{previous}"); 9].join(",");
        let _ = writeln!(out, "  {c}: &{c} [{refs}]");
        previous = c;
    }
    out
}

#[test]
fn an_alias_bomb_is_refused_naming_the_file_and_the_alias_limit() {
    let error = parse_documents("bomb.yaml", &billion_laughs(), "default")
        .expect_err("an alias bomb must not load");
    match &error {
        LoadError::Limit {
            source_name,
            limit,
            max,
            ..
        } => {
            assert_eq!(source_name, "bomb.yaml");
            assert!(limit.contains("alias"), "{limit}");
            assert_eq!(*max, MAX_ALIAS_REPLAYED_NODES);
        }
        other => panic!("expected a limit error, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.starts_with("bomb.yaml: YAML limit exceeded: alias"),
        "{message}"
    );
    assert!(
        message.contains(&format!("limit {MAX_ALIAS_REPLAYED_NODES}")),
        "{message}"
    );
}

#[test]
fn an_alias_bomb_padded_with_honest_bulk_is_still_refused() {
    // A large file raises the size-derived limits; alias expansion must not grow with them.
    let padding = usage_plan_file(20_000);
    let text = format!("{padding}---\n{}", billion_laughs());
    let error =
        parse_documents("padded.yaml", &text, "default").expect_err("an alias bomb must not load");
    assert!(
        matches!(&error, LoadError::Limit { limit, .. } if limit.contains("alias")),
        "{error}"
    );
}

#[test]
fn a_few_honest_aliases_still_load() {
    // Anchors live within one document.
    let text = "apiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {name: r, namespace: ns, labels: &l {team: a}, annotations: *l}\nspec:\n  apiRef: {name: a}\n  routeKey: GET /r\n  integration: {type: MOCK}\n";
    let objects = parse_documents("aliases.yaml", text, "default").expect("loads");
    assert_eq!(objects.len(), 1);
}

#[test]
fn limits_grow_with_the_input_and_nesting_beyond_the_depth_limit_is_refused_by_name() {
    // A document takes at least `---\n`: one document per 4 bytes is never too few.
    let limits = YamlLimits::for_input(4_000_000);
    assert!(limits.max_documents >= 1_000_000);
    assert!(limits.max_nodes >= 4_000_000);
    let deep = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
    let error = parse_documents("deep.yaml", &deep, "default").expect_err("too deep");
    let message = error.to_string();
    assert!(
        message.starts_with("deep.yaml: YAML limit exceeded: nesting depth (limit 64)"),
        "{message}"
    );
}
