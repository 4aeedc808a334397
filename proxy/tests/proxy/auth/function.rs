use std::time::{Duration, Instant};

use causeway_snapshot::{AuthorizerSettings, FunctionSettings, ResponseFormat, Snapshot};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{add_authorizers, authorizer, with_authorizer};
use crate::support::*;

const AUTHORIZER: &str = "default/fn";
const ARN_PREFIX: &str = "arn:aws:execute-api:causeway:default:pets/prod";

/// An authorizer function that decides by the token:
/// - `allow` → simple allow with context; `deny` → simple deny;
/// - `policy-a` → IAM allowing only `GET /a`; `policy-all` → IAM allowing everything;
/// - `slow` → answers after 2 s; `broken` → 500; `reject` → 401.
async fn function_server() -> Upstream {
    Upstream::with_handler(|r: &Seen| {
        let event: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let token = event["authorizationToken"]
            .as_str()
            .or_else(|| event["identitySource"][0].as_str())
            .unwrap_or_default()
            .to_string();
        let policy = |resource: &str| {
            json!({
                "principalId": "user-7",
                "policyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}
                ]},
                "context": {"tier": "gold"}
            })
            .to_string()
        };
        match token.as_str() {
            "allow" => Reply::json(
                json!({"isAuthorized": true, "context": {"tier": "silver"}}).to_string(),
            ),
            "deny" => Reply::json(json!({"isAuthorized": false}).to_string()),
            "policy-a" => Reply::json(policy(&format!("{ARN_PREFIX}/GET/a"))),
            "policy-all" => Reply::json(policy(&format!("{ARN_PREFIX}/*"))),
            "slow" => {
                Reply::json(json!({"isAuthorized": true}).to_string()).after(Duration::from_secs(2))
            }
            "reject" => Reply::json("{}").status(401),
            _ => Reply::json("boom").status(500),
        }
    })
    .await
}

struct Setup {
    token: bool,
    ttl_seconds: u32,
    timeout_ms: u32,
    regex: Option<&'static str>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            token: false,
            ttl_seconds: 300,
            timeout_ms: 1_000,
            regex: None,
        }
    }
}

/// Routes `GET /a` and `GET /b` behind the function authorizer at `function`.
fn snapshot(function: std::net::SocketAddr, upstream: &Upstream, setup: Setup) -> Snapshot {
    let snapshot = SnapshotBuilder::new()
        .backend("pets", &[upstream.endpoint()])
        .route(with_authorizer(
            proxy_to("GET /a", "pets").build(),
            AUTHORIZER,
            &[],
        ))
        .route(with_authorizer(
            proxy_to("GET /b", "pets").build(),
            AUTHORIZER,
            &[],
        ))
        .build();
    let settings = FunctionSettings {
        backend: "authz".into(),
        path: "/2015-03-31/functions/function/invocations".into(),
        timeout_ms: setup.timeout_ms,
        ttl_seconds: setup.ttl_seconds,
        identity_validation: setup.regex.map(str::to_string),
        response_format: ResponseFormat::Any,
    };
    let settings = if setup.token {
        AuthorizerSettings::Token(settings)
    } else {
        AuthorizerSettings::Request(settings)
    };
    let source = if setup.token {
        "header.authorization"
    } else {
        "header.x-token"
    };
    add_authorizers(
        snapshot,
        vec![authorizer(
            AUTHORIZER,
            &[source],
            &[
                ("x-causeway-principal", "$context.authorizer.principalId"),
                ("x-causeway-tier", "$context.authorizer.tier"),
            ],
            settings,
        )],
        &[("authz", function)],
    )
}

async fn call(proxy: &TestProxy, path: &str, header: &str, token: &str) -> Answer {
    send(
        &http1(),
        Method::GET,
        &proxy.url(path),
        HOST,
        &[(header, token), ("x-causeway-principal", "forged")],
    )
    .await
}

