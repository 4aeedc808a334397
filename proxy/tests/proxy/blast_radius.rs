//! One object cannot freeze every tenant: a stage the proxy cannot build is dropped and
//! reported, and the rest of the same snapshot takes effect.

use causeway_snapshot::{
    ApiKeyConfig, AuthorizerConfig, AuthorizerSettings, BasePathMapping, Certificate, Integration,
    PlanStage, RouteAuthorization, Sigv4Settings, Snapshot, StageConfig, UsagePlanConfig,
};
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::support::*;

const ALICE: &str = "alice-raw-key-0123456789abcdef";
const BOB: &str = "bob-raw-key-0123456789abcdef00";
const BAD_STAGE: &str = "default/pets/bad";

fn key(id: &str, value: &str, enabled: bool) -> ApiKeyConfig {
    ApiKeyConfig {
        id: id.to_string(),
        sha256: hex::encode(Sha256::digest(value.as_bytes())),
        enabled,
        throttle: None,
        quota: None,
    }
}

/// Stage `prod` serves `GET /private` (key required) with plan `gold` (alice, and bob enabled
/// or not); with `poisoned`, a second stage `bad` at base path `bad` answers with a header
/// value holding CR LF, which compile would have refused and the proxy cannot build.
fn snapshot(bob_enabled: bool, poisoned: bool) -> Snapshot {
    let mut private = mock("GET /private", "secret stuff");
    private.api_key_required = true;
    let mut snapshot = SnapshotBuilder::new()
        .route(private)
        .base_path("prod")
        .build();
    snapshot.usage_plans = vec![UsagePlanConfig {
        id: "default/gold".into(),
        stages: vec![PlanStage {
            stage: STAGE.into(),
            route_throttles: Default::default(),
        }],
        throttle: None,
        quota: None,
        fail_closed: true,
        rate_limit_headers: false,
        keys: vec![key("alice", ALICE, true), key("bob", BOB, bob_enabled)],
    }];
    if poisoned {
        let mut route = mock("GET /private", "other tenant");
        if let Integration::Mock(m) = &mut route.integration {
            m.headers
                .insert("x-tenant".into(), "acme\r\nx-admin: true".into());
        }
        let mut bad: StageConfig = snapshot.stages[0].clone();
        bad.id = BAD_STAGE.into();
        bad.name = "bad".into();
        bad.main.routes = vec![route];
        snapshot.stages.push(bad);
        snapshot.hosts[0].mappings.push(BasePathMapping {
            base_path: "bad".into(),
            stage: BAD_STAGE.into(),
        });
    }
    snapshot.seal()
}

async fn with_key(proxy: &TestProxy, path: &str, key: &str) -> Answer {
    send(
        &http1(),
        Method::GET,
        &proxy.url(path),
        HOST,
        &[("x-api-key", key)],
    )
    .await
}

