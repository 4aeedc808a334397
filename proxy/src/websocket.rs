//! The parts of a WebSocket Api's life that need no tables: connection ids (which name the
//! replica that owns the socket), route selection on a message, the registry of this
//! replica's connections that the `@connections` API reaches, and the relay that carries a
//! management call to the owning replica through Redis (`websocket/relay.rs`).
//!
//! The socket itself is held by the session in `pipeline/websocket.rs`; the listener hands
//! it the upgraded connection when the `$connect` answer carries a [`Session`].

pub(crate) mod relay;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::{Notify, mpsc};

use crate::limits::TokenBucket;

/// The route key of the upgrade.
pub(crate) const CONNECT: &str = "$connect";
/// The route key called when a connection ends.
pub(crate) const DISCONNECT: &str = "$disconnect";

/// Header naming the connection on every integration call (and `$context.connectionId`).
pub(crate) const CONNECTION_ID_HEADER: &str = "connectionid";
/// Header naming the event: `CONNECT`, `MESSAGE` or `DISCONNECT`.
pub(crate) const EVENT_TYPE_HEADER: &str = "eventtype";
/// Header naming the route key that was selected.
pub(crate) const ROUTE_KEY_HEADER: &str = "routekey";

/// Close codes, as AWS sends them.
pub(crate) mod close {
    /// `DELETE /@connections/{id}` and a normal end.
    pub const NORMAL: u16 = 1000;
    /// Idle timeout, maximum duration, the proxy drains, the stage is gone.
    pub const GOING_AWAY: u16 = 1001;
    /// The client's close frame had no status (reported to `$disconnect`, never sent).
    pub const NO_STATUS: u16 = 1005;
    /// The client went away without a close frame (reported to `$disconnect`, never sent).
    pub const ABNORMAL: u16 = 1006;
    /// A frame or message over the limit.
    pub const TOO_BIG: u16 = 1009;
}

/// The event a context or an integration call is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Connect,
    Message,
    Disconnect,
}

impl EventType {
    /// As AWS writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::Message => "MESSAGE",
            Self::Disconnect => "DISCONNECT",
        }
    }
}

/// This replica's tag in the connection ids it hands out: random per process, so that a
/// restarted replica never claims its predecessor's connections.
pub(crate) fn replica_tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// A new connection id owned by `replica`: the tag, then 16 random hex digits. Safe in a
/// URL path as it is.
pub(crate) fn new_connection_id(replica: &str) -> String {
    format!("{replica}{:016x}", rand::random::<u64>())
}

/// The replica tag a connection id names, if it has the shape of one.
pub(crate) fn owner_of(connection_id: &str) -> Option<&str> {
    (connection_id.len() == 24 && connection_id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| &connection_id[..8])
}

/// The route key a message selects: the string at `path` in its JSON body. `None` (the
/// `$default` route) when the message is not JSON, or holds no string there.
pub(crate) fn select_route(message: &[u8], path: &[String]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(message).ok()?;
    let mut at = &value;
    for segment in path {
        at = at.get(segment)?;
    }
    at.as_str().map(str::to_string)
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub(crate) fn accept_key(key: &[u8]) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key)
}

/// Milliseconds since the epoch.
pub(crate) fn epoch_millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// What the gateway sends a client: a message, or a close.
#[derive(Debug)]
pub(crate) enum Outbound {
    Text(String),
    Binary(Bytes),
    /// Close with this code and reason; the session then ends.
    Close(u16, &'static str),
}

impl Outbound {
    /// Text when the bytes are UTF-8 (what the integrations usually send), else binary.
    pub fn data(bytes: Bytes) -> Self {
        match std::str::from_utf8(&bytes) {
            Ok(text) => Self::Text(text.to_string()),
            Err(_) => Self::Binary(bytes),
        }
    }
}

/// One open connection of this replica, as the management API sees it.
pub(crate) struct Connection {
    /// The stage it was opened on (`namespace/api/stage`); management calls of other stages
    /// do not reach it.
    pub stage_id: String,
    pub connected_at: SystemTime,
    /// Milliseconds since the epoch of the last message either way.
    pub last_active: AtomicU64,
    pub source_ip: IpAddr,
    pub user_agent: String,
    /// The bounded queue to the socket's writer.
    pub sender: mpsc::Sender<Outbound>,
    /// Woken to end the session whatever the queue holds (`DELETE`, the stage is gone); the
    /// close code is in `close_code`.
    pub closing: Notify,
    pub close_code: AtomicU16,
}

impl Connection {
    /// Ends the session with this close code, even when its queue is full.
    pub fn close(&self, code: u16) {
        self.close_code.store(code, Ordering::SeqCst);
        self.closing.notify_one();
    }

