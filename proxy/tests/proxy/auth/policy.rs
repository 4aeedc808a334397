use causeway_snapshot::SourcePolicy;
use http::StatusCode;

use crate::support::*;

fn with_policy(allow: &[&str], deny: &[&str]) -> causeway_snapshot::Snapshot {
    let mut snapshot = SnapshotBuilder::new()
        .route(mock("GET /pets", "ok"))
        .build();
    snapshot.apis[0].policy = Some(SourcePolicy {
        allow: allow.iter().map(|s| s.to_string()).collect(),
        deny: deny.iter().map(|s| s.to_string()).collect(),
    });
    snapshot.seal()
}

#[tokio::test]
async fn the_resource_policy_admits_or_refuses_the_client_address_with_deny_winning() {
    // The test client connects from 127.0.0.1.
    let table: [(&[&str], &[&str], StatusCode); 5] = [
        (&["127.0.0.0/8"], &[], StatusCode::OK),
        (&["10.0.0.0/8"], &[], StatusCode::FORBIDDEN),
        (&["127.0.0.0/8"], &["127.0.0.1/32"], StatusCode::FORBIDDEN),
        (&[], &["192.0.2.0/24"], StatusCode::OK),
        (&[], &["127.0.0.1"], StatusCode::FORBIDDEN),
    ];
    for (allow, deny, expected) in table {
        let proxy = TestProxy::with_snapshot(with_policy(allow, deny)).await;
        let answer = get(&http1(), &proxy.url("/pets"), HOST).await;
        assert_eq!(answer.status, expected, "allow {allow:?} deny {deny:?}");
        if expected == StatusCode::FORBIDDEN {
            assert_eq!(
                answer.body,
                r#"{"message":"User: anonymous is not authorized to perform: execute-api:Invoke"}"#
            );
        }
    }
}

#[tokio::test]
async fn a_refused_client_gets_403_even_for_unknown_routes() {
    let proxy = TestProxy::with_snapshot(with_policy(&["10.0.0.0/8"], &[])).await;
    let answer = get(&http1(), &proxy.url("/nope"), HOST).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.body.contains("not authorized"), "{}", answer.body);
}
