//! Management calls across replicas, through Redis pub/sub (the server the quotas use).
//!
//! Each replica subscribes to its own channel, `causeway:ws:{tag}`, where `tag` is the first
//! 8 characters of every connection id it hands out. A replica that receives a management
//! call for a connection another replica owns publishes the call on the owner's channel, with
//! its own channel to reply to, and waits for the reply. Pub/sub rather than streams: a call is
//! only worth delivering to a live owner, and `PUBLISH` says how many subscribers got it — none
//! means the owner is gone, which is the 410 AWS gives for a closed connection. Redis
//! unreachable (or the owner silent past the timeout) is a 503 with `Retry-After`.

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
}

fn channel(tag: &str) -> String {
    format!("causeway:ws:{tag}")
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
                let client = me.client.clone();
                let mine = channel(&me.tag);
                drop(me);
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => {
                        if let Err(error) = pubsub.subscribe(&mine).await {
                            tracing::warn!(%error, "websocket relay: subscribe failed");
                        } else {
                            let mut messages = pubsub.on_message();
                            while let Some(message) = messages.next().await {
                                let Some(me) = relay.upgrade() else { return };
                                let payload: Vec<u8> = message.get_payload().unwrap_or_default();
                                me.receive(&payload, &registry).await;
                            }
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

    /// Publishes; returns how many subscribers received it.
    async fn publish(&self, to: &str, payload: Vec<u8>) -> Result<i64, Unavailable> {
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
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(to).arg(payload);
        let published = publish.query_async::<i64>(&mut conn);
        tokio::time::timeout(self.timeout, published)
            .await
            .map_err(|_| Unavailable("publish timed out".into()))?
            .map_err(|e| Unavailable(e.to_string()))
    }

    /// Carries a management call to the replica tagged `owner` and returns its answer: 410
    /// when no replica listens on that tag any more.
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
