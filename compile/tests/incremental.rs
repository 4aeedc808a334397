//! The incremental compiler: whatever the edits, a `Compiler` that has seen every earlier
//! inventory gives exactly what a fresh `compile` of the current one gives (snapshot, version,
//! statuses, deployments).

use std::fmt::Write as _;

use causeway_compile::{CompileOptions, Compiler, Inventory, compile};
use k8s_openapi::ByteString;
use proptest::prelude::*;

const APIS: usize = 3;
const ROUTES: usize = 6;

/// Three Apis in two namespaces, each with a Service, an EndpointSlice, a Stage and routes;
/// an Authorizer; a usage plan with keys in a Secret.
fn base() -> Inventory {
    let mut yaml = String::new();
    for i in 0..APIS {
        let ns = if i == 2 { "b" } else { "a" };
        let _ = write!(
            yaml,
            "---\napiVersion: causeway.dev/v1alpha1\nkind: Api\nmetadata: {{name: api{i}, namespace: {ns}}}\nspec: {{}}\n\
             ---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: {ns}}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc{i}-x\n  namespace: {ns}\n  labels: {{kubernetes.io/service-name: svc{i}}}\naddressType: IPv4\nendpoints:\n  - addresses: [\"10.0.0.{i}\"]\nports: [{{name: http, port: 8080}}]\n\
             ---\napiVersion: causeway.dev/v1alpha1\nkind: Stage\nmetadata: {{name: api{i}-prod, namespace: {ns}}}\nspec: {{apiRef: {{name: api{i}}}, stageName: prod, autoDeploy: true, variables: {{v: one}}}}\n"
        );
        for j in 0..ROUTES {
            let _ = write!(
                yaml,
                "---\napiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {{name: api{i}-r{j}, namespace: {ns}}}\nspec:\n  apiRef: {{name: api{i}}}\n  routeKey: GET /r{j}/{{id}}\n  integration:\n    type: HTTP_PROXY\n    backendRef: {{name: svc{i}, port: 80}}\n    path: /${{stageVariables.v}}/{{id}}\n"
            );
        }
    }
    yaml.push_str(
        "---\napiVersion: causeway.dev/v1alpha1\nkind: Authorizer\nmetadata: {name: auth, namespace: a}\nspec:\n  apiRef: {name: api0}\n  type: REQUEST\n  identitySource: [\"$request.header.x-token\"]\n  function: {backendRef: {name: svc0, port: 80}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {name: keys, namespace: a}\nstringData: {k1: key-one-0123456789abcdef, k2: key-two-0123456789abcdef}\n\
         ---\napiVersion: causeway.dev/v1alpha1\nkind: UsagePlan\nmetadata: {name: plan, namespace: a}\nspec:\n  apiStages: [{api: api0, stage: prod}, {api: api1, stage: prod}]\n  apiKeys:\n    - {id: k1, secretRef: {name: keys, key: k1}}\n    - {id: k2, secretRef: {name: keys, key: k2}}\n",
    );
    let mut inventory = Inventory::default();
    inventory.add_yaml("base.yaml", &yaml).expect("base parses");
    inventory
}

/// One edit, as a user (or the API server) would make it.
#[derive(Debug, Clone)]
enum Edit {
    /// Route `i`: a new route key (may clash with another route's).
    RouteKey(usize, usize),
    /// Route `i` names another Api (maybe one that does not exist).
    RouteApi(usize, usize),
    /// Route `i`: a MOCK integration instead.
    RouteMock(usize),
    /// Route `i` names an authorizer.
    RouteAuthorizer(usize),
    /// Route `i` removed.
    RemoveRoute(usize),
    /// A new route on Api `i` with key `k`.
    AddRoute(usize, usize),
    /// Stage `i`: another value of its variable.
    StageVariable(usize, usize),
    /// Stage `i` removed.
    RemoveStage(usize),
    /// Api `i`: a description (changes its deployment id).
    ApiDescription(usize, usize),
    /// Api `i` removed.
    RemoveApi(usize),
    /// Service `i`: another port (routes naming port 80 are refused).
    ServicePort(usize, i32),
    /// EndpointSlice `i`: another address.
    SliceAddress(usize, u8),
    /// The key Secret: another value for k1.
    SecretValue(usize),
    /// The usage plan's second key points at a missing Secret key.
    PlanKeyRef(bool),
    /// Remove `resourceVersion` from every object (content fingerprints instead).
    ForgetVersions,
}