#[tokio::test]
async fn a_stage_with_an_invalid_header_value_is_dropped_while_a_key_disabled_in_the_same_snapshot_takes_effect()
 {
    let proxy = TestProxy::with_snapshot(snapshot(true, false)).await;
    assert_eq!(
        with_key(&proxy, "/prod/private", BOB).await.status,
        StatusCode::OK
    );

    let next = snapshot(false, true);
    let applied = proxy.proxy.apply(next.clone());
    assert_eq!(applied.version, next.version);
    assert_eq!(proxy.proxy.version(), Some(next.version.clone()));
    assert_eq!(applied.dropped.len(), 1, "{:?}", applied.dropped);
    let part = &applied.dropped[0];
    assert_eq!((part.kind.as_str(), part.id.as_str()), ("stage", BAD_STAGE));
    assert!(part.reason.contains("header value"), "{}", part.reason);

    let bob = with_key(&proxy, "/prod/private", BOB).await;
    assert_eq!(bob.status, StatusCode::FORBIDDEN, "bob is disabled now");
    let alice = with_key(&proxy, "/prod/private", ALICE).await;
    assert_eq!(
        (alice.status, alice.body.as_str()),
        (StatusCode::OK, "secret stuff")
    );
    let other = with_key(&proxy, "/bad/private", ALICE).await;
    assert_ne!(
        other.body, "other tenant",
        "the dropped stage serves nothing"
    );

    let metrics = get(&http1(), &proxy.admin_url("/metrics"), "admin").await;
    assert!(
        metrics
            .body
            .contains(r#"causeway_proxy_snapshot_dropped_parts{kind="stage"} 1"#),
        "{}",
        metrics.body
    );

    // The next clean snapshot clears the report.
    let clean = proxy.proxy.apply(snapshot(false, false));
    assert!(clean.dropped.is_empty());
    let metrics = get(&http1(), &proxy.admin_url("/metrics"), "admin").await;
    assert!(
        metrics
            .body
            .contains(r#"causeway_proxy_snapshot_dropped_parts{kind="stage"} 0"#),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn a_host_mapping_to_a_stage_the_snapshot_lacks_is_dropped_and_reported() {
    let mut s = snapshot(true, false);
    s.hosts[0].mappings.push(BasePathMapping {
        base_path: "ghost".into(),
        stage: "default/pets/ghost".into(),
    });
    let proxy = TestProxy::start().await;
    let applied = proxy.proxy.apply(s.seal());
    assert_eq!(applied.dropped.len(), 1, "{:?}", applied.dropped);
    assert_eq!(applied.dropped[0].kind, "host");
    assert!(applied.dropped[0].reason.contains("ghost"));
    assert_eq!(
        with_key(&proxy, "/prod/private", ALICE).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unusable_authorizer_key_or_certificate_is_dropped_with_what_needs_it_and_the_rest_serves()
 {
    let proxy = TestProxy::with_snapshot(snapshot(true, false)).await;
    let mut next = snapshot(true, false);
    // Stage `bad` has a route behind an authorizer whose forwarded header name cannot exist.
    let mut guarded = mock("GET /private", "other tenant");
    guarded.authorization = Some(RouteAuthorization {
        authorizer: "default/broken".into(),
        scopes: vec![],
    });
    let mut bad: StageConfig = next.stages[0].clone();
    bad.id = BAD_STAGE.into();
    bad.name = "bad".into();
    bad.main.routes = vec![guarded];
    next.stages.push(bad);
    next.hosts[0].mappings.push(BasePathMapping {
        base_path: "bad".into(),
        stage: BAD_STAGE.into(),
    });
    next.authorizers.insert(
        "default/broken".into(),
        AuthorizerConfig {
            id: "default/broken".into(),
            api: next.stages[0].api.clone(),
            identity_source: vec![],
            forward_headers: [(
                "x bad\nname".to_string(),
                "$context.principalId".to_string(),
            )]
            .into(),
            settings: AuthorizerSettings::Sigv4(Sigv4Settings {
                region: "us-east-1".into(),
                service: "execute-api".into(),
                max_skew_seconds: 300,
                secret_access_keys: Default::default(),
            }),
        },
    );
    // Bob's key hash is not hex; a certificate does not parse.
    next.usage_plans[0].keys[1].sha256 = "zz".into();
    next.certificates.push(Certificate {
        hostnames: vec!["x.test".into()],
        cert_chain_pem: "not a certificate".into(),
        private_key_pem: "not a key".into(),
        client_ca_pem: None,
    });
    let next = next.seal();
    let applied = proxy.proxy.apply(next.clone());
    assert_eq!(proxy.proxy.version(), Some(next.version.clone()));
    let mut parts: Vec<(&str, &str)> = applied
        .dropped
        .iter()
        .map(|p| (p.kind.as_str(), p.id.as_str()))
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        vec![
            ("authorizer", "default/broken"),
            ("certificate", "x.test"),
            ("key", "default/gold/bob"),
            ("stage", BAD_STAGE),
        ],
        "{:?}",
        applied.dropped
    );
    let stage = applied
        .dropped
        .iter()
        .find(|p| p.kind == "stage")
        .expect("stage");
    assert!(
        stage.reason.contains("authorizer default/broken"),
        "{}",
        stage.reason
    );

    let alice = with_key(&proxy, "/prod/private", ALICE).await;
    assert_eq!(
        (alice.status, alice.body.as_str()),
        (StatusCode::OK, "secret stuff")
    );
    let bob = with_key(&proxy, "/prod/private", BOB).await;
    assert_eq!(
        bob.status,
        StatusCode::FORBIDDEN,
        "an unusable key is refused"
    );
    let other = with_key(&proxy, "/bad/private", ALICE).await;
    assert_ne!(
        other.body, "other tenant",
        "the dropped stage serves nothing"
    );

    let metrics = get(&http1(), &proxy.admin_url("/metrics"), "admin").await;
    for kind in ["authorizer", "certificate", "key", "stage"] {
        let line = format!(r#"causeway_proxy_snapshot_dropped_parts{{kind="{kind}"}} 1"#);
        assert!(metrics.body.contains(&line), "{line} in {}", metrics.body);
    }
}
