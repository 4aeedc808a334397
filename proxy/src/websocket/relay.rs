//! Management calls across replicas, through Redis pub/sub (the server the quotas use).
//!
//! Each replica subscribes to its own channel, `causeway:ws:{tag}`, where `tag` is the first
//! 8 characters of every connection id it hands out. A replica that receives a management
//! call for a connection another replica owns publishes the call on the owner's channel, with
//! its own channel to reply to, and waits for the reply. Pub/sub rather than streams: a call is
//! only worth delivering to a live owner, and `PUBLISH` says how many subscribers got it — none
//! means nobody listens for the owner. That is the 410 AWS gives for a closed connection only
//! when the owner is really gone: each replica also keeps a liveness key,
//! `causeway:ws:alive:{tag}`, set before it subscribes and refreshed while it runs (it expires
//! [`ALIVE_TTL`] after the last refresh, and is deleted when the replica stops). A call that
//! reaches no subscriber while the owner's key is there finds an owner that is resubscribing
//! after a Redis failure: 503 with `Retry-After`, not 410. Redis unreachable (or the owner
//! silent past the timeout) is a 503 with `Retry-After` too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::oneshot;

use super::{Manage, Managed, Registry};

/// How long a call waits for the owner's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before resubscribing after Redis failed.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);
/// How long a replica's liveness key outlives its last refresh: a replica that died without
/// deleting it is "resubscribing" (503) for at most this long, then gone (410).
pub(crate) const ALIVE_TTL: Duration = Duration::from_secs(10);
/// How often a running replica refreshes its liveness key.
const ALIVE_EVERY: Duration = Duration::from_secs(2);

/// What goes over a replica's channel.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
enum Wire {
    Call {
        reply_to: String,
        call_id: u64,
        stage: String,
        connection: String,
        call: Manage,
    },
    Reply {
        call_id: u64,
        answer: Managed,
    },
}

/// Redis could not carry the call: answer 503 with a retry hint.
#[derive(Debug, thiserror::Error)]
#[error("the connection's owner could not be reached through redis: {0}")]
pub(crate) struct Unavailable(String);

/// This replica's end of the relay.
pub(crate) struct Relay {
    tag: String,
    client: redis::Client,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Managed>>>,
    next: AtomicU64,
    started: std::sync::atomic::AtomicBool,
    /// Set when the replica stops: no more liveness refreshes, the subscription ends.
    retired: std::sync::atomic::AtomicBool,
}

fn channel(tag: &str) -> String {
    format!("causeway:ws:{tag}")
}

fn alive_key(tag: &str) -> String {
    format!("causeway:ws:alive:{tag}")
}

impl Relay {
    /// A relay through the Redis at `url` (nothing is connected yet).
    pub fn new(url: &str, tag: String, timeout: Duration) -> redis::RedisResult<Self> {
        Ok(Self {
            tag,
            client: redis::Client::open(url)?,
            timeout,
            conn: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            started: std::sync::atomic::AtomicBool::new(false),
            retired: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Starts (once) the task that answers calls for this replica's connections and routes
    /// replies to waiting calls. It resubscribes after Redis failures until the relay is gone.
    pub fn start(self: &Arc<Self>, registry: Arc<Registry>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let relay = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(me) = relay.upgrade() else { return };
                if me.retired.load(Ordering::SeqCst) {
                    return;
                }
                let client = me.client.clone();
                let mine = channel(&me.tag);
                drop(me);
                // Alive first: a call that finds no subscriber from here on is told to retry.
                if let Some(me) = relay.upgrade()
                    && let Err(error) = me.keep_alive().await
                {
                    tracing::debug!(%error, "websocket relay: liveness key not set");
                }
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => {
                        if let Err(error) = pubsub.subscribe(&mine).await {
                            tracing::warn!(%error, "websocket relay: subscribe failed");
                        } else {
                            let mut messages = pubsub.on_message();
                            let mut refresh = tokio::time::interval(ALIVE_EVERY);
                            loop {
                                tokio::select! {
                                    message = messages.next() => {
                                        let Some(message) = message else { break };
                                        let Some(me) = relay.upgrade() else { return };
                                        let payload: Vec<u8> =
                                            message.get_payload().unwrap_or_default();
                                        me.receive(&payload, &registry).await;
                                    }
                                    _ = refresh.tick() => {
                                        let Some(me) = relay.upgrade() else { return };
                                        if me.retired.load(Ordering::SeqCst) {
                                            return;
                                        }
                                        if let Err(error) = me.keep_alive().await {
                                            tracing::debug!(%error, "websocket relay: liveness key not refreshed");
                                        }
                                    }
                                }
                            }
                            tracing::warn!("websocket relay: subscription lost; resubscribing");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "websocket relay: redis unreachable"),
                }
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
            }
        });
    }

