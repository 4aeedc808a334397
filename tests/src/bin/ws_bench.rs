//! `ws-bench`: the client side of `bench/websocket.sh`, in one process.
//!
//! 1. Idle connections: reads the proxy's RSS (`/proc/PID/status`), opens `--connections`
//!    WebSocket connections to the stage, waits for the proxy to settle, reads the RSS again and
//!    prints the difference per connection.
//! 2. Round trips, each for `--seconds` with `--clients` connections sending in lock step:
//!    - through the proxy to an HTTP backend and back through `@connections`: the message goes
//!      to the stage's `$default` route (HTTP_PROXY, one-way) to the backend served here, which
//!      answers with a SigV4-signed `POST /{stage}/@connections/{id}` carrying the same bytes;
//!    - through the proxy to a two-way MOCK route (`{"action":"mock"}`), for reference;
//!    - directly to a WebSocket echo server served here (the baseline: no gateway).
//!
//! Prints Markdown table rows. Arguments are `--name value` pairs (see [`Args`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = WebSocketStream<TcpStream>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the bench is told.
struct Args {
    /// The proxy's traffic address.
    proxy: SocketAddr,
    /// The proxy's process id (its RSS is read).
    pid: u32,
    /// The stage's host name.
    host: String,
    /// The stage name (the first path segment).
    stage: String,
    /// Where the HTTP backend listens (the YAML's EndpointSlice names it).
    backend: SocketAddr,
    /// SigV4 access key id and secret for `@connections`.
    access_key: String,
    secret_key: String,
    connections: usize,
    seconds: u64,
    clients: usize,
}

impl Args {
    fn parse() -> Result<Self, BoxError> {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(name) = it.next() {
            let value = it.next().ok_or(format!("{name} needs a value"))?;
            map.insert(name.trim_start_matches("--").to_string(), value);
        }
        let get = |k: &str| map.get(k).cloned().ok_or(format!("--{k} is required"));
        Ok(Self {
            proxy: get("proxy")?.parse()?,
            pid: get("pid")?.parse()?,
            host: get("host")?,
            stage: get("stage")?,
            backend: get("backend")?.parse()?,
            access_key: get("access-key")?,
            secret_key: get("secret-key")?,
            connections: get("connections")?.parse()?,
            seconds: get("seconds")?.parse()?,
            clients: get("clients")?.parse()?,
        })
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A client config that keeps the bench's own memory small (10,000 sockets).
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

async fn open(addr: SocketAddr, host: &str, path: &str) -> Result<Ws, BoxError> {
    let mut request = format!("ws://{host}{path}").into_client_request()?;
    request
        .headers_mut()
        .insert("host", http::HeaderValue::from_str(host)?);
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(client_config())).await?;
    Ok(ws)
}

/// Opens `n` connections, `parallel` handshakes at a time.
async fn open_many(args: &Args, n: usize, parallel: usize) -> Result<Vec<Ws>, BoxError> {
    let path = format!("/{}", args.stage);
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let batch = parallel.min(n - all.len());
        let opened =
            futures_util::future::join_all((0..batch).map(|_| open(args.proxy, &args.host, &path)))
                .await;
        for ws in opened {
            all.push(ws?);
        }
    }
    Ok(all)
}

// ------------------------------------------------------------------ SigV4 (for @connections)

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn aws_encode(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `x-amz-date` and `authorization` for a POST of `body` to `path` on `host`.
fn sign(args: &Args, path: &str, body: &[u8]) -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (date, time) = civil(secs);
    let amz_date = format!("{date}T{time}Z");
    let payload = hex::encode(Sha256::digest(body));
    let canonical = format!(
        "POST\n{}\n\nhost:{}\nx-amz-date:{amz_date}\n\nhost;x-amz-date\n{payload}",
        aws_encode(path),
        args.host
    );
    let scope = format!("{date}/us-east-1/execute-api/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", args.secret_key).as_bytes(), &date);
    for part in ["us-east-1", "execute-api", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-date, Signature={signature}",
        args.access_key
    );
    (amz_date, authorization)
}

