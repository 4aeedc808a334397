//! OpenAPI import and export: the corpus under `tests/fixtures/openapi/` (each document imports
//! and compiles with every object accepted, or is refused with pointers), golden snapshots of
//! what each imports to, round trips of every example and fixture, and a fuzz-style property
//! test that the importer never panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use causeway_compile::openapi::{
    ExportFormat, ExportOptions, ImportError, ImportMapping, ImportOptions, Imported, NoteKind,
    StageChoice, export, import,
};
use causeway_compile::{CompileOptions, Compiled, Inventory, Kind, compile};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn corpus_dir() -> PathBuf {
    repo_root().join("tests/fixtures/openapi")
}

/// One corpus document with its optional mapping file and extra objects.
struct Case {
    name: String,
    text: String,
    mapping: ImportMapping,
    extra: Option<String>,
}

fn corpus() -> Vec<Case> {
    let dir = corpus_dir();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/openapi")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (n.ends_with(".json") || n.ends_with(".yaml"))
                && !n.ends_with(".mapping.yaml")
                && !n.ends_with(".extra.yaml")
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|path| {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("stem")
                .to_string();
            let mapping = std::fs::read_to_string(dir.join(format!("{stem}.mapping.yaml")))
                .map(|t| ImportMapping::parse(&t).expect("mapping parses"))
                .unwrap_or_default();
            let extra = std::fs::read_to_string(dir.join(format!("{stem}.extra.yaml"))).ok();
            Case {
                text: std::fs::read_to_string(&path).expect("read"),
                name: stem,
                mapping,
                extra,
            }
        })
        .collect()
}

fn options(mapping: ImportMapping) -> ImportOptions {
    ImportOptions {
        mapping,
        ..ImportOptions::default()
    }
}

fn inventory_of(imported: &Imported, extra: Option<&str>) -> Inventory {
    let mut inventory = Inventory::default();
    inventory
        .add_yaml("imported.yaml", &imported.to_yaml())
        .expect("the imported YAML parses back");
    if let Some(extra) = extra {
        inventory.add_yaml("extra.yaml", extra).expect("extra YAML");
    }
    // The mapping files run the functions on this machine (`http://127.0.0.1:…`): an address
    // is reached only through a VpcLink that lists it, as in a cluster.
    inventory
        .add_yaml("local-functions.yaml", LOCAL_FUNCTIONS)
        .expect("the local VpcLink parses");
    inventory
}

/// A VpcLink that lets namespace `default` reach the functions the mapping files run locally.
const LOCAL_FUNCTIONS: &str = "apiVersion: causeway.dev/v1alpha1
kind: VpcLink
metadata: {name: local-functions, namespace: default}
spec:
  allowedNamespaces: [default]
  addresses: [127.0.0.1]
";

fn rejected(compiled: &Compiled) -> Vec<String> {
    compiled
        .statuses
        .iter()
        .filter(|s| !s.is_accepted())
        .map(|s| {
            let c = s.problem().expect("a problem");
            format!("{:?} {}: {}: {}", s.kind, s.name, c.reason, c.message)
        })
        .collect()
}

/// What each corpus document is expected to do.
fn expected() -> BTreeMap<&'static str, &'static str> {
    [
        ("api-key-in-query", "refused"),
        ("cdk-specrestapi-cognito", "served"),
        ("dynamodb-service-integration", "refused"),
        ("gateway-responses", "served"),
        ("http-api-http-proxy", "served"),
        ("http-api-lambda-export", "served"),
        ("http-api-request-authorizer", "served"),
        ("ip-policy-and-binary", "served"),
        ("lambda-non-proxy-calc", "served"),
        ("lambda-non-proxy-mixed", "served"),
        ("mock-templates", "served"),
        ("not-openapi", "refused"),
        ("oas31-webhooks", "served"),
        ("oauth2-security", "refused"),
        ("openid-connect-mapped", "served"),
        ("petstore-rest-oas30", "served"),
        ("petstore-rest-swagger20", "served"),
        ("private-api-vpce-policy", "refused"),
        ("remote-ref-model", "served"),
        ("request-validation-nested", "served"),
        ("rest-any-method-proxy", "served"),
        ("sam-definition-body-unresolved", "refused"),
        ("sam-resolved-api-keys", "served"),
        ("swagger20-token-authorizer", "served"),
        ("swagger20-unmapped-request-authorizer", "refused"),
        ("terraform-body-vpc-link", "served"),
    ]
    .into_iter()
    .collect()
}

