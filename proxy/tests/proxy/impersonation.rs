//! A client cannot imitate or remove a header the gateway sets: client copies of every header
//! the Api's gateway sets are removed on every route, in any spelling; `_` names are dropped,
//! refused or allowed as configured; `Connection:` cannot nominate a gateway header.

use causeway_proxy::{HeadersWithUnderscores, ProxyConfig};
use causeway_snapshot::mapping::{MappingSide, parse_key};
use causeway_snapshot::{
    AuthorizerSettings, FunctionSettings, Integration, ParameterMapping, ResponseFormat, Snapshot,
};
use http::{Method, StatusCode};
use serde_json::json;

use crate::auth::{add_authorizers, authorizer, with_authorizer};
use crate::support::*;

const AUTHORIZER: &str = "default/fn";

/// A REQUEST authorizer that allows every caller as user `alice`.
async fn allow_alice() -> Upstream {
    Upstream::with_handler(|_: &Seen| {
        let answer = json!({"isAuthorized": true, "context": {"user": "alice"}});
        Reply::json(answer.to_string())
    })
    .await
}

/// `GET /me` behind the authorizer (forwards `x-user-id`), `GET /tenant` with a mapping that
/// sets `x-tenant`, and `GET /open` with neither; all to `upstream`.
fn snapshot(upstream: &Upstream, function: &Upstream) -> Snapshot {
    let mut tenant = proxy_to("GET /tenant", "up").build();
    if let Integration::HttpProxy(h) = &mut tenant.integration {
        let (action, target) =
            parse_key("overwrite:header.x-tenant", MappingSide::Request).expect("key");
        h.request_parameters = vec![ParameterMapping {
            action,
            target,
            value: "gold".into(),
        }];
    }
    let built = SnapshotBuilder::new()
        .backend("up", &[upstream.endpoint()])
        .route(with_authorizer(
            proxy_to("GET /me", "up").build(),
            AUTHORIZER,
            &[],
        ))
        .route(tenant)
        .route(proxy_to("GET /open", "up"))
        .build();
    let settings = AuthorizerSettings::Request(FunctionSettings {
        backend: "authz".into(),
        path: "/authorize".into(),
        timeout_ms: 1_000,
        ttl_seconds: 0,
        identity_validation: None,
        response_format: ResponseFormat::Any,
    });
    add_authorizers(
        built,
        vec![authorizer(
            AUTHORIZER,
            &["header.x-token"],
            &[("x-user-id", "$context.authorizer.user")],
            settings,
        )],
        &[("authz", function.addr)],
    )
}

fn last_headers(upstream: &Upstream) -> http::HeaderMap {
    upstream
        .seen()
        .last()
        .expect("the upstream was called")
        .headers
        .clone()
}

#[tokio::test]
async fn no_route_of_the_api_forwards_a_client_copy_of_a_header_the_gateway_sets() {
    let (upstream, function) = (Upstream::start("up").await, allow_alice().await);
    let proxy = TestProxy::with_snapshot(snapshot(&upstream, &function)).await;
    let spoofed = [
        ("x-user-id", "admin"),
        ("X-USER_ID", "admin"),
        ("x_tenant", "platinum"),
        ("x-tenant", "platinum"),
        ("x-kept", "yes"),
    ];
    // A route with neither the authorizer nor the mapping: the names are still the gateway's.
    let open = send(&http1(), Method::GET, &proxy.url("/open"), HOST, &spoofed).await;
    assert_eq!(open.status, StatusCode::OK);
    let h = last_headers(&upstream);
    for gone in ["x-user-id", "x_user_id", "x-tenant", "x_tenant"] {
        assert!(!h.contains_key(gone), "{gone} reached the backend: {h:?}");
    }
    assert_eq!(h["x-kept"], "yes");

    let mut with_token = spoofed.to_vec();
    with_token.push(("x-token", "t"));
    let me = send(&http1(), Method::GET, &proxy.url("/me"), HOST, &with_token).await;
    assert_eq!(me.status, StatusCode::OK);
    let h = last_headers(&upstream);
    assert_eq!(
        h.get_all("x-user-id").iter().collect::<Vec<_>>(),
        ["alice"],
        "only the authorizer's value"
    );
    let tenant = send(&http1(), Method::GET, &proxy.url("/tenant"), HOST, &spoofed).await;
    assert_eq!(tenant.status, StatusCode::OK);
    let h = last_headers(&upstream);
    assert_eq!(
        h.get_all("x-tenant").iter().collect::<Vec<_>>(),
        ["gold"],
        "only the mapping's value"
    );
    assert!(!h.contains_key("x_tenant"));
}

#[tokio::test]
async fn a_client_connection_header_cannot_remove_a_header_the_gateway_sets() {
    let (upstream, function) = (Upstream::start("up").await, allow_alice().await);
    let proxy = TestProxy::with_snapshot(snapshot(&upstream, &function)).await;
    let nominate = "x-user-id, x-tenant, x-forwarded-for, x-forwarded-proto, x-request-id, x-hop";
    let headers = [
        ("connection", nominate),
        ("x-token", "t"),
        ("x-hop", "client hop header"),
    ];
    let me = send(&http1(), Method::GET, &proxy.url("/me"), HOST, &headers).await;
    assert_eq!(me.status, StatusCode::OK);
    let h = last_headers(&upstream);
    assert_eq!(h["x-user-id"], "alice");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-request-id"], me.headers["x-request-id"]);
    assert!(
        !h.contains_key("x-hop"),
        "a client hop-by-hop header still goes"
    );
    let tenant = send(&http1(), Method::GET, &proxy.url("/tenant"), HOST, &headers).await;
    assert_eq!(tenant.status, StatusCode::OK);
    assert_eq!(last_headers(&upstream)["x-tenant"], "gold");
}

#[tokio::test]
async fn header_names_with_underscores_are_dropped_refused_or_allowed_as_configured() {
    let (upstream, function) = (Upstream::start("up").await, allow_alice().await);
    let sent = [
        ("x_custom", "1"),
        ("x_forwarded_for", "6.6.6.6"),
        ("x_user_id", "admin"),
    ];
    let mut seen = Vec::new();
    for policy in [
        HeadersWithUnderscores::Drop,
        HeadersWithUnderscores::Reject,
        HeadersWithUnderscores::Allow,
    ] {
        let config = ProxyConfig {
            headers_with_underscores: policy,
            ..ProxyConfig::default()
        };
        let proxy = TestProxy::with_config(config, snapshot(&upstream, &function)).await;
        let answer = send(&http1(), Method::GET, &proxy.url("/open"), HOST, &sent).await;
        seen.push(answer.status);
        if answer.status == StatusCode::OK {
            let h = last_headers(&upstream);
            let mut names: Vec<&str> = ["x_custom", "x_forwarded_for", "x_user_id"]
                .into_iter()
                .filter(|n| h.contains_key(*n))
                .collect();
            names.sort_unstable();
            match policy {
                HeadersWithUnderscores::Allow => {
                    assert_eq!(
                        names,
                        ["x_custom"],
                        "gateway names stay out even when allowed"
                    )
                }
                _ => assert!(names.is_empty(), "{names:?}"),
            }
        }
    }
    assert_eq!(
        seen,
        [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::OK],
        "drop, reject, allow"
    );
    assert_eq!(
        upstream.seen().len(),
        2,
        "a refused request never reaches the backend"
    );
}