#[tokio::test]
async fn a_request_authorizer_gets_an_api_gateway_event_and_its_context_reaches_the_upstream() {
    let function = function_server().await;
    let upstream = Upstream::start("pets").await;
    let proxy =
        TestProxy::with_snapshot(snapshot(function.addr, &upstream, Setup::default())).await;
    let answer = call(&proxy, "/a?x=1", "x-token", "policy-all").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let seen = upstream.seen();
    assert_eq!(seen[0].headers["x-causeway-principal"], "user-7");
    assert_eq!(seen[0].headers["x-causeway-tier"], "gold");
    let received = function.seen()[0].clone();
    assert_eq!(
        received.path_and_query(),
        "/2015-03-31/functions/function/invocations"
    );
    assert_eq!(received.headers["content-type"], "application/json");
    let event: Value = serde_json::from_slice(&received.body).expect("event json");
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["type"], "REQUEST");
    assert_eq!(event["routeArn"], format!("{ARN_PREFIX}/GET/a"));
    assert_eq!(event["identitySource"], json!(["policy-all"]));
    assert_eq!(event["routeKey"], "GET /a");
    assert_eq!(event["rawPath"], "/a");
    assert_eq!(event["queryStringParameters"]["x"], "1");
    assert_eq!(event["headers"]["x-token"], "policy-all");
    assert_eq!(event["requestContext"]["stage"], "prod");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
}

#[tokio::test]
async fn decisions_are_cached_per_identity_and_per_route_unless_the_policy_covers_the_other_route()
{
    let function = function_server().await;
    let upstream = Upstream::start("pets").await;
    let proxy =
        TestProxy::with_snapshot(snapshot(function.addr, &upstream, Setup::default())).await;

    // A simple allow answers route A only: route B asks again.
    assert_eq!(
        call(&proxy, "/a", "x-token", "allow").await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&proxy, "/a", "x-token", "allow").await.status,
        StatusCode::OK
    );
    assert_eq!(function.calls(), 1);
    assert_eq!(
        call(&proxy, "/b", "x-token", "allow").await.status,
        StatusCode::OK
    );
    assert_eq!(function.calls(), 2);

    // A policy allowing only A: B is not served from it, and the fresh answer denies B.
    assert_eq!(
        call(&proxy, "/a", "x-token", "policy-a").await.status,
        StatusCode::OK
    );
    assert_eq!(function.calls(), 3);
    let b = call(&proxy, "/b", "x-token", "policy-a").await;
    assert_eq!(b.status, StatusCode::FORBIDDEN, "{}", b.body);
    assert_eq!(function.calls(), 4);

    // A policy allowing every route answers B from the cache.
    assert_eq!(
        call(&proxy, "/a", "x-token", "policy-all").await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&proxy, "/b", "x-token", "policy-all").await.status,
        StatusCode::OK
    );
    assert_eq!(function.calls(), 5);

    // Denials are cached too, per identity.
    assert_eq!(
        call(&proxy, "/a", "x-token", "deny").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&proxy, "/a", "x-token", "deny").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(function.calls(), 6);
    assert_eq!(upstream.seen().len(), 6);
}

#[tokio::test]
async fn a_cached_decision_expires_after_its_ttl() {
    let function = function_server().await;
    let upstream = Upstream::start("pets").await;
    let setup = Setup {
        ttl_seconds: 1,
        ..Setup::default()
    };
    let (proxy, clock) =
        TestProxy::with_manual_clock(snapshot(function.addr, &upstream, setup)).await;
    assert_eq!(
        call(&proxy, "/a", "x-token", "allow").await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&proxy, "/a", "x-token", "allow").await.status,
        StatusCode::OK
    );
    assert_eq!(function.calls(), 1, "served from the cache within the TTL");
    clock.advance(Duration::from_millis(1_100));
    assert_eq!(
        call(&proxy, "/a", "x-token", "allow").await.status,
        StatusCode::OK
    );
    assert_eq!(function.calls(), 2, "asked again once the TTL passed");
}