fn edit() -> impl Strategy<Value = Edit> {
    let route = 0..APIS * ROUTES + 2;
    prop_oneof![
        (route.clone(), 0..4usize).prop_map(|(i, k)| Edit::RouteKey(i, k)),
        (route.clone(), 0..APIS + 1).prop_map(|(i, a)| Edit::RouteApi(i, a)),
        route.clone().prop_map(Edit::RouteMock),
        route.clone().prop_map(Edit::RouteAuthorizer),
        route.clone().prop_map(Edit::RemoveRoute),
        (0..APIS, 0..8usize).prop_map(|(a, k)| Edit::AddRoute(a, k)),
        (0..APIS, 0..3usize).prop_map(|(s, v)| Edit::StageVariable(s, v)),
        (0..APIS).prop_map(Edit::RemoveStage),
        (0..APIS, 0..3usize).prop_map(|(a, d)| Edit::ApiDescription(a, d)),
        (0..APIS).prop_map(Edit::RemoveApi),
        (0..APIS, prop_oneof![Just(80), Just(81)]).prop_map(|(s, p)| Edit::ServicePort(s, p)),
        (0..APIS, 1..4u8).prop_map(|(s, a)| Edit::SliceAddress(s, a)),
        (0..3usize).prop_map(Edit::SecretValue),
        any::<bool>().prop_map(Edit::PlanKeyRef),
        Just(Edit::ForgetVersions),
    ]
}

