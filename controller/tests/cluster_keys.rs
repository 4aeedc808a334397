//! The service-account issuer and keys read from a mock API server (tower-test): read before
//! the first compile, read again on a timer, and a change (key rotation) wakes the reconciler.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use causeway_controller::cluster_keys::{DISCOVERY_PATH, JWKS_PATH, watch_keys};
use causeway_controller::kube::Client;
use causeway_controller::kube::client::Body;
use http::{Request, Response, StatusCode};
use tokio::sync::Notify;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Serves discovery and a JWKS whose key id is `kid-N`, N = the value of `generation` when the
/// request arrives; anything else is 404.
async fn serve(mut handle: Handle, generation: Arc<AtomicUsize>) {
    while let Some((request, send)) = handle.next_request().await {
        let body = match request.uri().path() {
            DISCOVERY_PATH => {
                r#"{"issuer":"https://issuer.example","jwks_uri":"https://x/openid/v1/jwks"}"#
                    .to_string()
            }
            JWKS_PATH => format!(
                r#"{{"keys":[{{"kty":"RSA","kid":"kid-{}","n":"AQAB","e":"AQAB"}}]}}"#,
                generation.load(Ordering::SeqCst)
            ),
            _ => {
                send.send_response(
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Body::from(b"{}".to_vec()))
                        .expect("response"),
                );
                continue;
            }
        };
        send.send_response(
            Response::builder()
                .body(Body::from(body.into_bytes()))
                .expect("response"),
        );
    }
}

#[tokio::test]
async fn the_keys_are_read_at_start_and_a_rotation_wakes_the_reconciler_with_the_new_keys() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let generation = Arc::new(AtomicUsize::new(1));
    tokio::spawn(serve(handle, Arc::clone(&generation)));
    let wake = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    let mut keys = watch_keys(
        client,
        Duration::from_millis(50),
        Arc::clone(&wake),
        &mut tasks,
    )
    .await;
    let first = keys.borrow_and_update().clone().expect("read at start");
    assert_eq!(first.issuer, "https://issuer.example");
    assert!(first.jwks.contains("kid-1"), "{}", first.jwks);

    // Unchanged keys: no wake-up.
    let quiet = tokio::time::timeout(Duration::from_millis(200), wake.notified()).await;
    assert!(quiet.is_err(), "woken although nothing changed");

    // The API server rotates its key.
    generation.store(2, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(2), wake.notified())
        .await
        .expect("the rotation wakes the reconciler");
    let rotated = keys.borrow_and_update().clone().expect("keys");
    assert!(rotated.jwks.contains("kid-2"), "{}", rotated.jwks);
    tasks.abort_all();
}

#[tokio::test]
async fn a_server_without_issuer_discovery_gives_no_keys_and_does_not_stop_the_controller() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    tokio::spawn(async move {
        while let Some((_, send)) = handle.next_request().await {
            send.send_response(
                Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .body(Body::from(
                        br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}"#
                            .to_vec(),
                    ))
                    .expect("response"),
            );
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    let keys = watch_keys(
        client,
        Duration::from_secs(60),
        Arc::new(Notify::new()),
        &mut tasks,
    )
    .await;
    assert!(keys.borrow().is_none());
    tasks.abort_all();
}
