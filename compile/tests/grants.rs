//! VpcLink grants hold for every way a Route (or a function authorizer) can name a backend:
//! `backendRef`, a `uri` in any cluster Service form, an IP literal, `localhost`, and any host
//! through a named link; `addresses` limits what a link reaches; a client certificate on a link
//! is loaded, checked (PEM, the key belongs to the certificate) and carried to its backends.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Kind, reasons};
use support::{assert_base_served, assert_refused, status, with_base};

/// A Service `ledger` in `finance` and a Route `name` in `shop` with `uri`, plus `extra`.
fn route_to(name: &str, uri: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: ledger, namespace: finance}}
spec:
  ports: [{{port: 80}}]
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {{name: {name}, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  routeKey: GET /{name}
  integration: {{type: HTTP_PROXY, uri: "{uri}"}}
{extra}"#
    )
}

#[test]
fn a_uri_naming_a_service_of_another_namespace_in_any_cluster_form_is_refused_without_a_grant() {
    for (i, host) in [
        "ledger.finance",
        "ledger.finance:8080",
        "ledger.finance.svc",
        "ledger.finance.svc:81",
        "ledger.finance.svc.cluster.local",
        "ledger.finance.svc.cluster.local:8443",
        // Services that do not exist (yet) are refused too: the name is unambiguous.
        "ghost.finance.svc",
        "ghost.elsewhere.svc.cluster.local",
        // A known namespace makes `svc.ns` a cluster name even for an unknown Service.
        "ghost.finance",
    ]
    .iter()
    .enumerate()
    {
        let c = with_base(&route_to(&format!("r{i}"), &format!("http://{host}/x"), ""));
        let message = assert_refused(
            &c,
            Kind::Route,
            &format!("r{i}"),
            reasons::REF_NOT_PERMITTED,
        );
        assert!(
            message.contains("spec.integration.uri"),
            "{host}: {message}"
        );
        assert_base_served(&c);
    }
}

#[test]
fn a_uri_naming_a_service_of_another_namespace_is_accepted_with_a_granting_vpc_link() {
    let c = with_base(&route_to(
        "granted",
        "http://ghost.finance.svc.cluster.local:8080/x",
        r#"---
apiVersion: causeway.dev/v1alpha1
kind: VpcLink
metadata: {name: to-shop, namespace: finance}
spec: {allowedNamespaces: [shop]}
"#,
    ));
    assert!(status(&c, Kind::Route, "granted").is_accepted());
    assert_base_served(&c);
}

#[test]
fn a_two_label_public_host_name_needs_no_grant() {
    let c = with_base(&route_to("public", "https://example.com/x", ""));
    assert!(status(&c, Kind::Route, "public").is_accepted());
}

#[test]
fn a_uri_that_is_an_ip_literal_or_localhost_is_refused_with_address_not_permitted() {
    for (i, host) in [
        "10.1.2.3",
        "10.1.2.3:8080",
        "127.0.0.1:9901",
        "[::1]:9901",
        "[fd00::7]",
        "localhost:9901",
        "admin.localhost",
    ]
    .iter()
    .enumerate()
    {
        let c = with_base(&route_to(&format!("r{i}"), &format!("http://{host}/x"), ""));
        let message = assert_refused(
            &c,
            Kind::Route,
            &format!("r{i}"),
            reasons::ADDRESS_NOT_PERMITTED,
        );
        assert!(message.contains("spec.addresses"), "{host}: {message}");
        assert_base_served(&c);
    }
}

#[test]
fn a_host_that_resolvers_read_as_a_disguised_ipv4_address_is_invalid() {
    for (i, host) in ["2130706433", "0x7f.1", "127.1"].iter().enumerate() {
        let c = with_base(&route_to(&format!("r{i}"), &format!("http://{host}/x"), ""));
        let message = assert_refused(&c, Kind::Route, &format!("r{i}"), reasons::INVALID);
        assert!(message.contains("standard IP address"), "{host}: {message}");
    }
}

const NETWORK_LINK: &str = r#"---
apiVersion: causeway.dev/v1alpha1
kind: VpcLink
metadata: {name: datacenter, namespace: platform}
spec:
  allowedNamespaces: [shop]
  addresses: ["10.20.0.0/16", "192.168.1.5:8443", "[fd00::1]:443", "legacy.example.net"]
"#;

#[test]
fn an_ip_literal_is_accepted_when_a_vpc_link_allowing_the_namespace_lists_it() {
    for (i, uri) in [
        "http://10.20.3.4:8080/x",
        "https://192.168.1.5:8443/x",
        "https://[fd00::1]/x",
    ]
    .iter()
    .enumerate()
    {
        let c = with_base(&route_to(&format!("r{i}"), uri, NETWORK_LINK));
        assert!(
            status(&c, Kind::Route, &format!("r{i}")).is_accepted(),
            "{uri}: {:?}",
            status(&c, Kind::Route, &format!("r{i}"))
        );
    }
}

#[test]
fn an_ip_literal_outside_the_link_addresses_or_port_is_refused() {
    for (i, uri) in [
        "http://10.21.0.1/x",
        "https://192.168.1.5:443/x",
        "https://[fd00::1]:8443/x",
    ]
    .iter()
    .enumerate()
    {
        let c = with_base(&route_to(&format!("r{i}"), uri, NETWORK_LINK));
        assert_refused(
            &c,
            Kind::Route,
            &format!("r{i}"),
            reasons::ADDRESS_NOT_PERMITTED,
        );
    }
}

