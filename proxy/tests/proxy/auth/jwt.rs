use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use causeway_snapshot::{AuthorizerSettings, JwksSource, JwtSettings, Snapshot};
use http::{Method, StatusCode};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{add_authorizers, authorizer, with_authorizer};
use crate::support::*;

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "pets-api";
const AUTHORIZER: &str = "default/jwt";
const RSA_DER: &[u8] = include_bytes!("../fixtures/test-rsa-2048.pkcs1.der");

/// A signing key and its public JWK.
struct SigningKey {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    fn new(alg: Algorithm, kid: &str) -> Self {
        let (key, mut jwk) = match alg {
            Algorithm::RS256 => {
                let key = EncodingKey::from_rsa_der(RSA_DER);
                let jwk = Jwk::from_encoding_key(&key, alg).expect("jwk");
                (key, jwk)
            }
            Algorithm::ES256 => {
                let pair =
                    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256 key");
                let key = EncodingKey::from_ec_der(&pair.serialize_der());
                let jwk = Jwk::from_encoding_key(&key, alg).expect("jwk");
                (key, jwk)
            }
            Algorithm::EdDSA => {
                let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519 key");
                let key = EncodingKey::from_ed_der(&pair.serialize_der());
                let jwk: Jwk = serde_json::from_value(json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "x": base64url(pair.public_key_raw()),
                }))
                .expect("ed25519 jwk");
                (key, jwk)
            }
            other => panic!("no test key for {other:?}"),
        };
        jwk.common.key_id = Some(kid.to_string());
        Self {
            alg,
            kid: kid.to_string(),
            key,
            jwk,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("signs")
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": now(),
        "exp": now() + 600,
        "scope": "pets:read profile",
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            base.as_object_mut().expect("object").remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

/// A JWKS server holding `keys`; also serves OIDC discovery pointing at it.
async fn jwks_server(keys: &[&SigningKey]) -> Upstream {
    let set = JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    };
    let jwks = serde_json::to_string(&set).expect("jwks json");
    let addr = Arc::new(std::sync::Mutex::new(String::new()));
    let addr2 = addr.clone();
    let server = Upstream::with_handler(move |r: &Seen| {
        if r.path_and_query() == "/.well-known/openid-configuration" {
            let base = addr2.lock().expect("lock").clone();
            let doc = json!({"issuer": ISSUER, "jwks_uri": format!("{base}/jwks.json")});
            Reply::json(doc.to_string())
        } else {
            Reply::json(jwks.clone())
        }
    })
    .await;
    *addr.lock().expect("lock") = format!("http://{}", server.addr);
    server
}

/// `GET /pets` (scope pets:read) and `GET /admin` (scope pets:admin) behind the JWT authorizer,
/// forwarding `sub` as `x-causeway-sub` to the upstream.
fn snapshot(jwks: JwksSource, upstream: &Upstream, algorithms: &[&str]) -> Snapshot {
    let snapshot = SnapshotBuilder::new()
        .backend("pets", &[upstream.endpoint()])
        .route(with_authorizer(
            proxy_to("GET /pets", "pets").build(),
            AUTHORIZER,
            &["pets:read"],
        ))
        .route(with_authorizer(
            mock("GET /admin", "admin"),
            AUTHORIZER,
            &["pets:admin"],
        ))
        .build();
    let settings = AuthorizerSettings::Jwt(JwtSettings {
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into()],
        algorithms: algorithms.iter().map(|s| s.to_string()).collect(),
        leeway_seconds: 60,
        jwks,
    });
    add_authorizers(
        snapshot,
        vec![authorizer(
            AUTHORIZER,
            &["header.authorization"],
            &[("x-causeway-sub", "$context.authorizer.claims.sub")],
            settings,
        )],
        &[],
    )
}

async fn call(proxy: &TestProxy, path: &str, token: Option<&str>) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("x-causeway-sub", "forged")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    send(&http1(), Method::GET, &proxy.url(path), HOST, &headers).await
}