    /// Notes a message either way.
    pub fn touch(&self) {
        let now = u64::try_from(epoch_millis(SystemTime::now())).unwrap_or(u64::MAX);
        self.last_active.store(now, Ordering::Relaxed);
    }

    /// `GET /@connections/{id}`'s answer, as AWS shapes it.
    pub fn describe(&self) -> serde_json::Value {
        let last = self.last_active.load(Ordering::Relaxed);
        serde_json::json!({
            "connectedAt": iso8601(epoch_millis(self.connected_at)),
            "lastActiveAt": iso8601(u128::from(last)),
            "identity": {"sourceIp": self.source_ip.to_string(), "userAgent": self.user_agent},
        })
    }
}

/// A bucket of `rate` tokens per second whose burst is one second of it (at least 1).
pub(crate) fn per_second(rate: f64) -> causeway_snapshot::Throttle {
    causeway_snapshot::Throttle {
        rate,
        burst: u32::try_from(rate.ceil() as u64).unwrap_or(u32::MAX).max(1),
    }
}

/// `2026-12-02T22:53:09.123Z` from milliseconds since the epoch.
pub(crate) fn iso8601(millis: u128) -> String {
    let secs = i64::try_from(millis / 1000).unwrap_or(0);
    let ms = millis % 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = crate::clock::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What a management call asks of a connection.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "op")]
pub(crate) enum Manage {
    /// Send the data to the client.
    Post { data: Vec<u8> },
    /// Describe the connection.
    Get,
    /// Close it.
    Delete,
}

/// A management call's answer: status and JSON body (empty for none).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Managed {
    pub status: u16,
    pub body: String,
}

impl Managed {
    /// 410 Gone: unknown or closed (AWS's `GoneException`).
    pub fn gone() -> Self {
        Self {
            status: 410,
            body: r#"{"message":"GoneException"}"#.to_string(),
        }
    }
}

/// Labels of the per-route-key counts. Route keys come from the snapshot (a message no route
/// takes is counted under `$default`), so the set is bounded by the Apis' routes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteKeyLabels {
    pub api: String,
    pub stage: String,
    pub route_key: String,
    /// `CONNECT`, `MESSAGE` or `DISCONNECT`.
    pub event_type: &'static str,
}

/// The label a route key is counted under: its own when a route of the snapshot took the
/// event, else `$default`.
pub(crate) fn route_key_label(route: Option<&str>) -> String {
    route.unwrap_or("$default").to_string()
}

fn integration_histogram() -> Histogram {
    // 1 ms .. ~33 s: covers the 29 s integration timeout.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Counts of WebSocket traffic (`causeway_proxy_websocket_*`).
pub(crate) struct WebSocketMetrics {
    pub open: Gauge,
    pub connects: Counter,
    pub disconnects: Counter,
    pub messages_in: Counter,
    pub messages_out: Counter,
    /// Events by route key (CONNECT, each MESSAGE, DISCONNECT).
    pub route_events: Family<RouteKeyLabels, Counter>,
    /// Integration latency by route key.
    pub route_integration_latency: Family<RouteKeyLabels, Histogram, fn() -> Histogram>,
    /// Upgrades refused by the new-connection rate, and messages refused by the message rate.
    pub throttled_connects: Counter,
    pub throttled_messages: Counter,
}

impl Default for WebSocketMetrics {
    fn default() -> Self {
        Self {
            open: Gauge::default(),
            connects: Counter::default(),
            disconnects: Counter::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            route_events: Family::default(),
            route_integration_latency: Family::new_with_constructor(integration_histogram),
            throttled_connects: Counter::default(),
            throttled_messages: Counter::default(),
        }
    }
}

impl WebSocketMetrics {
    /// Registers every count.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "causeway_proxy_websocket_connections",
            "Open WebSocket connections held by this replica",
            self.open.clone(),
        );
        registry.register(
            "causeway_proxy_websocket_connects",
            "WebSocket connections opened (upgrades accepted)",
            self.connects.clone(),
        );
        registry.register(
            "causeway_proxy_websocket_disconnects",
            "WebSocket connections ended, however they ended",
            self.disconnects.clone(),
        );
        registry.register(
            "causeway_proxy_websocket_messages_in",
            "Messages received from WebSocket clients",
            self.messages_in.clone(),
        );
        registry.register(
            "causeway_proxy_websocket_messages_out",
            "Messages sent to WebSocket clients (two-way answers and @connections posts)",
            self.messages_out.clone(),
        );
        registry.register(
            "causeway_proxy_websocket_route_events",
            "WebSocket events by route key of the snapshot ($default for a message no route takes)",
            self.route_events.clone(),
        );
        registry.register(
            "causeway_proxy_websocket_integration_latency_seconds",
            "Integration latency of WebSocket events by route key",
            self.route_integration_latency.clone(),
        );
        registry.register(
            "causeway_proxy_websocket_connects_throttled",
            "WebSocket upgrades refused with 429 by the new-connection rate of their stage",
            self.throttled_connects.clone(),
        );
        registry.register(
            "causeway_proxy_websocket_messages_throttled",
            "WebSocket messages refused by the message rate of their connection",
            self.throttled_messages.clone(),
        );
    }
}

