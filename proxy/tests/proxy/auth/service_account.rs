use std::time::{SystemTime, UNIX_EPOCH};

use causeway_snapshot::{
    AuthorizerSettings, JwksSource, JwtSettings, ServiceAccountSettings, Snapshot,
};
use http::{Method, StatusCode};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{add_authorizers, authorizer, with_authorizer};
use crate::support::*;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const AUTHORIZER: &str = "default/in-cluster";

struct ClusterKey {
    key: EncodingKey,
    jwk: Jwk,
}

impl ClusterKey {
    fn new() -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256 key");
        let key = EncodingKey::from_ec_der(&pair.serialize_der());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk");
        jwk.common.key_id = Some("cluster-1".into());
        Self { key, jwk }
    }

    /// A projected service-account token for `namespace/name` with this audience.
    fn token(&self, sub: &str, aud: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims: Value = json!({
            "iss": ISSUER, "aud": [aud], "sub": sub,
            "iat": now, "nbf": now, "exp": now + 3600,
            "kubernetes.io": {"namespace": "shop"},
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("cluster-1".into());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("signs")
    }
}

fn snapshot(key: &ClusterKey) -> Snapshot {
    let jwks = serde_json::to_string(&JwkSet {
        keys: vec![key.jwk.clone()],
    })
    .expect("jwks");
    let snapshot = SnapshotBuilder::new()
        .route(with_authorizer(
            mock("GET /orders", "orders"),
            AUTHORIZER,
            &[],
        ))
        .build();
    let settings = AuthorizerSettings::ServiceAccount(ServiceAccountSettings {
        jwt: JwtSettings {
            issuer: ISSUER.into(),
            audiences: vec!["orders".into()],
            algorithms: vec!["ES256".into(), "RS256".into()],
            leeway_seconds: 60,
            jwks: JwksSource::Inline(jwks),
        },
        allow: vec![
            ("ops".into(), "*".into()),
            ("shop".into(), "checkout".into()),
        ],
    });
    add_authorizers(
        snapshot,
        vec![authorizer(
            AUTHORIZER,
            &["header.authorization"],
            &[],
            settings,
        )],
        &[],
    )
}

#[tokio::test]
async fn service_account_tokens_are_allowed_by_namespace_and_name() {
    let key = ClusterKey::new();
    let proxy = TestProxy::with_snapshot(snapshot(&key)).await;
    let cases = [
        (
            "system:serviceaccount:shop:checkout",
            "orders",
            StatusCode::OK,
        ),
        (
            "system:serviceaccount:ops:anything",
            "orders",
            StatusCode::OK,
        ),
        (
            "system:serviceaccount:shop:intruder",
            "orders",
            StatusCode::FORBIDDEN,
        ),
        (
            "system:serviceaccount:other:checkout",
            "orders",
            StatusCode::FORBIDDEN,
        ),
        ("user-42", "orders", StatusCode::FORBIDDEN),
        (
            "system:serviceaccount:shop:checkout",
            "kube-apiserver",
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (sub, aud, expected) in cases {
        let bearer = format!("Bearer {}", key.token(sub, aud));
        let answer = send(
            &http1(),
            Method::GET,
            &proxy.url("/orders"),
            HOST,
            &[("authorization", bearer.as_str())],
        )
        .await;
        assert_eq!(answer.status, expected, "{sub} for {aud}: {}", answer.body);
    }
    let foreign = ClusterKey::new();
    let bearer = format!(
        "Bearer {}",
        foreign.token("system:serviceaccount:shop:checkout", "orders")
    );
    let answer = send(
        &http1(),
        Method::GET,
        &proxy.url("/orders"),
        HOST,
        &[("authorization", bearer.as_str())],
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "another cluster's key"
    );
}
