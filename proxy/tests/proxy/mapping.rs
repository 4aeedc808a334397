//! Parameter mapping of HTTP_PROXY integrations, through the proxy to a recording upstream.

use std::collections::BTreeMap;

use causeway_snapshot::mapping::{MappingSide, parse_key};
use causeway_snapshot::{Integration, ParameterMapping, RouteConfig};
use http::{Method, StatusCode};

use crate::support::*;

fn mappings(side: MappingSide, table: &[(&str, &str)]) -> Vec<ParameterMapping> {
    table
        .iter()
        .map(|(key, value)| {
            let (action, target) = parse_key(key, side).expect("key");
            ParameterMapping {
                action,
                target,
                value: value.to_string(),
            }
        })
        .collect()
}

#[tokio::test]
async fn request_and_response_parameters_are_mapped_on_the_way_to_and_from_the_backend() {
    let upstream = Upstream::with_handler(|_| {
        Reply::ok("hello")
            .header("x-upstream-version", "7")
            .header("server", "secret-server")
    })
    .await;
    let mut route: RouteConfig = proxy_to("GET /users/{id}/items", "up").build();
    if let Integration::HttpProxy(h) = &mut route.integration {
        h.request_parameters = mappings(
            MappingSide::Request,
            &[
                ("overwrite:header.x-user-id", "$request.path.id"),
                ("append:header.x-trace", "$context.requestId"),
                ("remove:header.x-secret", ""),
                ("append:querystring.source", "gw-$context.stage"),
                ("overwrite:querystring.env", "$stageVariables.env"),
                ("remove:querystring.debug", ""),
                ("overwrite:header.x-ip", "$context.identity.sourceIp"),
                (
                    "overwrite:header.x-client",
                    "${request.header.user-agent}/${request.querystring.v}",
                ),
                ("overwrite:path", "/internal/items/${request.path.id}"),
            ],
        );
        h.response_parameters = mappings(
            MappingSide::Response,
            &[
                ("overwrite:statuscode", "203"),
                (
                    "overwrite:header.x-version",
                    "v$response.header.x-upstream-version",
                ),
                ("remove:header.server", ""),
                ("append:header.x-stage", "$context.stage"),
                ("overwrite:header.x-asked-by", "$request.header.user-agent"),
            ],
        );
    }
    let mut snapshot = SnapshotBuilder::new()
        .route(route)
        .backend("up", &[upstream.endpoint()])
        .build();
    snapshot.stages[0].main.variables = BTreeMap::from([("env".to_string(), "blue".to_string())]);
    let proxy = TestProxy::with_snapshot(snapshot.seal()).await;

    let answer = exchange(
        Method::GET,
        &proxy.url("/users/42/items?debug=1&v=3&env=old"),
        HOST,
        &[
            ("x-secret", "s3"),
            ("x-trace", "client"),
            ("user-agent", "ua1"),
            ("x-request-id", "req-7"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(answer.status.as_u16(), 203);
    assert_eq!(answer.text(), "hello");
    assert_eq!(answer.header("x-version").as_deref(), Some("v7"));
    assert_eq!(answer.header("x-stage").as_deref(), Some("prod"));
    assert_eq!(answer.header("x-asked-by").as_deref(), Some("ua1"));
    assert!(answer.header("server").is_none());

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    let got = &seen[0];
    assert_eq!(got.path, "/internal/items/42");
    assert_eq!(got.query.as_deref(), Some("v=3&source=gw-prod&env=blue"));
    let header = |name: &str| {
        got.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(header("x-user-id"), ["42"]);
    let request_id = answer.header("x-request-id").unwrap_or_default();
    assert_ne!(
        request_id, "req-7",
        "an untrusted client's request id is replaced"
    );
    // `x-trace` is a header the gateway sets on this Api: the client's copy never reaches the
    // backend, so what is there is the gateway's alone.
    assert_eq!(header("x-trace"), [request_id]);
    assert!(header("x-secret").is_empty());
    assert_eq!(header("x-ip"), ["127.0.0.1"]);
    assert_eq!(header("x-client"), ["ua1/3"]);
}

#[tokio::test]
async fn routes_without_mappings_forward_query_and_headers_untouched() {
    let upstream = Upstream::with_handler(|_| Reply::ok("plain")).await;
    let snapshot = SnapshotBuilder::new()
        .route(proxy_to("GET /plain", "up"))
        .backend("up", &[upstream.endpoint()])
        .build();
    let proxy = TestProxy::with_snapshot(snapshot).await;
    let answer = exchange(
        Method::GET,
        &proxy.url("/plain?a=1+2&b=%2F"),
        HOST,
        &[("x-keep", "yes")],
        Vec::new(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let got = &upstream.seen()[0];
    assert_eq!(got.query.as_deref(), Some("a=1+2&b=%2F"), "raw query kept");
    assert_eq!(
        got.headers.get("x-keep").map(|v| v.as_bytes()),
        Some(&b"yes"[..])
    );
}