/// This replica's open connections, by id.
#[derive(Default)]
pub(crate) struct Registry {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    /// New-connection buckets by stage id (rate and burst as configured).
    connect_buckets: Mutex<HashMap<String, Arc<TokenBucket>>>,
    pub metrics: WebSocketMetrics,
}

impl Registry {
    /// Takes a new-connection token of the stage (`rate` per second, burst `rate`), or says
    /// how long until one is free. A rate of 0 admits every upgrade.
    pub fn admit_connection(&self, stage_id: &str, rate: f64) -> Result<(), Duration> {
        if rate <= 0.0 {
            return Ok(());
        }
        let bucket =
            {
                let mut buckets = self
                    .connect_buckets
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                Arc::clone(buckets.entry(stage_id.to_string()).or_insert_with(|| {
                    Arc::new(TokenBucket::new(per_second(rate), Instant::now()))
                }))
            };
        bucket.try_take(Instant::now())
    }

    /// Closes (1001 Going Away) every connection whose stage `keep` refuses: a snapshot
    /// removed its stage or its Api. Their sessions call `$disconnect` as for any close.
    pub fn close_removed(&self, keep: impl Fn(&str) -> bool) -> usize {
        let doomed: Vec<Arc<Connection>> = self
            .lock()
            .values()
            .filter(|c| !keep(&c.stage_id))
            .cloned()
            .collect();
        for connection in &doomed {
            connection.close(close::GOING_AWAY);
        }
        self.connect_buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|stage, _| keep(stage));
        doomed.len()
    }

    /// Adds a connection once its socket is open.
    pub fn insert(&self, id: String, connection: Arc<Connection>) {
        self.lock().insert(id, connection);
    }

    /// Removes a connection as its socket ends.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The open connection with this id, if any.
    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Connection>>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs a management call on a connection of this replica, on `stage_id`.
    pub fn manage(&self, stage_id: &str, id: &str, call: Manage) -> Managed {
        let Some(connection) = self.get(id).filter(|c| c.stage_id == stage_id) else {
            return Managed::gone();
        };
        match call {
            Manage::Get => Managed {
                status: 200,
                body: connection.describe().to_string(),
            },
            Manage::Delete => {
                // A full queue must not keep a connection open: the session is told directly.
                connection.close(close::NORMAL);
                Managed {
                    status: 204,
                    body: String::new(),
                }
            }
            Manage::Post { data } => {
                match connection
                    .sender
                    .try_send(Outbound::data(Bytes::from(data)))
                {
                    Ok(()) => {
                        connection.touch();
                        Managed {
                            status: 200,
                            body: String::new(),
                        }
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => Managed {
                        status: 429,
                        body:
                            r#"{"message":"LimitExceededException: the client reads too slowly"}"#
                                .to_string(),
                    },
                    Err(mpsc::error::TrySendError::Closed(_)) => Managed::gone(),
                }
            }
        }
    }
}

/// What the listener runs on the client's upgraded connection once the `$connect` answer
/// (a 101 carrying this in its extensions) is sent. `drain` resolves when the listener drains.
#[derive(Clone)]
pub(crate) struct Session(Arc<Mutex<Option<SessionFn>>>);

/// The session body.
pub(crate) type SessionFn =
    Box<dyn FnOnce(TokioIo<Upgraded>, BoxFuture<'static, ()>) -> BoxFuture<'static, ()> + Send>;

impl Session {
    pub fn new(run: SessionFn) -> Self {
        Self(Arc::new(Mutex::new(Some(run))))
    }

    /// The session body, once.
    pub fn take(&self) -> Option<SessionFn> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_is_the_string_at_the_selection_path_else_default() {
        let path = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            select_route(br#"{"a":{"b":"send"}}"#, &path).as_deref(),
            Some("send")
        );
        assert_eq!(select_route(br#"{"a":{"b":3}}"#, &path), None);
        assert_eq!(select_route(b"hello", &path), None);
        assert_eq!(select_route(br#"{"a":1}"#, &path), None);
    }

    #[test]
    fn a_connection_id_names_its_owner() {
        let tag = replica_tag();
        let id = new_connection_id(&tag);
        assert_eq!(owner_of(&id), Some(tag.as_str()));
        assert_eq!(owner_of("not-an-id"), None);
    }

    #[test]
    fn times_print_as_iso_8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_796_251_989_123), "2026-12-02T22:53:09.123Z");
    }
}