/// Applies `edit`, giving every changed object a new `resourceVersion` as the API server
/// would (`n` is unique per edit).
fn apply(inventory: &mut Inventory, edit: &Edit, n: usize) {
    let rv = Some(format!("edit-{n}"));
    match *edit {
        Edit::RouteKey(i, k) => {
            if let Some(r) = inventory.routes.get_mut(i) {
                r.spec.route_key = format!("GET /r{k}/{{id}}");
                r.metadata.resource_version = rv;
            }
        }
        Edit::RouteApi(i, a) => {
            if let Some(r) = inventory.routes.get_mut(i) {
                r.spec.api_ref.name = format!("api{a}");
                r.metadata.resource_version = rv;
            }
        }
        Edit::RouteMock(i) => {
            if let Some(r) = inventory.routes.get_mut(i) {
                r.spec.integration = serde_json::from_value(serde_json::json!({"type": "MOCK"}))
                    .expect("a MOCK integration");
                r.metadata.resource_version = rv;
            }
        }
        Edit::RouteAuthorizer(i) => {
            if let Some(r) = inventory.routes.get_mut(i) {
                r.spec.authorizer_ref = Some(
                    serde_json::from_value(serde_json::json!({"name": "auth"})).expect("a ref"),
                );
                r.metadata.resource_version = rv;
            }
        }
        Edit::RemoveRoute(i) => {
            if i < inventory.routes.len() {
                inventory.routes.remove(i);
            }
        }
        Edit::AddRoute(a, k) => {
            let Some(template) = inventory.routes.first().cloned() else {
                return;
            };
            let mut r = template;
            r.metadata.name = Some(format!("added-{n}"));
            r.metadata.namespace = Some(if a == 2 { "b" } else { "a" }.into());
            r.metadata.resource_version = rv;
            r.spec.api_ref.name = format!("api{a}");
            r.spec.route_key = format!("GET /r{k}/{{id}}");
            inventory.routes.push(r);
        }
        Edit::StageVariable(s, v) => {
            if let Some(stage) = inventory.stages.get_mut(s) {
                stage
                    .spec
                    .variables
                    .insert("v".into(), ["one", "two", "three"][v].into());
                stage.metadata.resource_version = rv;
            }
        }
        Edit::RemoveStage(s) => {
            if s < inventory.stages.len() {
                inventory.stages.remove(s);
            }
        }
        Edit::ApiDescription(a, d) => {
            if let Some(api) = inventory.apis.get_mut(a) {
                api.spec.description = Some(format!("description {d}"));
                api.metadata.resource_version = rv;
            }
        }
        Edit::RemoveApi(a) => {
            if a < inventory.apis.len() {
                inventory.apis.remove(a);
            }
        }
        Edit::ServicePort(s, port) => {
            if let Some(svc) = inventory.services.get_mut(s)
                && let Some(p) = svc
                    .spec
                    .as_mut()
                    .and_then(|spec| spec.ports.as_mut())
                    .and_then(|ports| ports.first_mut())
            {
                p.port = port;
                svc.metadata.resource_version = rv;
            }
        }
        Edit::SliceAddress(s, a) => {
            if let Some(slice) = inventory.endpoint_slices.get_mut(s)
                && let Some(e) = slice.endpoints.first_mut()
            {
                e.addresses = vec![format!("10.0.1.{a}")];
                slice.metadata.resource_version = rv;
            }
        }
        Edit::SecretValue(v) => {
            if let Some(secret) = inventory.secrets.first_mut() {
                secret.string_data = None;
                let mut data = std::collections::BTreeMap::new();
                data.insert(
                    "k1".to_string(),
                    ByteString(format!("key-one-{v}-0123456789abcdef").into_bytes()),
                );
                data.insert(
                    "k2".to_string(),
                    ByteString(b"key-two-0123456789abcdef".to_vec()),
                );
                secret.data = Some(data);
                secret.metadata.resource_version = rv;
            }
        }
        Edit::PlanKeyRef(missing) => {
            if let Some(plan) = inventory.usage_plans.first_mut()
                && let Some(key) = plan.spec.api_keys.get_mut(1)
            {
                key.secret_ref.key = if missing { "nope" } else { "k2" }.into();
                plan.metadata.resource_version = rv;
            }
        }
        Edit::ForgetVersions => {
            for r in &mut inventory.routes {
                r.metadata.resource_version = None;
            }
            for s in &mut inventory.stages {
                s.metadata.resource_version = None;
            }
            for a in &mut inventory.apis {
                a.metadata.resource_version = None;
            }
            for s in &mut inventory.secrets {
                s.metadata.resource_version = None;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn an_incremental_compile_equals_a_full_compile_after_any_edits(
        edits in proptest::collection::vec(edit(), 1..12)
    ) {
        let options = CompileOptions::default();
        let mut inventory = base();
        let mut compiler = Compiler::new(options.clone());
        prop_assert_eq!(compiler.compile(&inventory), compile(&inventory, &options));
        for (n, e) in edits.iter().enumerate() {
            apply(&mut inventory, e, n);
            let incremental = compiler.compile(&inventory);
            let full = compile(&inventory, &options);
            prop_assert_eq!(&incremental.snapshot.version, &full.snapshot.version, "after {:?}", e);
            prop_assert_eq!(incremental, full, "after {:?}", e);
        }
    }
}

#[test]
fn the_base_inventory_compiles_with_every_object_accepted() {
    // Guards the property above against testing only refusals.
    let compiled = compile(&base(), &CompileOptions::default());
    let refused: Vec<_> = compiled
        .statuses
        .iter()
        .filter(|s| !s.is_accepted())
        .map(|s| format!("{:?} {}: {:?}", s.kind, s.name, s.problem()))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(compiled.snapshot.stages.len(), APIS);
    assert_eq!(compiled.snapshot.usage_plans[0].keys.len(), 2);
}

#[test]
fn changing_options_is_seen_by_the_incremental_compiler() {
    let inventory = base();
    let mut compiler = Compiler::new(CompileOptions::default());
    let first = compiler.compile(&inventory);
    let options = CompileOptions {
        execute_api_domain: "example.test".into(),
        ..CompileOptions::default()
    };
    compiler.set_options(options.clone());
    let second = compiler.compile(&inventory);
    assert_ne!(first.snapshot.version, second.snapshot.version);
    assert_eq!(second, compile(&inventory, &options));
}

#[test]
fn sealing_with_kept_part_digests_gives_the_plain_content_hash() {
    let compiled = compile(&base(), &CompileOptions::default());
    assert_eq!(compiled.snapshot.version, compiled.snapshot.content_hash());
    assert!(compiled.snapshot.version_matches());
}

#[test]
fn a_route_changed_at_the_same_generation_with_a_new_resource_version_is_recompiled() {
    let mut inventory = base();
    for (n, route) in inventory.routes.iter_mut().enumerate() {
        route.metadata.resource_version = Some(format!("rv-{n}"));
        route.metadata.generation = Some(1);
    }
    let mut compiler = Compiler::new(CompileOptions::default());
    let first = compiler.compile(&inventory);
    let route = &mut inventory.routes[0];
    route.spec.route_key = "GET /renamed/{id}".into();
    route.metadata.resource_version = Some("rv-new".into());
    assert_eq!(route.metadata.generation, Some(1));
    let second = compiler.compile(&inventory);
    assert_ne!(second.snapshot.version, first.snapshot.version);
    assert_eq!(second, compile(&inventory, &CompileOptions::default()));
    let keys: Vec<&str> = second.snapshot.stages[0]
        .main
        .routes
        .iter()
        .map(|r| r.key.as_str())
        .collect();
    assert!(keys.contains(&"GET /renamed/{id}"), "{keys:?}");
}

#[test]
fn a_compiler_keeps_giving_what_compile_gives_across_unchanged_and_changed_compiles() {
    // `compile` keeps no memo and moves its parts; a `Compiler` copies them out of its memo.
    let mut inventory = base();
    let options = CompileOptions::default();
    let mut compiler = Compiler::new(options.clone());
    for round in 0..3 {
        assert_eq!(compiler.compile(&inventory), compile(&inventory, &options));
        assert_eq!(compiler.compile(&inventory), compile(&inventory, &options));
        let stage = &mut inventory.stages[round % APIS];
        stage
            .spec
            .variables
            .insert("v".into(), format!("round{round}"));
        stage.metadata.resource_version = Some(format!("stage-{round}"));
    }
}