/// The snapshot text of an import: the YAML written and every note.
fn golden_text(result: &Result<Imported, ImportError>) -> String {
    match result {
        Ok(imported) => {
            let notes: Vec<String> = imported.notes.iter().map(|n| n.to_string()).collect();
            format!("{}\n# notes\n{}\n", imported.to_yaml(), notes.join("\n"))
        }
        Err(e) => format!("# refused\n{e}\n"),
    }
}

#[test]
fn every_corpus_document_imports_and_compiles_with_every_object_accepted_or_is_refused_with_pointers()
 {
    let cases = corpus();
    let expected = expected();
    assert!(
        cases.len() >= 20,
        "the corpus has {} documents",
        cases.len()
    );
    let (mut served, mut refused) = (0, 0);
    let mut counts: BTreeMap<NoteKind, usize> = BTreeMap::new();
    println!(
        "{:<40} {:<8} {:>6} {:>7} {:>8} {:>8}",
        "DOCUMENT", "RESULT", "ROUTES", "DROPPED", "SECURITY", "IGNORED"
    );
    for case in &cases {
        let want = expected
            .get(case.name.as_str())
            .unwrap_or_else(|| panic!("{}: add it to expected()", case.name));
        let result = import(&case.text, &options(case.mapping.clone()));
        insta::assert_snapshot!(format!("corpus_{}", case.name), golden_text(&result));
        match &result {
            Ok(imported) => {
                let compiled = compile(
                    &inventory_of(imported, case.extra.as_deref()),
                    &CompileOptions::default(),
                );
                let bad = rejected(&compiled);
                assert!(
                    bad.is_empty(),
                    "{}: imported, but compile rejects:\n{}",
                    case.name,
                    bad.join("\n")
                );
                assert_eq!(*want, "served", "{}: was expected to be refused", case.name);
                for n in &imported.notes {
                    assert!(
                        n.pointer.is_empty() || n.pointer.starts_with('/'),
                        "{}: note without a JSON pointer: {n}",
                        case.name
                    );
                    *counts.entry(n.kind).or_default() += 1;
                }
                served += 1;
                println!(
                    "{:<40} {:<8} {:>6} {:>7} {:>8} {:>8}",
                    case.name,
                    "served",
                    imported.routes.len(),
                    imported.count(NoteKind::Dropped),
                    imported.count(NoteKind::Security),
                    imported.count(NoteKind::Ignored)
                );
            }
            Err(e) => {
                assert_eq!(*want, "refused", "{}: refused: {e}", case.name);
                let pointers = match e {
                    ImportError::Insecure { notes } | ImportError::NothingImported { notes } => {
                        notes.iter().map(|n| n.pointer.clone()).collect()
                    }
                    ImportError::NotOpenApi { pointer, .. } => vec![pointer.clone()],
                    other => panic!("{}: refused without a pointer: {other}", case.name),
                };
                assert!(
                    !pointers.is_empty() && pointers.iter().all(|p| !p.is_empty()),
                    "{}: refused without pointers: {e}",
                    case.name
                );
                refused += 1;
                println!("{:<40} {:<8} {}", case.name, "refused", pointers.join(" "));
            }
        }
    }
    println!(
        "\n{} documents: {served} imported and compiled (every object Accepted), {refused} refused with pointers; notes: {} not carried over, {} security (allowed nowhere here), {} documentation-only",
        cases.len(),
        counts.get(&NoteKind::Dropped).copied().unwrap_or(0),
        counts.get(&NoteKind::Security).copied().unwrap_or(0),
        counts.get(&NoteKind::Ignored).copied().unwrap_or(0),
    );
    assert!(served >= 15 && refused >= 5);
}

