//! What compile resolves for the data plane: TLS Secrets of custom domains, HTTPS redirects,
//! and which endpoints a backend lists.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Kind, reasons};
use support::{assert_base_served, assert_refused, status, with_base};

/// A self-signed certificate and key (PEM) for `host`.
fn cert_for(host: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec![host.to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn stage_with_domain(domain: &str) -> String {
    format!(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {{name: public, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  autoDeploy: true
  domains:
{domain}
"#
    )
}

#[test]
fn a_tls_secret_with_base64_data_becomes_a_certificate_for_its_domain() {
    let (crt, key) = cert_for("api.example.com");
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: api-tls, namespace: shop}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        base64(crt.as_bytes()),
        base64(key.as_bytes())
    );
    let stage = stage_with_domain(
        "    - {hostname: api.example.com, tlsSecretRef: {name: api-tls}, redirectToHttps: true}",
    );
    let c = with_base(&format!("{secret}---\n{stage}"));
    assert!(status(&c, Kind::Stage, "public").is_accepted());
    let certs = &c.snapshot.certificates;
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].hostnames, vec!["api.example.com".to_string()]);
    assert_eq!(certs[0].cert_chain_pem, crt);
    assert_eq!(certs[0].private_key_pem, key);
    let host = c
        .snapshot
        .hosts
        .iter()
        .find(|h| h.hostname == "api.example.com")
        .expect("host");
    assert!(host.redirect_to_https);
    assert_base_served(&c);
}

#[test]
fn a_tls_secret_written_as_string_data_is_read_too() {
    let (crt, key) = cert_for("b.example.com");
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: b-tls, namespace: shop}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(&crt),
        indent(&key)
    );
    let stage = stage_with_domain("    - {hostname: b.example.com, tlsSecretRef: {name: b-tls}}");
    let c = with_base(&format!("{secret}---\n{stage}"));
    assert!(status(&c, Kind::Stage, "public").is_accepted());
    assert_eq!(c.snapshot.certificates.len(), 1);
    assert_eq!(c.snapshot.certificates[0].cert_chain_pem.trim(), crt.trim());
}

#[test]
fn a_missing_tls_secret_leaves_the_stage_unresolved_with_secret_not_found() {
    let stage = stage_with_domain("    - {hostname: c.example.com, tlsSecretRef: {name: nowhere}}");
    let c = with_base(&stage);
    let message = assert_refused(&c, Kind::Stage, "public", reasons::SECRET_NOT_FOUND);
    assert!(
        message.contains("spec.domains[0].tlsSecretRef"),
        "{message}"
    );
    assert!(message.contains("shop/nowhere"), "{message}");
    assert!(c.snapshot.certificates.is_empty());
    assert!(
        c.snapshot
            .hosts
            .iter()
            .all(|h| h.hostname != "c.example.com")
    );
    assert_base_served(&c);
}

#[test]
fn a_tls_secret_that_is_not_pem_is_invalid() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: junk, namespace: shop}\nstringData: {tls.crt: nope, tls.key: nope}\n";
    let stage = stage_with_domain("    - {hostname: d.example.com, tlsSecretRef: {name: junk}}");
    let c = with_base(&format!("{secret}---\n{stage}"));
    let message = assert_refused(&c, Kind::Stage, "public", reasons::INVALID);
    assert!(message.contains("tls.crt"), "{message}");
}

/// A CA certificate (PEM), `cA: true` unless `is_ca` is false.
fn ca_pem(is_ca: bool) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Partner CA");
    if is_ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params.self_signed(&key).expect("cert").pem()
}

/// A TLS Secret `name` for `host` and a CA Secret `ca-name` holding `ca`, as YAML.
fn mtls_secrets(name: &str, host: &str, ca_name: &str, ca: &str) -> String {
    let (crt, key) = cert_for(host);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: shop}}\ndata:\n  tls.crt: {}\n  tls.key: {}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {ca_name}, namespace: shop}}\ndata:\n  ca.crt: {}\n",
        base64(crt.as_bytes()),
        base64(key.as_bytes()),
        base64(ca.as_bytes())
    )
}