#[tokio::test]
async fn a_key_set_is_used_for_an_hour_then_fetched_again() {
    let key = SigningKey::new(Algorithm::RS256, "rsa-1");
    let jwks = jwks_server(&[&key]).await;
    let upstream = Upstream::start("pets").await;
    let (proxy, clock) = TestProxy::with_manual_clock(snapshot(
        JwksSource::Uri(jwks.url("/jwks.json")),
        &upstream,
        &["RS256"],
    ))
    .await;
    let token = key.sign(&claims());
    assert_eq!(
        call(&proxy, "/pets", Some(&token)).await.status,
        StatusCode::OK
    );
    clock.advance(std::time::Duration::from_secs(59 * 60));
    assert_eq!(
        call(&proxy, "/pets", Some(&token)).await.status,
        StatusCode::OK
    );
    assert_eq!(jwks.calls(), 1, "the key set is younger than an hour");
    clock.advance(std::time::Duration::from_secs(2 * 60));
    assert_eq!(
        call(&proxy, "/pets", Some(&token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        jwks.calls(),
        2,
        "an hour later the key set is fetched again"
    );
}

#[tokio::test]
async fn tokens_signed_with_rs256_es256_and_eddsa_are_accepted_and_sub_is_forwarded() {
    let keys = [
        SigningKey::new(Algorithm::RS256, "rsa-1"),
        SigningKey::new(Algorithm::ES256, "ec-1"),
        SigningKey::new(Algorithm::EdDSA, "ed-1"),
    ];
    let jwks = jwks_server(&keys.iter().collect::<Vec<_>>()).await;
    let upstream = Upstream::start("pets").await;
    let proxy = TestProxy::with_snapshot(snapshot(
        JwksSource::Uri(jwks.url("/jwks.json")),
        &upstream,
        &["RS256", "ES256", "EdDSA"],
    ))
    .await;
    for key in &keys {
        let answer = call(&proxy, "/pets", Some(&key.sign(&claims()))).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{:?}: {}",
            key.alg,
            answer.body
        );
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    for s in seen {
        let subs: Vec<_> = s.headers.get_all("x-causeway-sub").iter().collect();
        assert_eq!(subs, ["user-42"], "the client's forged copy must be gone");
    }
    assert_eq!(jwks.calls(), 1, "one fetch serves every request");
}

#[tokio::test]
async fn keys_found_through_oidc_discovery_verify_tokens() {
    let key = SigningKey::new(Algorithm::ES256, "ec-1");
    let jwks = jwks_server(&[&key]).await;
    let upstream = Upstream::start("pets").await;
    let proxy = TestProxy::with_snapshot(snapshot(
        JwksSource::Discovery(jwks.url("/.well-known/openid-configuration")),
        &upstream,
        &["ES256"],
    ))
    .await;
    let answer = call(&proxy, "/pets", Some(&key.sign(&claims()))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn an_inline_jwks_needs_no_fetch() {
    let key = SigningKey::new(Algorithm::EdDSA, "ed-1");
    let jwks = serde_json::to_string(&JwkSet {
        keys: vec![key.jwk.clone()],
    })
    .expect("json");
    let upstream = Upstream::start("pets").await;
    let proxy =
        TestProxy::with_snapshot(snapshot(JwksSource::Inline(jwks), &upstream, &["EdDSA"])).await;
    let answer = call(&proxy, "/pets", Some(&key.sign(&claims()))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[tokio::test]
async fn forged_expired_premature_and_misaddressed_tokens_are_refused_with_the_right_status() {
    let rsa = SigningKey::new(Algorithm::RS256, "rsa-1");
    let jwks = jwks_server(&[&rsa]).await;
    let upstream = Upstream::start("pets").await;
    let proxy = TestProxy::with_snapshot(snapshot(
        JwksSource::Uri(jwks.url("/jwks.json")),
        &upstream,
        &["RS256"],
    ))
    .await;

    let none_token = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#),
        base64url(claims().to_string().as_bytes())
    );
    // HS256 "signed" with the RSA public key, the classic key-confusion attack.
    let public_der = rsa::pkcs1_public_der();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("rsa-1".into());
    let hs_token = jsonwebtoken::encode(
        &hs_header,
        &claims(),
        &EncodingKey::from_secret(&public_der),
    )
    .expect("hs256");
    let other_key = SigningKey::new(Algorithm::ES256, "rsa-1");

    let cases: Vec<(&str, String, StatusCode)> = vec![
        ("no token", String::new(), StatusCode::UNAUTHORIZED),
        ("garbage", "not.a.jwt".into(), StatusCode::UNAUTHORIZED),
        ("alg none", none_token, StatusCode::UNAUTHORIZED),
        (
            "hs256 with the public key",
            hs_token,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "signed by another key",
            other_key.sign(&claims()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "expired beyond leeway",
            rsa.sign(&with(claims(), json!({"exp": now() - 120}))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "nbf in the future",
            rsa.sign(&with(claims(), json!({"nbf": now() + 300}))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "iat in the future",
            rsa.sign(&with(claims(), json!({"iat": now() + 300}))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong iss",
            rsa.sign(&with(claims(), json!({"iss": "https://evil.test"}))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no aud",
            rsa.sign(&with(claims(), json!({"aud": null}))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "foreign aud",
            rsa.sign(&with(claims(), json!({"aud": "other-api"}))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no exp",
            rsa.sign(&with(claims(), json!({"exp": null}))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "missing scope",
            rsa.sign(&with(claims(), json!({"scope": "profile"}))),
            StatusCode::FORBIDDEN,
        ),
        (
            "expired within leeway",
            rsa.sign(&with(claims(), json!({"exp": now() - 30}))),
            StatusCode::OK,
        ),
        (
            "scope in scp array",
            rsa.sign(&with(
                claims(),
                json!({"scope": null, "scp": ["pets:read"]}),
            )),
            StatusCode::OK,
        ),
    ];
    for (name, token, expected) in cases {
        let token = (!token.is_empty()).then_some(token);
        let answer = call(&proxy, "/pets", token.as_deref()).await;
        assert_eq!(answer.status, expected, "{name}: {}", answer.body);
        let message = match expected {
            StatusCode::UNAUTHORIZED => r#"{"message":"Unauthorized"}"#,
            StatusCode::FORBIDDEN => r#"{"message":"Forbidden"}"#,
            _ => continue,
        };
        assert_eq!(answer.body, message, "{name}");
    }
    let admin = call(&proxy, "/admin", Some(&rsa.sign(&claims()))).await;
    assert_eq!(
        admin.status,
        StatusCode::FORBIDDEN,
        "pets:admin is not held"
    );
    assert_eq!(
        upstream.seen().len(),
        2,
        "only the two valid tokens reached the upstream"
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_refetch() {
    let rsa = SigningKey::new(Algorithm::RS256, "rsa-1");
    let jwks = jwks_server(&[&rsa]).await;
    let upstream = Upstream::start("pets").await;
    let proxy = TestProxy::with_snapshot(snapshot(
        JwksSource::Uri(jwks.url("/jwks.json")),
        &upstream,
        &["RS256"],
    ))
    .await;
    assert_eq!(
        call(&proxy, "/pets", Some(&rsa.sign(&claims())))
            .await
            .status,
        StatusCode::OK
    );
    for i in 0..60 {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(format!("random-{i}"));
        let token = jsonwebtoken::encode(&header, &claims(), &rsa.key).expect("signs");
        let answer = call(&proxy, "/pets", Some(&token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    assert!(
        jwks.calls() <= 2,
        "{} JWKS fetches for one flood (initial + at most one refetch per 30 s)",
        jwks.calls()
    );
    assert_eq!(
        call(&proxy, "/pets", Some(&rsa.sign(&claims())))
            .await
            .status,
        StatusCode::OK,
        "known keys keep working during a flood"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_fails_closed() {
    let rsa = SigningKey::new(Algorithm::RS256, "rsa-1");
    let upstream = Upstream::start("pets").await;
    let dead = closed_port().await;
    let proxy = TestProxy::with_snapshot(snapshot(
        JwksSource::Uri(format!("http://{dead}/jwks.json")),
        &upstream,
        &["RS256"],
    ))
    .await;
    let answer = call(&proxy, "/pets", Some(&rsa.sign(&claims()))).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(upstream.seen().is_empty());
}

/// The RSA public key of the fixture in PKCS#1 DER, extracted with the private key's JWK.
mod rsa {
    use super::*;

    pub fn pkcs1_public_der() -> Vec<u8> {
        // n and e from the JWK, then a minimal DER SEQUENCE { INTEGER n, INTEGER e }.
        let jwk = SigningKey::new(Algorithm::RS256, "x").jwk;
        let params = match jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p,
            _ => panic!("rsa jwk"),
        };
        let n = decode_b64url(&params.n);
        let e = decode_b64url(&params.e);
        let int = |v: &[u8]| {
            let mut body = v.to_vec();
            if body.first().is_some_and(|b| b & 0x80 != 0) {
                body.insert(0, 0);
            }
            let mut out = vec![0x02];
            out.extend(der_len(body.len()));
            out.extend(body);
            out
        };
        let mut seq_body = int(&n);
        seq_body.extend(int(&e));
        let mut out = vec![0x30];
        out.extend(der_len(seq_body.len()));
        out.extend(seq_body);
        out
    }

    fn der_len(len: usize) -> Vec<u8> {
        if len < 128 {
            vec![len as u8]
        } else if len < 256 {
            vec![0x81, len as u8]
        } else {
            vec![0x82, (len >> 8) as u8, len as u8]
        }
    }

    fn decode_b64url(s: &str) -> Vec<u8> {
        let value = |c: u8| -> u32 {
            match c {
                b'A'..=b'Z' => u32::from(c - b'A'),
                b'a'..=b'z' => u32::from(c - b'a') + 26,
                b'0'..=b'9' => u32::from(c - b'0') + 52,
                b'-' => 62,
                _ => 63,
            }
        };
        let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
        let mut out = Vec::new();
        for chunk in bytes.chunks(4) {
            let mut n = 0u32;
            for (i, c) in chunk.iter().enumerate() {
                n |= value(*c) << (18 - 6 * i);
            }
            for i in 0..chunk.len().saturating_sub(1) {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }
}

#[tokio::test]
async fn client_id_stands_in_for_an_absent_aud_but_never_overrides_a_present_one() {
    let rsa = SigningKey::new(Algorithm::RS256, "rsa-1");
    let jwks = serde_json::to_string(&JwkSet {
        keys: vec![rsa.jwk.clone()],
    })
    .expect("json");
    let upstream = Upstream::start("pets").await;
    let proxy =
        TestProxy::with_snapshot(snapshot(JwksSource::Inline(jwks), &upstream, &["RS256"])).await;
    let cases = [
        (
            "a Cognito access token: client_id, no aud",
            json!({"aud": null, "client_id": AUDIENCE}),
            StatusCode::OK,
        ),
        (
            "client_id of another client",
            json!({"aud": null, "client_id": "other-app"}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a foreign aud is not rescued by a matching client_id",
            json!({"aud": "other-api", "client_id": AUDIENCE}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "aud as an array holding ours",
            json!({"aud": ["other-api", AUDIENCE]}),
            StatusCode::OK,
        ),
        (
            "neither aud nor client_id",
            json!({"aud": null}),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (name, changes, expected) in cases {
        let token = rsa.sign(&with(claims(), changes));
        let answer = call(&proxy, "/pets", Some(&token)).await;
        assert_eq!(answer.status, expected, "{name}: {}", answer.body);
    }
}

#[tokio::test]
async fn cognito_id_tokens_are_checked_by_aud_and_access_tokens_by_client_id_and_scope() {
    let rsa = SigningKey::new(Algorithm::RS256, "rsa-1");
    let jwks = serde_json::to_string(&JwkSet {
        keys: vec![rsa.jwk.clone()],
    })
    .expect("json");
    let upstream = Upstream::start("pets").await;
    let proxy =
        TestProxy::with_snapshot(snapshot(JwksSource::Inline(jwks), &upstream, &["RS256"])).await;
    // As Cognito issues them: an id token has `aud` (the app client) and no scope; an access
    // token has `client_id`, no `aud`, and its scopes in `scope`.
    let id = json!({"token_use": "id", "scope": null});
    let access = json!({"token_use": "access", "aud": null, "client_id": AUDIENCE});
    let cases = [
        // Both routes require a scope; the id tokens below carry one only to reach the audience
        // check alone.
        (
            "/pets",
            "an id token whose aud is our client",
            with(with(claims(), id.clone()), json!({"scope": "pets:read"})),
            StatusCode::OK,
        ),
        (
            "/pets",
            "an access token of our client with the route's scope",
            with(claims(), access.clone()),
            StatusCode::OK,
        ),
        (
            "/pets",
            "an access token of our client without the route's scope",
            with(with(claims(), access.clone()), json!({"scope": "profile"})),
            StatusCode::FORBIDDEN,
        ),
        (
            "/pets",
            "an id token whose aud is another client, client_id ours",
            with(
                with(claims(), id.clone()),
                json!({"aud": "other-app", "client_id": AUDIENCE, "scope": "pets:read"}),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/pets",
            "an id token with only client_id",
            with(
                with(claims(), id.clone()),
                json!({"aud": null, "client_id": AUDIENCE, "scope": "pets:read"}),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/pets",
            "an access token with our aud but another client_id",
            with(
                with(claims(), access.clone()),
                json!({"aud": AUDIENCE, "client_id": "other-app"}),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/pets",
            "a token that is neither id nor access",
            with(claims(), json!({"token_use": "refresh"})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/pets",
            "an id token as Cognito issues it (no scope) on a route with scopes",
            with(claims(), id.clone()),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (path, name, token_claims, expected) in cases {
        let token = rsa.sign(&token_claims);
        let answer = call(&proxy, path, Some(&token)).await;
        assert_eq!(answer.status, expected, "{name}: {}", answer.body);
    }
}

#[tokio::test]
async fn a_kid_that_names_no_key_is_refused_even_when_the_jwks_has_a_single_key() {
    let rsa = SigningKey::new(Algorithm::RS256, "rsa-1");
    // The one key of the set, once with its kid and once without any.
    let mut anonymous = rsa.jwk.clone();
    anonymous.common.key_id = None;
    for (what, jwk) in [
        ("with kid rsa-1", rsa.jwk.clone()),
        ("without kid", anonymous),
    ] {
        let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("json");
        let upstream = Upstream::start("pets").await;
        let proxy =
            TestProxy::with_snapshot(snapshot(JwksSource::Inline(jwks), &upstream, &["RS256"]))
                .await;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("someone-elses-key".into());
        let token = jsonwebtoken::encode(&header, &claims(), &rsa.key).expect("signs");
        let answer = call(&proxy, "/pets", Some(&token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(upstream.seen().is_empty(), "{what}");
    }
}