#[test]
fn an_unmapped_lambda_authorizer_fails_the_import_unless_insecure_drop_is_allowed() {
    let text =
        std::fs::read_to_string(corpus_dir().join("swagger20-unmapped-request-authorizer.yaml"))
            .expect("read");
    let Err(ImportError::Insecure { notes }) = import(&text, &ImportOptions::default()) else {
        panic!("the import must fail");
    };
    assert_eq!(
        notes[0].pointer,
        "/paths/~1admin/post/security/0/admin-auth"
    );
    let forced = import(
        &text,
        &ImportOptions {
            allow_insecure_drop: true,
            ..ImportOptions::default()
        },
    )
    .expect("forced import");
    assert_eq!(forced.routes.len(), 1);
    assert!(forced.routes[0].spec.authorizer_ref.is_none());
    assert_eq!(forced.count(NoteKind::Security), 1);
}

/// A REST API export with a Cognito user pool authorizer, and one route requiring a scope.
const COGNITO_DOC: &str = r#"
openapi: 3.0.1
info: {title: books, version: "1"}
paths:
  /books:
    get:
      security: [{pool: [books/read]}]
      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: "https://books.example.com/"}
components:
  securitySchemes:
    pool:
      type: apiKey
      name: Authorization
      in: header
      x-amazon-apigateway-authtype: cognito_user_pools
      x-amazon-apigateway-authorizer:
        type: cognito_user_pools
        providerARNs: ["arn:aws:cognito-idp:eu-central-1:111122223333:userpool/eu-central-1_Qw3Rt5Yu"]
"#;

#[test]
fn a_cognito_pool_becomes_a_jwt_authorizer_with_the_pools_issuer_and_its_app_clients() {
    // Naming the app clients is enough: the issuer comes from the pool id and its region.
    let mapping =
        ImportMapping::parse("cognito:\n  eu-central-1_Qw3Rt5Yu: {audiences: [app-web]}\n")
            .expect("mapping");
    let imported = import(COGNITO_DOC, &options(mapping)).expect("import");
    let jwt = imported.authorizers[0]
        .spec
        .jwt
        .as_ref()
        .expect("a JWT authorizer");
    assert_eq!(
        jwt.issuer,
        "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Qw3Rt5Yu"
    );
    assert_eq!(jwt.audiences, ["app-web"]);
    assert_eq!(imported.routes[0].spec.authorization_scopes, ["books/read"]);
    // An issuer named in the mapping file wins.
    let elsewhere = ImportMapping::parse(
        "cognito:\n  \"arn:aws:cognito-idp:eu-central-1:111122223333:userpool/eu-central-1_Qw3Rt5Yu\": {issuer: https://idp.example.com, audiences: [app-web]}\n",
    )
    .expect("mapping");
    let imported = import(COGNITO_DOC, &options(elsewhere)).expect("import");
    let jwt = imported.authorizers[0]
        .spec
        .jwt
        .as_ref()
        .expect("a JWT authorizer");
    assert_eq!(jwt.issuer, "https://idp.example.com");
    // Without the app clients, any client of the pool would pass: the import fails, naming
    // the route's requirement.
    let Err(ImportError::Insecure { notes }) = import(COGNITO_DOC, &ImportOptions::default())
    else {
        panic!("the import must fail without audiences");
    };
    assert!(
        notes.iter().any(|n| n.message.contains("app client ids")),
        "{notes:?}"
    );
    // A securitySchemes entry must name its issuer: there is no AWS default for it.
    let oidc = COGNITO_DOC.replace(
        "type: apiKey\n      name: Authorization\n      in: header\n      x-amazon-apigateway-authtype: cognito_user_pools\n      x-amazon-apigateway-authorizer:\n        type: cognito_user_pools\n        providerARNs: [\"arn:aws:cognito-idp:eu-central-1:111122223333:userpool/eu-central-1_Qw3Rt5Yu\"]",
        "type: openIdConnect\n      openIdConnectUrl: https://idp.example.com/.well-known/openid-configuration",
    );
    assert!(oidc.contains("openIdConnect"));
    let no_issuer =
        ImportMapping::parse("securitySchemes:\n  pool: {audiences: [x]}\n").expect("mapping");
    let err = import(&oidc, &options(no_issuer)).expect_err("no issuer");
    assert!(matches!(err, ImportError::Insecure { .. }), "{err}");
}

#[test]
fn a_route_with_two_required_authorizers_is_refused_since_one_would_be_dropped() {
    let doc = r#"
openapi: 3.0.1
info: {title: two, version: "1"}
paths:
  /x:
    get:
      security: [{a: [], b: []}]
      responses: {}
      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: "https://x.example.com/"}