#[test]
fn a_client_ca_secret_puts_the_ca_bundle_on_the_domain_certificate() {
    let ca = ca_pem(true);
    let secrets = mtls_secrets("m-tls", "m.example.com", "m-ca", &ca);
    let stage = stage_with_domain(
        "    - {hostname: m.example.com, tlsSecretRef: {name: m-tls}, clientCaSecretRef: {name: m-ca}}",
    );
    let c = with_base(&format!("{secrets}---\n{stage}"));
    assert!(status(&c, Kind::Stage, "public").is_accepted());
    let certs = &c.snapshot.certificates;
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].client_ca_pem.as_deref(), Some(ca.as_str()));
}

#[test]
fn a_client_ca_bundle_that_is_not_a_ca_certificate_rejects_only_its_stage() {
    for (bundle, expected) in [
        (ca_pem(false), "not a CA certificate"),
        (
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
                .to_string(),
            "not an X.509 certificate",
        ),
        ("hello".to_string(), "has no PEM certificate"),
    ] {
        let secrets = mtls_secrets("m-tls", "m.example.com", "m-ca", &bundle);
        let stage = stage_with_domain(
            "    - {hostname: m.example.com, tlsSecretRef: {name: m-tls}, clientCaSecretRef: {name: m-ca}}",
        );
        let c = with_base(&format!("{secrets}---\n{stage}"));
        let status = status(&c, Kind::Stage, "public");
        let message = status
            .problem()
            .map(|p| p.message.clone())
            .unwrap_or_default();
        assert!(!status.is_accepted(), "{bundle}");
        assert!(message.contains(expected), "{message}");
        assert!(
            message.contains("spec.domains[0].clientCaSecretRef"),
            "{message}"
        );
        assert!(c.snapshot.certificates.is_empty());
        assert_base_served(&c);
    }
}

#[test]
fn mutual_tls_needs_a_server_certificate_on_the_domain() {
    let stage =
        stage_with_domain("    - {hostname: m.example.com, clientCaSecretRef: {name: m-ca}}");
    let c = with_base(&stage);
    let message = assert_refused(&c, Kind::Stage, "public", reasons::INVALID);
    assert!(message.contains("needs tlsSecretRef"), "{message}");
}

#[test]
fn a_stage_asking_for_other_mutual_tls_on_a_taken_host_is_a_conflicting_domain() {
    let secrets = mtls_secrets("m-tls", "m.example.com", "m-ca", &ca_pem(true));
    let older = stage_with_domain(
        "    - {hostname: m.example.com, basePath: v1, tlsSecretRef: {name: m-tls}, clientCaSecretRef: {name: m-ca}}",
    )
    .replace(
        "{name: public, namespace: shop}",
        "{name: public, namespace: shop, creationTimestamp: \"2024-01-01T00:00:00Z\"}",
    );
    let newer = stage_with_domain(
        "    - {hostname: m.example.com, basePath: v2, tlsSecretRef: {name: m-tls}}",
    )
    .replace(
        "{name: public, namespace: shop}",
        "{name: open, namespace: shop, creationTimestamp: \"2024-02-01T00:00:00Z\"}",
    );
    let c = with_base(&format!("{secrets}---\n{older}---\n{newer}"));
    assert!(status(&c, Kind::Stage, "public").is_accepted());
    let message = assert_refused(&c, Kind::Stage, "open", reasons::CONFLICTING_DOMAIN);
    assert!(message.contains("mutual TLS"), "{message}");
    assert!(c.snapshot.certificates[0].client_ca_pem.is_some());
}

#[test]
fn an_endpoint_that_is_not_ready_never_reaches_the_snapshot() {
    let c = with_base("");
    let backend = c
        .snapshot
        .backends
        .get("svc/shop/pets:80")
        .expect("backend of the base route");
    // The base slice lists 10.0.0.1 (ready by default) and 10.0.0.2 (ready: false).
    assert_eq!(backend.endpoints, vec!["10.0.0.1:8080".to_string()]);
}