    async fn receive(self: &Arc<Self>, payload: &[u8], registry: &Registry) {
        match serde_json::from_slice::<Wire>(payload) {
            Ok(Wire::Call {
                reply_to,
                call_id,
                stage,
                connection,
                call,
            }) => {
                let answer = registry.manage(&stage, &connection, call);
                let reply = Wire::Reply { call_id, answer };
                if let Ok(bytes) = serde_json::to_vec(&reply) {
                    let relay = Arc::clone(self);
                    // Replies do not hold up the next call.
                    tokio::spawn(async move {
                        if let Err(error) = relay.publish(&reply_to, bytes).await {
                            tracing::debug!(%error, "websocket relay: reply not sent");
                        }
                    });
                }
            }
            Ok(Wire::Reply { call_id, answer }) => {
                let waiting = self.lock_pending().remove(&call_id);
                if let Some(waiting) = waiting {
                    let _ = waiting.send(answer);
                }
            }
            Err(error) => tracing::debug!(%error, "websocket relay: message not understood"),
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Managed>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets (or refreshes) this replica's liveness key.
    async fn keep_alive(&self) -> Result<(), Unavailable> {
        let mut set = redis::cmd("SET");
        set.arg(alive_key(&self.tag))
            .arg(1)
            .arg("PX")
            .arg(u64::try_from(ALIVE_TTL.as_millis()).unwrap_or(u64::MAX));
        self.query::<()>(set).await
    }

    /// Deletes this replica's liveness key (it stops: its connections are gone, calls for them
    /// answer 410 at once). Best effort.
    pub async fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        let mut del = redis::cmd("DEL");
        del.arg(alive_key(&self.tag));
        if let Err(error) = self.query::<()>(del).await {
            tracing::debug!(%error, "websocket relay: liveness key not deleted");
        }
    }

    /// Whether the replica tagged `owner` still has its liveness key.
    async fn is_alive(&self, owner: &str) -> Result<bool, Unavailable> {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(alive_key(owner));
        Ok(self.query::<i64>(exists).await? > 0)
    }

    /// Publishes; returns how many subscribers received it.
    async fn publish(&self, to: &str, payload: Vec<u8>) -> Result<i64, Unavailable> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(to).arg(payload);
        self.query::<i64>(publish).await
    }

    /// Runs one command on the shared connection, within the timeout.
    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, Unavailable> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            let made = tokio::time::timeout(self.timeout, self.client.get_connection_manager())
                .await
                .map_err(|_| Unavailable("connect timed out".into()))?
                .map_err(|e| Unavailable(e.to_string()))?;
            *guard = Some(made);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(Unavailable("no connection".into()));
        };
        let mut conn = conn.clone();
        drop(guard);
        let answered = cmd.query_async::<T>(&mut conn);
        tokio::time::timeout(self.timeout, answered)
            .await
            .map_err(|_| Unavailable("redis timed out".into()))?
            .map_err(|e| Unavailable(e.to_string()))
    }

    /// Carries a management call to the replica tagged `owner` and returns its answer: 410
    /// when no replica listens on that tag any more and its liveness key is gone; unavailable
    /// (503) while the owner lives but is not subscribed (it is resubscribing).
    pub async fn call(
        &self,
        owner: &str,
        stage: &str,
        connection: &str,
        call: Manage,
    ) -> Result<Managed, Unavailable> {
        let call_id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(call_id, tx);
        let wire = Wire::Call {
            reply_to: channel(&self.tag),
            call_id,
            stage: stage.to_string(),
            connection: connection.to_string(),
            call,
        };
        let payload = serde_json::to_vec(&wire).map_err(|e| Unavailable(e.to_string()))?;
        let published = self.publish(&channel(owner), payload).await;
        let receivers = match published {
            Ok(n) => n,
            Err(error) => {
                self.lock_pending().remove(&call_id);
                return Err(error);
            }
        };
        if receivers == 0 {
            self.lock_pending().remove(&call_id);
            if self.is_alive(owner).await? {
                return Err(Unavailable(
                    "the connection's replica is resubscribing to redis".into(),
                ));
            }
            return Ok(Managed::gone());
        }
        match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => {
                self.lock_pending().remove(&call_id);
                Err(Unavailable("the owner did not answer in time".into()))
            }
        }
    }
}