components:
  securitySchemes:
    a: {type: openIdConnect, openIdConnectUrl: "https://a.example.com/.well-known/openid-configuration"}
    b: {type: openIdConnect, openIdConnectUrl: "https://b.example.com/.well-known/openid-configuration"}
"#;
    let mapping = ImportMapping::parse(
        "securitySchemes:\n  a: {issuer: https://a.example.com, audiences: [x]}\n  b: {issuer: https://b.example.com, audiences: [x]}\n",
    )
    .expect("mapping");
    let err = import(doc, &options(mapping)).expect_err("two authorizers");
    assert!(matches!(err, ImportError::Insecure { .. }), "{err}");
}

fn load_dir(dir: &Path) -> Inventory {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let mut inventory = Inventory::default();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        inventory
            .add_yaml(&f.display().to_string(), &text)
            .expect("example YAML parses");
    }
    inventory
}

/// Exports every Api of the inventory, imports the documents again, and replaces the Apis,
/// Routes and Authorizers with what was imported.
fn round_trip(inventory: &Inventory, format: ExportFormat) -> Inventory {
    // Export what is served, as `causeway export` does: accepted Routes and Authorizers.
    let compiled = compile(inventory, &CompileOptions::default());
    let accepted = |kind: Kind, meta: &ObjectMeta| {
        compiled.statuses.iter().any(|s| {
            s.kind == kind
                && Some(&s.name) == meta.name.as_ref()
                && Some(&s.namespace) == meta.namespace.as_ref()
                && s.is_accepted()
        })
    };
    let routes: Vec<_> = inventory
        .routes
        .iter()
        .filter(|r| accepted(Kind::Route, &r.metadata))
        .cloned()
        .collect();
    let authorizers: Vec<_> = inventory
        .authorizers
        .iter()
        .filter(|a| accepted(Kind::Authorizer, &a.metadata))
        .cloned()
        .collect();
    let mut out = inventory.clone();
    out.apis.clear();
    out.routes.clear();
    out.authorizers.clear();
    for api in &inventory.apis {
        let exported = export(
            api,
            &routes,
            &authorizers,
            &ExportOptions {
                format,
                aws_extensions: true,
                server_url: None,
            },
        );
        let text = serde_saphyr::to_string(&exported.document).expect("YAML");
        let imported = import(
            &text,
            &ImportOptions {
                namespace: api.metadata.namespace.clone().unwrap_or("default".into()),
                api_name: api.metadata.name.clone(),
                stage: StageChoice::None,
                mapping: ImportMapping::default(),
                allow_insecure_drop: false,
            },
        )
        .unwrap_or_else(|e| panic!("re-import of {:?}: {e}\n{text}", api.metadata.name));
        out.apis.push(imported.api);
        out.routes.extend(imported.routes);
        out.authorizers.extend(imported.authorizers);
    }
    out
}

