//! The default endpoint (`{api}.{namespace}.{executeApiDomain}/{stage}`): on unless the Api
//! sets `disableExecuteApiEndpoint`, and a warning when it bypasses mutual TLS.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Kind, reasons};
use support::{BASE, assert_refused, compile_yaml, status, with_base};

fn api_spec(spec: &str) -> String {
    BASE.replace(
        "metadata: {name: pets, namespace: shop}\nspec: {}",
        &format!("metadata: {{name: pets, namespace: shop}}\nspec: {spec}"),
    )
}

/// A TLS Secret for `m.example.com`, a client CA Secret, and a Stage `partners` whose only
/// domain asks for client certificates.
fn mtls_stage() -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["m.example.com".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).expect("ca");
    let json = |s: String| serde_json::to_string(&s).expect("json");
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: m-tls, namespace: shop}}
stringData: {{"tls.crt": {}, "tls.key": {}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: m-ca, namespace: shop}}
stringData: {{"ca.crt": {}}}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {{name: partners, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  autoDeploy: true
  domains:
    - {{hostname: m.example.com, tlsSecretRef: {{name: m-tls}}, clientCaSecretRef: {{name: m-ca}}}}
"#,
        json(cert.pem()),
        json(key.serialize_pem()),
        json(ca.pem()),
    )
}

fn accepted_message(c: &causeway_compile::Compiled, name: &str) -> String {
    let s = status(c, Kind::Stage, name);
    assert!(s.is_accepted(), "{s:#?}");
    s.conditions
        .iter()
        .find(|c| c.type_ == "Accepted")
        .expect("Accepted condition")
        .message
        .clone()
}

#[test]
fn disable_execute_api_endpoint_leaves_only_custom_domains() {
    let c = compile_yaml(&format!(
        "{}\n---\n{}",
        api_spec("{disableExecuteApiEndpoint: true}"),
        mtls_stage()
    ));
    let hosts: Vec<&str> = c
        .snapshot
        .hosts
        .iter()
        .map(|h| h.hostname.as_str())
        .collect();
    assert_eq!(hosts, ["m.example.com"]);
    assert!(c.snapshot.stage("shop/pets/prod").is_some());
    let message = accepted_message(&c, "partners");
    assert!(!message.contains("warning"), "{message}");
}

#[test]
fn a_stage_whose_domains_all_require_mtls_warns_while_the_default_endpoint_is_on() {
    let c = with_base(&mtls_stage());
    assert!(
        c.snapshot
            .hosts
            .iter()
            .any(|h| h.hostname == "pets.shop.localhost")
    );
    let message = accepted_message(&c, "partners");
    assert!(message.contains("warning"), "{message}");
    assert!(message.contains("disableExecuteApiEndpoint"), "{message}");
    assert!(
        message.contains("http://pets.shop.localhost/partners"),
        "{message}"
    );
    // A stage without domains has nothing to bypass.
    assert!(!accepted_message(&c, "prod").contains("warning"));
}

#[test]
fn the_old_execute_api_endpoint_false_still_turns_it_off_and_a_contradiction_is_invalid() {
    let c = compile_yaml(&api_spec("{executeApiEndpoint: false}"));
    assert!(c.snapshot.hosts.is_empty());
    let c = compile_yaml(&api_spec(
        "{executeApiEndpoint: true, disableExecuteApiEndpoint: true}",
    ));
    let message = assert_refused(&c, Kind::Api, "pets", reasons::INVALID);
    assert!(message.contains("disableExecuteApiEndpoint"), "{message}");
}