#[tokio::test]
async fn a_ttl_of_zero_asks_the_function_every_time() {
    let function = function_server().await;
    let upstream = Upstream::start("pets").await;
    let setup = Setup {
        ttl_seconds: 0,
        ..Setup::default()
    };
    let proxy = TestProxy::with_snapshot(snapshot(function.addr, &upstream, setup)).await;
    for _ in 0..3 {
        assert_eq!(
            call(&proxy, "/a", "x-token", "allow").await.status,
            StatusCode::OK
        );
    }
    assert_eq!(function.calls(), 3);
}

#[tokio::test]
async fn a_slow_down_or_failing_authorizer_fails_closed_within_its_timeout() {
    let function = function_server().await;
    let upstream = Upstream::start("pets").await;
    let setup = Setup {
        timeout_ms: 300,
        ..Setup::default()
    };
    let proxy = TestProxy::with_snapshot(snapshot(function.addr, &upstream, setup)).await;
    let started = Instant::now();
    let slow = call(&proxy, "/a", "x-token", "slow").await;
    assert_eq!(slow.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        call(&proxy, "/a", "x-token", "broken").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        call(&proxy, "/a", "x-token", "reject").await.status,
        StatusCode::UNAUTHORIZED
    );

    let dead = closed_port().await;
    let proxy = TestProxy::with_snapshot(snapshot(dead, &upstream, Setup::default())).await;
    let started = Instant::now();
    let down = call(&proxy, "/a", "x-token", "allow").await;
    assert_eq!(down.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        upstream.seen().is_empty(),
        "nothing reaches the upstream unauthorized"
    );
}

#[tokio::test]
async fn a_token_authorizer_checks_its_regex_before_calling_and_refuses_missing_tokens() {
    let function = function_server().await;
    let upstream = Upstream::start("pets").await;
    let setup = Setup {
        token: true,
        regex: Some("[a-z-]+"),
        ..Setup::default()
    };
    let proxy = TestProxy::with_snapshot(snapshot(function.addr, &upstream, setup)).await;
    let bad = call(&proxy, "/a", "authorization", "NOT VALID 123").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let missing = send(&http1(), Method::GET, &proxy.url("/a"), HOST, &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(function.calls(), 0, "no call for a token the regex refuses");
    let ok = call(&proxy, "/a", "authorization", "policy-all").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let event: Value = serde_json::from_slice(&function.seen()[0].body).expect("json");
    assert_eq!(event["type"], "TOKEN");
    assert_eq!(event["authorizationToken"], "policy-all");
    assert_eq!(event["methodArn"], format!("{ARN_PREFIX}/GET/a"));
}

#[tokio::test]
async fn an_authorizer_over_https_is_called_over_tls_and_an_untrusted_one_fails_closed() {
    const ALLOW: &str = r#"{"isAuthorized":true,"context":{"tier":"platinum"}}"#;
    let (function, function_ca) = tls_function("authz.internal", ALLOW).await;
    let (_stranger, stranger_ca) = tls_function("authz.internal", ALLOW).await;
    let upstream = Upstream::start("pets").await;
    let setup = || Setup {
        ttl_seconds: 0,
        ..Setup::default()
    };

    let trusted = over_https(
        snapshot(function.addr, &upstream, setup()),
        "authz",
        &function_ca,
        "authz.internal",
    );
    let proxy = TestProxy::with_snapshot(trusted).await;
    let allowed = call(&proxy, "/a", "x-token", "anything").await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    assert_eq!(function.calls(), 1);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].headers.get("x-causeway-tier").map(|v| v.as_bytes()),
        Some(&b"platinum"[..]),
        "the decision's context came back over TLS"
    );

    // Trusting another CA: the handshake fails, the function is never asked, and the request
    // fails closed without reaching the upstream.
    let untrusted = over_https(
        snapshot(function.addr, &upstream, setup()),
        "authz",
        &stranger_ca,
        "authz.internal",
    );
    let proxy = TestProxy::with_snapshot(untrusted).await;
    let refused = call(&proxy, "/a", "x-token", "anything").await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(function.calls(), 1);
    assert_eq!(
        upstream.seen().len(),
        1,
        "nothing more reached the upstream"
    );
}
