//! JWT authorizers that would let a token meant for someone else through, or make the proxy
//! fetch keys from inside its own network boundary, are refused on the Authorizer alone.

#[path = "support/fixtures.rs"]
mod support;

use causeway_compile::{Kind, reasons};
use support::{assert_base_served, assert_refused, status, with_base};

fn authorizer(name: &str, jwt: &str) -> String {
    format!(
        r#"
apiVersion: causeway.dev/v1alpha1
kind: Authorizer
metadata: {{name: {name}, namespace: shop}}
spec:
  apiRef: {{name: pets}}
  type: JWT
  jwt: {jwt}
"#
    )
}

#[test]
fn a_jwt_authorizer_without_audiences_is_refused_with_audience_required() {
    let c = with_base(&authorizer(
        "open",
        r#"{issuer: "https://issuer.example.com", jwksUri: "https://issuer.example.com/keys"}"#,
    ));
    let message = assert_refused(&c, Kind::Authorizer, "open", reasons::AUDIENCE_REQUIRED);
    assert!(message.contains("spec.jwt.audiences"), "{message}");
    assert_base_served(&c);
}

#[test]
fn an_empty_audience_counts_as_none() {
    let c = with_base(&authorizer(
        "blank",
        r#"{issuer: "https://issuer.example.com", audiences: [""]}"#,
    ));
    assert_refused(&c, Kind::Authorizer, "blank", reasons::AUDIENCE_REQUIRED);
}

#[test]
fn jwks_urls_on_link_local_loopback_metadata_or_the_admin_port_are_refused() {
    for (i, uri) in [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/keys",
        "http://127.0.0.1:8080/keys",
        "http://[::1]/keys",
        "http://localhost/keys",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://[::ffff:169.254.169.254]/keys",
        "http://[fd00:ec2::254]/keys",
        "http://0.0.0.0/keys",
        "http://10.0.0.7:9901/config_dump",
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("ssrf-{i}");
        let c = with_base(&authorizer(
            &name,
            &format!(
                r#"{{issuer: "https://issuer.example.com", audiences: [pets], jwksUri: "{uri}"}}"#
            ),
        ));
        let message = assert_refused(&c, Kind::Authorizer, &name, reasons::PRIVATE_JWKS);
        assert!(message.contains("allowPrivateJwks"), "{uri}: {message}");
        assert_base_served(&c);
    }
}

#[test]
fn discovery_under_a_link_local_issuer_is_refused() {
    let c = with_base(&authorizer(
        "meta",
        r#"{issuer: "http://169.254.169.254", audiences: [pets]}"#,
    ));
    let message = assert_refused(&c, Kind::Authorizer, "meta", reasons::PRIVATE_JWKS);
    assert!(message.contains("discovery"), "{message}");
}

#[test]
fn allow_private_jwks_lets_a_loopback_jwks_through_and_public_ones_need_nothing() {
    let c = with_base(&authorizer(
        "local",
        r#"{issuer: "http://127.0.0.1:5556", audiences: [pets], jwksUri: "http://127.0.0.1:5556/keys", allowPrivateJwks: true}"#,
    ));
    assert!(status(&c, Kind::Authorizer, "local").is_accepted());
    let c = with_base(&authorizer(
        "public",
        r#"{issuer: "https://issuer.example.com", audiences: [pets], jwksUri: "http://keycloak.auth.svc:8080/keys"}"#,
    ));
    assert!(status(&c, Kind::Authorizer, "public").is_accepted());
}