fn round_trip_sources() -> Vec<(String, Inventory)> {
    let mut out = Vec::new();
    let examples = repo_root().join("examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        let inventory = load_dir(&d);
        // OpenAPI describes request/response Apis only; `causeway export` refuses WebSocket ones.
        let websocket = inventory
            .apis
            .iter()
            .any(|a| a.spec.protocol == Some(causeway_crds::api::ApiProtocol::Websocket));
        if !inventory.apis.is_empty() && !websocket {
            out.push((d.display().to_string(), inventory));
        }
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    files.sort();
    for f in files {
        let mut inventory = Inventory::default();
        inventory
            .add_yaml("f.yaml", &std::fs::read_to_string(&f).expect("read"))
            .expect("fixture parses");
        out.push((f.display().to_string(), inventory));
    }
    for case in corpus() {
        if let Ok(imported) = import(&case.text, &options(case.mapping.clone())) {
            out.push((
                case.name.clone(),
                inventory_of(&imported, case.extra.as_deref()),
            ));
        }
    }
    out
}

#[test]
fn exporting_and_importing_again_compiles_to_the_same_snapshot_for_every_example_and_fixture() {
    let sources = round_trip_sources();
    assert!(sources.len() >= 20, "{} sources", sources.len());
    for (name, inventory) in &sources {
        let before = compile(inventory, &CompileOptions::default());
        for format in [ExportFormat::Oas30, ExportFormat::Swagger20] {
            let after = compile(&round_trip(inventory, format), &CompileOptions::default());
            assert_eq!(
                before.snapshot.version,
                after.snapshot.version,
                "{name} ({format:?}): the round trip changed the snapshot:\n{}",
                first_difference(&before, &after),
            );
        }
    }
    println!(
        "{} sources round-tripped through OpenAPI 3.0 and Swagger 2.0",
        sources.len()
    );
}

/// The first lines where two snapshots differ (pretty JSON), with a little context.
fn first_difference(a: &Compiled, b: &Compiled) -> String {
    let a = serde_json::to_string_pretty(&a.snapshot).unwrap_or_default();
    let b = serde_json::to_string_pretty(&b.snapshot).unwrap_or_default();
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let i = la
        .iter()
        .zip(&lb)
        .enumerate()
        .position(|(n, (x, y))| n > 1 && x != y)
        .unwrap_or(la.len().min(lb.len()));
    let from = i.saturating_sub(8);
    format!(
        "before:\n{}\nafter:\n{}",
        la[from..(i + 4).min(la.len())].join("\n"),
        lb[from..(i + 4).min(lb.len())].join("\n")
    )
}

/// Every JSON pointer of a value.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "$ref",
        "type",
        "uri",
        "paths",
        "get",
        "x-amazon-apigateway-integration",
        "security",
        "responses",
        "requestTemplates",
        "statusCode",
        "providerARNs",
        "Statement",
        "Condition",
        "x-amazon-apigateway-authorizer",
        "schema",
        "parameters",
        "in",
        "name",
        "required",
        "default",
        "aws_proxy",
        "mock",
        "http",
        "definitions",
        "components",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "[#/a-z{}+.$'~]{0,24}".prop_map(Value::String),
        Just(Value::String("#/components/schemas/Pet".into())),
        Just(Value::String("#/paths".into())),
        Just(Value::String(
            "arn:aws:lambda:us-east-1:1:function:f".into()
        )),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone().prop_map(str::to_string), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_importer_never_panics_on_corpus_documents_with_a_subtree_replaced(
        doc in 0usize..64, at in any::<prop::sample::Index>(), value in arbitrary_json()
    ) {
        let cases = corpus();
        let case = &cases[doc % cases.len()];
        if let Ok(mut v) = serde_saphyr::from_str::<Value>(&case.text) {
            let mut all = Vec::new();
            pointers(&v, String::new(), &mut all);
            let p = at.get(&all).clone();
            if p.is_empty() {
                v = value;
            } else if let Some(slot) = v.pointer_mut(&p) {
                *slot = value;
            }
            let text = serde_json::to_string(&v).unwrap_or_default();
            let _ = import(&text, &options(case.mapping.clone()));
            // What is imported (here, with every drop allowed) loads back as the YAML a user
            // would apply.
            if let Ok(imported) = import(&text, &ImportOptions { allow_insecure_drop: true, ..options(case.mapping.clone()) }) {
                let mut inventory = Inventory::default();
                prop_assert!(inventory.add_yaml("imported.yaml", &imported.to_yaml()).is_ok(), "{}", imported.to_yaml());
            }
        }
    }

    #[test]
    fn the_importer_never_panics_on_arbitrary_json_or_text(value in arbitrary_json(), text in "\\PC{0,200}") {
        let doc = serde_json::json!({"openapi": "3.0.1", "info": {"title": "t"}, "paths": value.clone()});
        let _ = import(&doc.to_string(), &ImportOptions::default());
        let _ = import(&value.to_string(), &ImportOptions::default());
        let _ = import(&text, &ImportOptions::default());
    }
}

/// The pinned validator (tests/requirements.txt), and how to install it.
const VALIDATOR_INSTALL: &str = "python3 -m pip install -r tests/requirements.txt";