/// `("YYYYMMDD", "HHMMSS")` in UTC.
fn civil(secs: u64) -> (String, String) {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}{month:02}{day:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

// ------------------------------------------------------------------ the HTTP backend

/// The chat-style backend: each MESSAGE event is pushed back to its connection through
/// `@connections`, then answered 200.
async fn backend(args: Arc<Args>, pushes: Arc<AtomicU64>) -> Result<(), BoxError> {
    let listener = TcpListener::bind(args.backend).await?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let args = Arc::clone(&args);
        let client = client.clone();
        let pushes = Arc::clone(&pushes);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                handle(
                    Arc::clone(&args),
                    client.clone(),
                    Arc::clone(&pushes),
                    request,
                )
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One event from the gateway: a MESSAGE goes back through `@connections`.
async fn handle(
    args: Arc<Args>,
    client: Client<HttpConnector, Full<Bytes>>,
    pushes: Arc<AtomicU64>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, event) = (header("connectionid"), header("eventtype"));
    let body = request.into_body().collect().await?.to_bytes();
    if event == "MESSAGE" {
        let path = format!("/{}/@connections/{id}", args.stage);
        let (date, authorization) = sign(&args, &path, &body);
        let push = Request::post(format!("http://{}{path}", args.proxy))
            .header("host", &args.host)
            .header("x-amz-date", date)
            .header("authorization", authorization)
            .body(Full::new(body));
        if let Ok(push) = push
            && let Ok(answer) = client.request(push).await
        {
            if answer.status() == 200 {
                pushes.fetch_add(1, Ordering::Relaxed);
            }
            let _ = answer.into_body().collect().await;
        }
    }
    Ok(Response::new(Full::new(Bytes::new())))
}

/// The baseline: a WebSocket server that answers each message with its bytes.
async fn direct_echo(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                if message.is_text() || message.is_binary() {
                    if ws.send(message).await.is_err() {
                        return;
                    }
                } else if message.is_close() {
                    return;
                }
            }
        });
    }
}

/// Round trips per second over `sockets`, each sending `payload` and awaiting one message.
async fn round_trips(sockets: Vec<Ws>, payload: &'static str, seconds: u64) -> f64 {
    let end = Instant::now() + Duration::from_secs(seconds);
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                while Instant::now() < end {
                    if ws.send(Message::text(payload)).await.is_err() {
                        return;
                    }
                    loop {
                        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                            Ok(Some(Ok(m))) if m.is_text() || m.is_binary() => break,
                            Ok(Some(Ok(_))) => {}
                            _ => return,
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                let _ = ws.close(None).await;
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / seconds as f64
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Arc::new(Args::parse()?);
    let pushes = Arc::new(AtomicU64::new(0));
    tokio::spawn(backend(Arc::clone(&args), Arc::clone(&pushes)));
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo.local_addr()?;
    tokio::spawn(direct_echo(echo));

    // Idle connections: RSS before, after opening, after closing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(args.pid);
    let started = Instant::now();
    let idle = open_many(&args, args.connections, 200).await?;
    let opening = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(args.pid);
    let per = (after.saturating_sub(before)) as f64 / args.connections.max(1) as f64;
    drop(idle);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let closed = rss_kib(args.pid);
    println!("| idle connections held | {} |", args.connections);
    println!(
        "| time to open them ({} handshakes at a time) | {:.1} s |",
        200,
        opening.as_secs_f64()
    );
    println!(
        "| proxy RSS before / with them / after closing | {before} KiB / {after} KiB / {closed} KiB |"
    );
    println!("| **proxy RSS per idle connection** | **{per:.1} KiB** (target ≤ 16 KiB) |");

    // Round trips.
    let path = format!("/{}", args.stage);
    let clients = args.clients;
    let mut sockets = Vec::new();
    for _ in 0..clients {
        sockets.push(open(args.proxy, &args.host, &path).await?);
    }
    let via_backend = round_trips(sockets, "ping", args.seconds).await;
    let mut sockets = Vec::new();
    for _ in 0..clients {
        sockets.push(open(args.proxy, &args.host, &path).await?);
    }
    let via_mock = round_trips(sockets, r#"{"action":"mock"}"#, args.seconds).await;
    let mut sockets = Vec::new();
    for _ in 0..clients {
        sockets.push(open(echo_addr, "echo.localhost", "/").await?);
    }
    let direct = round_trips(sockets, "ping", args.seconds).await;
    println!(
        "| round trips/s: client → proxy → HTTP backend → `POST @connections` → proxy → client ({clients} clients) | {via_backend:.0} |"
    );
    println!(
        "| round trips/s: client → proxy → two-way MOCK route → client ({clients} clients) | {via_mock:.0} |"
    );
    println!(
        "| round trips/s: client → WebSocket echo server, no gateway (baseline, {clients} clients) | {direct:.0} |"
    );
    println!(
        "| `@connections` pushes answered 200 | {} |",
        pushes.load(Ordering::Relaxed)
    );
    Ok(())
}