const BILLING: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: billing, namespace: finance}
spec:
  ports: [{name: https, port: 443, targetPort: 8443}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: billing-1
  namespace: finance
  labels: {kubernetes.io/service-name: billing}
addressType: IPv4
endpoints: [{addresses: ["10.1.0.1"]}]
ports: [{name: https, port: 8443}]
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: pay, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: POST /pay
  integration:
    type: HTTP_PROXY
    backendRef: {name: billing, namespace: finance, port: 443, scheme: https}
---
apiVersion: causeway.dev/v1alpha1
kind: VpcLink
metadata: {name: billing-link, namespace: finance}
spec:
  allowedNamespaces: [shop]
  services: [billing]
  tls:
    caSecretRef: {name: billing-ca}
    sni: billing.internal
"#;

#[test]
fn an_https_backend_takes_the_ca_and_server_name_of_its_vpc_link() {
    let (ca, _) = cert_for("billing.internal");
    let indent: String = ca.lines().map(|l| format!("    {l}\n")).collect();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: billing-ca, namespace: finance}}\nstringData:\n  ca.crt: |\n{indent}"
    );
    let c = with_base(&format!("{BILLING}---\n{secret}"));
    assert!(status(&c, Kind::VpcLink, "billing-link").is_accepted());
    let backend = c
        .snapshot
        .backends
        .get("svc+https/finance/billing:443")
        .expect("the https backend");
    let tls = backend.tls.as_ref().expect("tls settings");
    assert_eq!(tls.server_name.as_deref(), Some("billing.internal"));
    assert_eq!(tls.ca_pem.as_deref().map(str::trim), Some(ca.trim()));
    assert_eq!(backend.endpoints, vec!["10.1.0.1:8443".to_string()]);
}

#[test]
fn a_vpc_link_whose_ca_secret_is_missing_is_unresolved_with_secret_not_found() {
    let c = with_base(BILLING);
    let message = assert_refused(&c, Kind::VpcLink, "billing-link", reasons::SECRET_NOT_FOUND);
    assert!(message.contains("spec.tls.caSecretRef"), "{message}");
    // Without the link, the cross-namespace route is not permitted either.
    assert!(!status(&c, Kind::Route, "pay").is_accepted());
    assert_base_served(&c);
}

#[test]
fn a_service_port_with_app_protocol_h2c_makes_an_http2_backend() {
    let c = with_base(
        r#"
apiVersion: v1
kind: Service
metadata: {name: grpc, namespace: shop}
spec:
  ports: [{name: grpc, port: 50051, appProtocol: kubernetes.io/h2c}]
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: stream, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: POST /stream
  integration: {type: HTTP_PROXY, backendRef: {name: grpc, port: 50051}}
"#,
    );
    assert!(status(&c, Kind::Route, "stream").is_accepted());
    let backend = c
        .snapshot
        .backends
        .get("svc/shop/grpc:50051")
        .expect("backend");
    assert!(backend.http2);
    assert!(!c.snapshot.backends["svc/shop/pets:80"].http2);
}

#[test]
fn ipv6_endpoint_slices_give_bracketed_endpoints_next_to_the_ipv4_ones() {
    let c = with_base(
        r#"
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dual-v4
  namespace: shop
  labels: {kubernetes.io/service-name: dual}
addressType: IPv4
endpoints: [{addresses: ["10.1.0.1"]}]
ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dual-v6
  namespace: shop
  labels: {kubernetes.io/service-name: dual}
addressType: IPv6
endpoints: [{addresses: ["fd00::1"]}, {addresses: ["fd00::2"], conditions: {ready: false}}]
ports: [{name: http, port: 8080}]
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: dual, namespace: shop}
spec:
  apiRef: {name: pets}
  routeKey: GET /dual
  integration: {type: HTTP_PROXY, backendRef: {name: dual, port: 80}}
"#,
    );
    assert!(status(&c, Kind::Route, "dual").is_accepted());
    let backend = c
        .snapshot
        .backends
        .get("svc/shop/dual:80")
        .expect("the backend");
    assert_eq!(
        backend.endpoints,
        vec!["10.1.0.1:8080".to_string(), "[fd00::1]:8080".to_string()]
    );
}