#[test]
fn an_ip_literal_is_refused_when_the_link_that_lists_it_does_not_allow_the_namespace() {
    let link = NETWORK_LINK.replace("allowedNamespaces: [shop]", "allowedNamespaces: [other]");
    let c = with_base(&route_to("r", "http://10.20.3.4/x", &link));
    assert_refused(&c, Kind::Route, "r", reasons::ADDRESS_NOT_PERMITTED);
}

#[test]
fn a_named_vpc_link_reaches_only_its_addresses() {
    let route = |name: &str, uri: &str| {
        format!(
            r#"---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {{name: {name}, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  routeKey: GET /{name}
  integration:
    type: HTTP_PROXY
    uri: "{uri}"
    vpcLinkRef: {{name: datacenter, namespace: platform}}
"#
        )
    };
    let c = with_base(&format!(
        "{NETWORK_LINK}{}{}",
        route("listed", "https://legacy.example.net/x"),
        route("unlisted", "https://other.example.net/x"),
    ));
    assert!(status(&c, Kind::Route, "listed").is_accepted());
    let message = assert_refused(&c, Kind::Route, "unlisted", reasons::ADDRESS_NOT_PERMITTED);
    assert!(
        message.contains("other.example.net") && message.contains("platform/datacenter"),
        "{message}"
    );
    assert_base_served(&c);
}

#[test]
fn a_function_authorizer_uri_that_is_an_ip_literal_needs_a_grant_too() {
    let authorizer = |name: &str| {
        format!(
            r#"---
apiVersion: causeway.dev/v1alpha1
kind: Authorizer
metadata: {{name: {name}, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  type: REQUEST
  identitySource: ["$request.header.x-token"]
  function: {{uri: "http://10.20.9.9:9090"}}
"#
        )
    };
    let refused = with_base(&authorizer("alone"));
    assert_refused(
        &refused,
        Kind::Authorizer,
        "alone",
        reasons::ADDRESS_NOT_PERMITTED,
    );
    let granted = with_base(&format!("{NETWORK_LINK}{}", authorizer("granted")));
    assert!(status(&granted, Kind::Authorizer, "granted").is_accepted());
}

#[test]
fn a_vpc_link_with_a_malformed_address_is_invalid() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: VpcLink
metadata: {name: broken, namespace: platform}
spec: {allowedNamespaces: [shop], addresses: ["10.0.0.0/33", "host:99999", "bad_name"]}
"#,
    );
    let message = assert_refused(&c, Kind::VpcLink, "broken", reasons::INVALID);
    assert!(message.contains("spec.addresses[0]"), "{message}");
    assert_base_served(&c);
}

fn client_cert_link(cert: &str, key: &str) -> String {
    let indent = |pem: &str| -> String { pem.lines().map(|l| format!("    {l}\n")).collect() };
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: client, namespace: finance}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{}  tls.key: |
{}---
apiVersion: causeway.dev/v1alpha1
kind: VpcLink
metadata: {{name: mtls, namespace: finance}}
spec:
  allowedNamespaces: [shop]
  tls: {{clientCertSecretRef: {{name: client}}}}
"#,
        indent(cert),
        indent(key)
    )
}

fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["gateway".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

#[test]
fn a_vpc_link_client_certificate_that_checks_out_reaches_the_https_backend_in_the_snapshot() {
    let (cert, key) = self_signed();
    let c = with_base(&format!(
        r#"{}---
apiVersion: v1
kind: Service
metadata: {{name: billing, namespace: finance}}
spec:
  ports: [{{port: 443}}]
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {{name: pay, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  routeKey: POST /pay
  integration: {{type: HTTP_PROXY, backendRef: {{name: billing, namespace: finance, port: 443, scheme: https}}}}
"#,
        client_cert_link(&cert, &key)
    ));
    assert!(status(&c, Kind::VpcLink, "mtls").is_accepted());
    assert!(status(&c, Kind::Route, "pay").is_accepted());
    let tls = c
        .snapshot
        .backends
        .get("svc+https/finance/billing:443")
        .and_then(|b| b.tls.as_ref())
        .expect("the https backend has TLS settings");
    assert_eq!(
        tls.client_cert_pem.as_deref().map(str::trim),
        Some(cert.trim())
    );
    assert_eq!(
        tls.client_key_pem.as_deref().map(str::trim),
        Some(key.trim())
    );
    assert_base_served(&c);
}

#[test]
fn a_vpc_link_client_certificate_whose_key_belongs_to_another_certificate_is_invalid() {
    let (cert, _) = self_signed();
    let (_, other_key) = self_signed();
    let c = with_base(&client_cert_link(&cert, &other_key));
    let message = assert_refused(&c, Kind::VpcLink, "mtls", reasons::INVALID);
    assert!(message.contains("does not belong"), "{message}");
}

#[test]
fn a_vpc_link_client_certificate_secret_that_is_missing_is_unresolved() {
    let c = with_base(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: VpcLink
metadata: {name: mtls, namespace: finance}
spec:
  allowedNamespaces: [shop]
  tls: {clientCertSecretRef: {name: nope}}
"#,
    );
    assert_refused(&c, Kind::VpcLink, "mtls", reasons::SECRET_NOT_FOUND);
}