#[test]
fn every_export_is_a_valid_document_for_openapi_spec_validator() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "openapi-spec-validator (PyPI) is missing: run `{VALIDATOR_INSTALL}` (scripts/test.sh does)"
        ),
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi-exports");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let mut files = Vec::new();
    for (name, inventory) in round_trip_sources() {
        let slug: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        for api in &inventory.apis {
            for (format, fname) in [
                (ExportFormat::Oas30, "oas30"),
                (ExportFormat::Swagger20, "swagger20"),
            ] {
                for aws in [false, true] {
                    let exported = export(
                        api,
                        &inventory.routes,
                        &inventory.authorizers,
                        &ExportOptions {
                            format,
                            aws_extensions: aws,
                            server_url: Some("http://api.default.localhost:8080/prod".into()),
                        },
                    );
                    let path = dir.join(format!(
                        "{slug}-{}-{fname}-{}.json",
                        api.metadata.name.as_deref().unwrap_or("api"),
                        if aws { "aws" } else { "plain" }
                    ));
                    std::fs::write(
                        &path,
                        serde_json::to_string_pretty(&exported.document).expect("json"),
                    )
                    .expect("write");
                    files.push(path);
                }
            }
        }
    }
    let script = r#"
import json, sys
from openapi_spec_validator import validate
bad = 0
for path in sys.argv[1:]:
    try:
        validate(json.load(open(path)))
    except Exception as e:
        bad += 1
        print(f"{path}: {str(e).splitlines()[0]}")
print(f"{len(sys.argv) - 1 - bad} of {len(sys.argv) - 1} valid")
sys.exit(1 if bad else 0)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused exports:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(files.len() >= 80, "{} exports", files.len());
}

const DEFINITION_DOC: &str = r#"
openapi: 3.0.1
info: {title: pets, version: "1"}
paths:
  /pets:
    get:
      responses: {}
      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: "http://pets.shop.svc:80/pets"}
    post:
      responses: {}
      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: POST, uri: "http://pets.shop.svc:80/pets"}
x-amazon-apigateway-cors: {allowOrigins: ["https://pets.example.com"]}
"#;

fn definition_inventory(definition: &str, extra: &str) -> Inventory {
    let mut inventory = Inventory::default();
    let yaml = format!(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {{name: pets, namespace: shop}}
spec:
  definition:
{definition}
---
apiVersion: v1
kind: Service
metadata: {{name: pets, namespace: shop}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {{name: prod, namespace: shop}}
spec: {{apiRef: {{name: pets}}, autoDeploy: true}}
{extra}"#
    );
    inventory.add_yaml("t.yaml", &yaml).expect("parses");
    inventory
}

fn definition_condition(compiled: &Compiled) -> causeway_crds::Condition {
    compiled
        .statuses
        .iter()
        .find(|s| s.kind == Kind::Api)
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "DefinitionImported")
        })
        .cloned()
        .expect("a DefinitionImported condition")
}

fn served_keys(compiled: &Compiled) -> Vec<String> {
    compiled.snapshot.stages[0]
        .main
        .routes
        .iter()
        .map(|r| r.key.clone())
        .collect()
}

#[test]
fn an_api_definition_in_a_config_map_is_compiled_with_route_crs_winning_on_the_same_key() {
    let config_map = format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: pets-openapi, namespace: shop}}\ndata:\n  openapi.yaml: |\n{}\n---\napiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {{name: create, namespace: shop}}\nspec:\n  apiRef: {{name: pets}}\n  routeKey: POST /pets\n  integration: {{type: MOCK, mock: {{statusCode: 201}}}}\n",
        DEFINITION_DOC
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let inventory = definition_inventory(
        "    configMapRef: {name: pets-openapi, key: openapi.yaml}",
        &config_map,
    );
    let compiled = compile(&inventory, &CompileOptions::default());
    let c = definition_condition(&compiled);
    assert_eq!(c.status, "True", "{}", c.message);
    assert!(
        c.message.contains("Route CRs replace POST /pets"),
        "{}",
        c.message
    );
    let mut keys = served_keys(&compiled);
    keys.sort();
    assert_eq!(keys, ["GET /pets", "POST /pets"]);
    let post = compiled.snapshot.stages[0]
        .main
        .routes
        .iter()
        .find(|r| r.key == "POST /pets")
        .expect("POST");
    assert!(
        serde_json::to_string(&post.integration)
            .unwrap_or_default()
            .contains("201"),
        "the Route CR (a MOCK 201) answers POST /pets"
    );
    assert!(
        compiled.snapshot.apis[0].cors.is_some(),
        "CORS from the document"
    );
    assert!(
        compiled
            .statuses
            .iter()
            .all(|s| !s.name.starts_with("definition.")),
        "generated objects have no status of their own"
    );
}

