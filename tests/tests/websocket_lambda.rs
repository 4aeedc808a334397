//! The Lambda-style WebSocket example end to end: `examples/websocket/lambda/handler.py`,
//! written with Powertools for AWS Lambda (Python) whose parser models validate every event,
//! behind `examples/lambda/invoke.py`, and the real `causeway standalone` serving
//! `examples/websocket/lambda` in front of it, driven by a real WebSocket client
//! (tokio-tungstenite): subprotocol choice on `$connect`, two-way routes, `$disconnect` with
//! the client's close code.
//!
//! Needs `python3` with `aws-lambda-powertools[parser]` (`pip install -r tests/requirements.txt`;
//! `scripts/test.sh` installs it). Without it the test fails and says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use causeway_e2e::{ChildGuard, eventually, repo_root, require_python_modules};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const HOST: &str = "chat-fn.default.localhost";

/// The function (handler.py next to a copy of invoke.py in `dir/fn`), once it accepts
/// invocations: the guard and its port.
async fn function(dir: &Path, logs: &Path) -> (ChildGuard, u16) {
    let function_dir = dir.join("fn");
    std::fs::create_dir_all(&function_dir).expect("function dir");
    for (from, to) in [
        ("examples/lambda/invoke.py", "invoke.py"),
        ("examples/websocket/lambda/handler.py", "handler.py"),
    ] {
        std::fs::copy(repo_root().join(from), function_dir.join(to)).expect("copy function");
    }
    causeway_e2e::invoke_py(&function_dir, "handler.handler", logs).await
}

/// The example's YAML in `dir/config`, its function at `port`.
fn example_copy(dir: &Path, port: u16) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let text = std::fs::read_to_string(repo_root().join("examples/websocket/lambda/api.yaml"))
        .expect("read example")
        .replace("9002", &port.to_string());
    std::fs::write(config.join("api.yaml"), text).expect("write");
    config
}

type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket to the stage, offering `protocols` (if any); the answer's subprotocol.
async fn open(
    traffic: std::net::SocketAddr,
    protocols: Option<&str>,
) -> Result<(Ws, Option<String>), WsError> {
    let mut request = format!("ws://{HOST}:{}/prod", traffic.port())
        .into_client_request()
        .expect("request");
    if let Some(p) = protocols {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", p.parse().expect("header value"));
    }
    let stream = TcpStream::connect(traffic).await.expect("tcp connect");
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((ws, chosen))
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"));
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_powertools_websocket_handler_serves_connect_messages_and_disconnect_through_causeway()
{
    require_python_modules(&["aws_lambda_powertools.utilities.parser"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path();
    let (function, port) = function(dir.path(), logs).await;
    let config = example_copy(dir.path(), port);
    let (gateway, traffic) = causeway_e2e::standalone(&config, logs).await;

    // The function chooses the first subprotocol it speaks, in the client's order.
    let (mut ws, chosen) = open(traffic, Some("chat.v9, chat.v1"))
        .await
        .unwrap_or_else(|e| panic!("upgrade: {e:?}\n{}", gateway.stderr()));
    assert_eq!(chosen.as_deref(), Some("chat.v1"));

    ws.send(Message::text(r#"{"action":"whoami"}"#))
        .await
        .unwrap();
    let me = next_json(&mut ws).await;
    assert_eq!(me["routeKey"], "whoami", "{me}");
    assert_eq!(me["stage"], "prod");
    assert_eq!(me["apiId"], "chat-fn");
    assert_eq!(me["domainName"], HOST);
    assert_eq!(me["sourceIp"], "127.0.0.1");
    let id = me["connectionId"]
        .as_str()
        .expect("connectionId")
        .to_string();
    assert_eq!(id.len(), 24, "{me}");
    assert!(
        me["messageId"].as_str().is_some_and(|m| !m.is_empty()),
        "{me}"
    );

    // Not JSON: `$default`, which echoes.
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        serde_json::json!({"echo": "hello"})
    );

    // The client's close code and reason reach `$disconnect` (parsed by Powertools' model).
    ws.close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "tab closed".into(),
    }))
    .await
    .unwrap();
    let (function_ref, id_ref) = (&function, id.as_str());
    let logged = eventually(Duration::from_secs(10), move || async move {
        function_ref.stderr().lines().find_map(|line| {
            let record: Value = serde_json::from_str(line).ok()?;
            (record["message"] == "disconnected" && record["connection_id"] == id_ref)
                .then_some(record)
        })
    })
    .await
    .unwrap_or_else(|| panic!("no disconnect logged:\n{}", function.stderr()));
    assert_eq!(logged["code"], 1001, "{logged}");
    assert_eq!(logged["reason"], "tab closed", "{logged}");

    // Offering only subprotocols the function does not speak: its 400 refuses the upgrade.
    match open(traffic, Some("chat.v9")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 400),
        Ok(_) => panic!("the upgrade should be refused"),
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
    }
    // Offering none: admitted, and no subprotocol is answered.
    let (_ws, chosen) = open(traffic, None)
        .await
        .expect("upgrade without protocols");
    assert_eq!(chosen, None);
}
