//! SigV4 against a real signer: Python `botocore` (from tests/requirements.txt, which scripts/test.sh installs).

use std::process::Command;

use bytes::Bytes;
use causeway_snapshot::{AuthorizerSettings, Sigv4Settings, Snapshot};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};

use super::{add_authorizers, authorizer, with_authorizer};
use crate::support::*;

pub(crate) const AUTHORIZER: &str = "default/iam";
pub(crate) const ACCESS_KEY: &str = "AKIDCAUSEWAYTEST";
pub(crate) const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Signs with botocore's SigV4Auth; `age_seconds` moves the signer's clock back.
const SIGNER: &str = r#"
import datetime, json, sys
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
method, url, body, age, key, secret = sys.argv[1:7]
then = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(seconds=int(age))
botocore.auth.get_current_datetime = lambda *a, **k: then
request = AWSRequest(method=method, url=url, data=body.encode(), headers={"content-type": "application/json"})
botocore.auth.SigV4Auth(Credentials(key, secret), "execute-api", "us-east-1").add_auth(request)
print(json.dumps(dict(request.headers.items())))
"#;

fn ensure_botocore() {
    let has = Command::new("python3")
        .args(["-c", "import botocore"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has,
        "python3 with botocore is needed: python3 -m pip install -r tests/requirements.txt \
         (scripts/test.sh does this)"
    );
}

/// Headers botocore produces for this request.
pub(crate) fn sign(
    method: &str,
    url: &str,
    body: &str,
    age_seconds: u64,
    key: &str,
) -> Vec<(String, String)> {
    ensure_botocore();
    let out = Command::new("python3")
        .args([
            "-c",
            SIGNER,
            method,
            url,
            body,
            &age_seconds.to_string(),
            key,
            SECRET_KEY,
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let headers: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("json headers");
    headers
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn snapshot(upstream: &Upstream) -> Snapshot {
    let snapshot = SnapshotBuilder::new()
        .backend("pets", &[upstream.endpoint()])
        .route(with_authorizer(
            proxy_to("POST /items", "pets").build(),
            AUTHORIZER,
            &[],
        ))
        .build();
    let settings = AuthorizerSettings::Sigv4(Sigv4Settings {
        region: "us-east-1".into(),
        service: "execute-api".into(),
        max_skew_seconds: 300,
        secret_access_keys: [(ACCESS_KEY.to_string(), SECRET_KEY.to_string())].into(),
    });
    add_authorizers(
        snapshot,
        vec![authorizer(
            AUTHORIZER,
            &[],
            &[("x-causeway-principal", "$context.authorizer.principalId")],
            settings,
        )],
        &[],
    )
}

/// Sends `POST {path_and_query}` with these headers and body to the proxy.
async fn post(
    proxy: &TestProxy,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &str,
) -> Answer {
    let mut builder = Request::builder()
        .method("POST")
        .uri(proxy.url(path_and_query));
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        // botocore signs the host of the URL without adding the header.
        builder = builder.header("host", HOST);
    }
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let body: TestBody = Full::new(Bytes::from(body.to_string()))
        .map_err(|e| match e {})
        .boxed();
    let response = http1()
        .request(builder.body(body).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).to_string(),
    }
}

/// (name, path and query, headers, body, expected message).
type Case = (
    &'static str,
    &'static str,
    Vec<(String, String)>,
    &'static str,
    &'static str,
);

fn replace(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case(name) {
                (k.clone(), value.to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

#[tokio::test]
async fn requests_signed_by_botocore_verify_and_altered_or_stale_ones_are_refused() {
    let upstream = Upstream::start("pets").await;
    let proxy = TestProxy::with_snapshot(snapshot(&upstream)).await;
    let url = format!("http://{HOST}/items?b=2&a=1");
    let body = r#"{"n":1}"#;
    let signed = sign("POST", &url, body, 0, ACCESS_KEY);

    let ok = post(&proxy, "/items?b=2&a=1", &signed, body).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].body_len(),
        body.len() as u64,
        "the buffered body is forwarded whole"
    );
    assert_eq!(seen[0].headers["x-causeway-principal"], ACCESS_KEY);

    // Reordering the query is the same canonical request (AWS sorts it): it verifies.
    let reordered = post(&proxy, "/items?a=1&b=2", &signed, body).await;
    assert_eq!(reordered.status, StatusCode::OK, "{}", reordered.body);

    let stale = sign("POST", &url, body, 360, ACCESS_KEY);
    let unknown = sign("POST", &url, body, 0, "AKIDNOBODY");
    let cases: Vec<Case> = vec![
        (
            "changed header",
            "/items?b=2&a=1",
            replace(&signed, "content-type", "text/plain"),
            body,
            "does not match",
        ),
        (
            "changed body",
            "/items?b=2&a=1",
            signed.clone(),
            r#"{"n":2}"#,
            "does not match",
        ),
        (
            "changed query",
            "/items?b=2&a=9",
            signed.clone(),
            body,
            "does not match",
        ),
        (
            "added query",
            "/items?b=2&a=1&c=3",
            signed.clone(),
            body,
            "does not match",
        ),
        (
            "changed path",
            "/items/x?b=2&a=1",
            signed.clone(),
            body,
            "Missing Authentication Token",
        ),
        (
            "six minutes old",
            "/items?b=2&a=1",
            stale,
            body,
            "Signature expired",
        ),
        (
            "unknown access key",
            "/items?b=2&a=1",
            unknown,
            body,
            "does not match",
        ),
        (
            "unsigned",
            "/items?b=2&a=1",
            vec![("host".into(), HOST.into())],
            body,
            "Missing Authentication Token",
        ),
    ];
    for (name, path, headers, body, message) in cases {
        let answer = post(&proxy, path, &headers, body).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{name}: {}",
            answer.body
        );
        assert!(answer.body.contains(message), "{name}: {}", answer.body);
    }
    assert_eq!(
        upstream.seen().len(),
        2,
        "no refused request reached the upstream"
    );
}

#[tokio::test]
async fn secret_access_keys_are_redacted_from_config_dump() {
    let upstream = Upstream::start("pets").await;
    let proxy = TestProxy::with_snapshot(snapshot(&upstream)).await;
    let dump = get(&http1(), &proxy.admin_url("/config_dump"), "admin")
        .await
        .body;
    assert!(!dump.contains(SECRET_KEY), "{dump}");
    assert!(dump.contains("secretAccessKeys"));
}

/// The head alone decides a stale, foreign or oversized SIGV4 request: the proxy answers
/// before the client has sent a byte of the body it announced, so no one can make it wait for
/// (or buffer) a body that cannot pass.
#[tokio::test]
async fn checks_that_need_no_body_refuse_before_the_body_is_read() {
    let upstream = Upstream::start("pets").await;
    let proxy = TestProxy::with_snapshot(snapshot(&upstream)).await;
    let url = format!("http://{HOST}/items");
    let body = "x".repeat(64);
    let stale = sign("POST", &url, &body, 360, ACCESS_KEY);
    let unknown = sign("POST", &url, &body, 0, "AKIDNOBODY");
    let mut foreign_scope = sign("POST", &url, &body, 0, ACCESS_KEY);
    for (k, v) in &mut foreign_scope {
        if k.eq_ignore_ascii_case("authorization") {
            *v = v.replace("/us-east-1/", "/eu-west-1/");
        }
    }
    let fresh = sign("POST", &url, &body, 0, ACCESS_KEY);
    let cases = [
        ("six minutes old", stale, "64", 403, "Signature expired"),
        ("unknown access key", unknown, "64", 403, "does not match"),
        ("foreign scope", foreign_scope, "64", 403, "does not match"),
        ("over the body limit", fresh, "999999999999", 413, ""),
    ];
    for (name, headers, length, status, message) in cases {
        let mut head =
            String::from("POST /items HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n");
        for (k, v) in &headers {
            if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length") {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        head.push_str(&format!("content-length: {length}\r\n\r\n"));
        // The body is never sent: an answer can only come from the head.
        let answer = raw(proxy.addr, head.as_bytes()).await;
        assert_eq!(raw_status(&answer), status, "{name}: {answer}");
        assert!(answer.contains(message), "{name}: {answer}");
    }
    assert!(upstream.seen().is_empty());
}