#[test]
fn an_api_definition_that_cannot_be_imported_is_reported_in_the_api_status_and_serves_nothing_of_it()
 {
    let doc = DEFINITION_DOC.replace(
        "x-amazon-apigateway-cors",
        "security: [{oauth: []}]\ncomponents: {securitySchemes: {oauth: {type: oauth2, flows: {}}}}\nx-amazon-apigateway-cors",
    );
    let inline = format!(
        "    inline: |\n{}",
        doc.lines()
            .map(|l| format!("      {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let compiled = compile(
        &definition_inventory(&inline, ""),
        &CompileOptions::default(),
    );
    let c = definition_condition(&compiled);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "InvalidDefinition")
    );
    assert!(c.message.contains("/security/0/oauth"), "{}", c.message);
    assert!(compiled.snapshot.stages.is_empty() || served_keys(&compiled).is_empty());
}

#[test]
fn a_missing_definition_config_map_is_definition_not_found() {
    let compiled = compile(
        &definition_inventory("    configMapRef: {name: nope, key: openapi.yaml}", ""),
        &CompileOptions::default(),
    );
    let c = definition_condition(&compiled);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "DefinitionNotFound")
    );
}

/// The calc document with a declared (optional) header parameter as well.
fn calc_with_header() -> String {
    std::fs::read_to_string(corpus_dir().join("lambda-non-proxy-calc.yaml"))
        .expect("read")
        .replace(
            "        - {name: b, in: query, required: true, schema: {type: string}}\n",
            "        - {name: b, in: query, required: true, schema: {type: string}}\n        - {name: x-trace, in: header, schema: {type: string}}\n",
        )
}

#[test]
fn method_declarations_are_imported_and_exported_for_sdk_generators() {
    let mapping = ImportMapping::parse("lambda:\n  calc: {uri: \"http://127.0.0.1:9050\"}\n")
        .expect("mapping");
    let imported = import(&calc_with_header(), &options(mapping)).expect("import");
    let method = imported.routes[0]
        .spec
        .method
        .as_ref()
        .expect("declarations");
    assert_eq!(method.operation_name.as_deref(), Some("getSum"));
    assert_eq!(
        method.request_parameters,
        BTreeMap::from([
            ("method.request.header.x-trace".to_string(), false),
            ("method.request.querystring.a".to_string(), true),
            ("method.request.querystring.b".to_string(), true),
        ])
    );
    let statuses: Vec<u16> = method.responses.iter().map(|r| r.status_code).collect();
    assert_eq!(statuses, [200, 400]);
    assert_eq!(
        method.responses[0].response_models["application/json"],
        "Sum"
    );

    let plain = |format| {
        export(
            &imported.api,
            &imported.routes,
            &imported.authorizers,
            &ExportOptions {
                format,
                aws_extensions: false,
                server_url: None,
            },
        )
        .document
    };
    let oas = plain(ExportFormat::Oas30);
    let op = &oas["paths"]["/sum"]["get"];
    assert_eq!(op["operationId"], "getSum");
    assert_eq!(
        op["parameters"],
        serde_json::json!([
            {"name": "x-trace", "in": "header", "required": false, "schema": {"type": "string"}},
            {"name": "a", "in": "query", "required": true, "schema": {"type": "string"}},
            {"name": "b", "in": "query", "required": true, "schema": {"type": "string"}},
        ])
    );
    assert_eq!(
        op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Sum"
    );
    assert_eq!(
        op["responses"]["400"]["headers"]["x-error-type"]["schema"]["type"],
        "string"
    );
    assert_eq!(
        op["responses"]["400"]["description"],
        "a or b is not an integer."
    );
    let swagger = plain(ExportFormat::Swagger20);
    let op = &swagger["paths"]["/sum"]["get"];
    assert_eq!(
        op["responses"]["200"]["schema"]["$ref"],
        "#/definitions/Sum"
    );
    assert_eq!(
        op["responses"]["200"]["headers"]["x-calc-op"]["type"],
        "string"
    );
}
