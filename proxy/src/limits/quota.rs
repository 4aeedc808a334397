//! Quotas: requests per calendar period (UTC day, week from Monday, month) per API key, exact
//! across any number of proxy replicas.
//!
//! Counting is shared through Redis without a round trip per request: each replica *leases*
//! blocks of the remaining quota with one atomic Lua script (`INCRBY` of what it takes, never
//! past the limit) and spends them locally. Blocks shrink as the quota runs out (a sixteenth of
//! what is left, at most [`MAX_LEASE`]), and are a single request in the last stretch, so the
//! sum admitted never exceeds the quota and reaches it exactly while demand lasts. A replica
//! that stops (or is killed) holding a lease strands at most that lease until the period ends:
//! the error is always under-admission, never over. [`Quotas::release`] gives leases back on a
//! graceful stop.
//!
//! Without Redis, the same leases are taken from an in-memory store: each replica counts alone.
//! When Redis cannot be reached (or answers slower than its timeout), each plan chooses:
//! fail closed (refuse: the quota can never be exceeded) or fail open (admit from what was left
//! at the replica's last look at Redis, counting locally, and add that count to Redis with the
//! next lease once it answers). One replica failing open never exceeds the quota; N replicas
//! exceed it by at most (N − 1) × what was left when Redis went away (each may spend the same
//! remainder), never more than (N − 1) × the quota. Redis returning needs no restart: the
//! connection manager reconnects.

use crate::clock::{civil_from_days, days_from_civil};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use redis::aio::ConnectionManager;

/// The largest block a replica leases at once.
pub(crate) const MAX_LEASE: u64 = 100;
#[cfg(test)]
use crate::config::DEFAULT_REDIS_TIMEOUT;

pub(crate) const SECONDS_PER_DAY: u64 = 86_400;

/// Adds `ARGV[4]` (requests admitted while failing open, now counted), then takes up to
/// `ARGV[2]` of what is left under `ARGV[1]`; returns what it took and what is left after.
const LEASE_SCRIPT: &str = r"
local admitted_meanwhile = tonumber(ARGV[4])
if admitted_meanwhile > 0 then
  redis.call('INCRBY', KEYS[1], admitted_meanwhile)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = tonumber(ARGV[1]) - used
if left <= 0 then return {0, 0} end
local take = math.min(tonumber(ARGV[2]), left)
redis.call('INCRBY', KEYS[1], take)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {take, left - take}
";

/// The script, hashed once (`EVALSHA`, loaded on first use).
static LEASE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(LEASE_SCRIPT));

/// A quota period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Period {
    /// A UTC day.
    Day,
    /// A UTC week from Monday.
    Week,
    /// A UTC calendar month.
    Month,
}

/// A quota rule: `limit` requests per `period`, `offset` of which count as used at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct QuotaRule {
    pub limit: u64,
    pub period: Period,
    pub offset: u64,
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotaDecision {
    /// Counted and admitted.
    Admitted,
    /// The quota is used up until the next period, `retry_after` from now.
    Exceeded { retry_after: Duration },
    /// The shared store is unreachable and the plan fails closed.
    Unavailable,
}

/// Where counts are kept.
enum Store {
    /// In this process only.
    Local,
    /// In Redis, shared by every replica.
    Redis(Box<RedisStore>),
}

/// How long after a Redis failure requests fail fast (the plan's fail mode, at once) before
/// Redis is tried again: an outage costs each request nothing, and recovery takes at most this.
pub(crate) const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The Redis side of [`Store`].
struct RedisStore {
    manager: tokio::sync::Mutex<Option<ConnectionManager>>,
    client: redis::Client,
    timeout: Duration,
    /// Until when Redis is considered down (the circuit is open).
    down_until: Mutex<Option<std::time::Instant>>,
    /// `causeway_proxy_quota_store_up`: 1 while Redis answers, 0 while the circuit is open.
    up: Gauge,
}

impl RedisStore {
    fn is_down(&self) -> bool {
        let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        down.is_some_and(|until| std::time::Instant::now() < until)
    }

    fn mark(&self, ok: bool) {
        self.up.set(i64::from(ok));
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        *down = if ok {
            None
        } else {
            Some(std::time::Instant::now() + REDIS_RETRY_AFTER)
        };
    }
}

/// One scope's lease in the current period.
#[derive(Debug, Default)]
struct Lease {
    period_start: u64,
    remaining: u64,
    /// The store said the quota is used up for this period.
    exhausted: bool,
}

/// The quota counters of one proxy (see the module docs).
pub(crate) struct Quotas {
    store: Store,
    /// Counts kept here: the whole store without Redis, the fallback when failing open.
    local: Mutex<HashMap<String, u64>>,
    leases: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Lease>>>>,
    /// Requests admitted while failing open, per counter, not yet added to Redis.
    meanwhile: Mutex<HashMap<String, u64>>,
    /// Redis errors and timeouts seen (`causeway_proxy_quota_store_errors`).
    pub(crate) store_errors: Counter,
    /// `store_errors` as of the last [`Quotas::store_health`].
    errors_reported: AtomicU64,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("shared", &self.is_shared())
            .finish_non_exhaustive()
    }
}

/// A Redis URL that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid redis url {url:?}: {source}")]
pub struct RedisUrlError {
    url: String,
    #[source]
    source: redis::RedisError,
}

impl Quotas {
    /// Counting in this process only.
    pub(crate) fn local() -> Self {
        Self::with_store(Store::Local)
    }

    /// Counting in Redis at `url` (`redis://127.0.0.1:6379/`). Connects lazily and again after
    /// failures, so a Redis that is down at start or goes away is no reason to stop serving.
    pub(crate) fn redis(url: &str, timeout: Duration) -> Result<Self, RedisUrlError> {
        let client = redis::Client::open(url).map_err(|source| RedisUrlError {
            url: url.to_string(),
            source,
        })?;
        Ok(Self::with_store(Store::Redis(Box::new(RedisStore {
            manager: tokio::sync::Mutex::new(None),
            client,
            timeout,
            down_until: Mutex::new(None),
            up: {
                let up = Gauge::default();
                up.set(1);
                up
            },
        }))))
    }

    fn with_store(store: Store) -> Self {
        Self {
            store,
            local: Mutex::new(HashMap::new()),
            leases: Mutex::new(HashMap::new()),
            meanwhile: Mutex::new(HashMap::new()),
            store_errors: Counter::default(),
            errors_reported: AtomicU64::new(0),
        }
    }

    /// Registers `causeway_proxy_quota_store_errors` and, with Redis,
    /// `causeway_proxy_quota_store_up`.
    pub(crate) fn register_metrics(&self, metrics: &mut crate::telemetry::metrics::Metrics) {
        metrics.register_counter(
            "causeway_proxy_quota_store_errors",
            "Redis operations of the quota and usage store that failed or timed out",
            self.store_errors.clone(),
        );
        if let Store::Redis(redis) = &self.store {
            metrics.register_gauge(
                "causeway_proxy_quota_store_up",
                "1 while the shared quota store (Redis) answers, 0 while it is considered down",
                redis.up.clone(),
            );
        }
    }

    /// `(shared, available)` for the usage report: whether counts are shared (Redis), and
    /// whether Redis answered a probe now with no error since the previous call.
    pub(crate) async fn store_health(&self) -> (bool, bool) {
        if !self.is_shared() {
            return (false, true);
        }
        let probe = self.redis_cmd(&mut redis::cmd("PING")).await.is_ok();
        let errors = self.store_errors.get();
        let before = self.errors_reported.swap(errors, Ordering::Relaxed);
        (true, probe && errors == before)
    }

    /// Whether counts are shared between replicas.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.store, Store::Redis(_))
    }

    /// Counts one request of `scope` (for example `plan/key-id`) against `rule`.
    pub(crate) async fn admit(
        &self,
        scope: &str,
        rule: QuotaRule,
        fail_open: bool,
        now: SystemTime,
    ) -> QuotaDecision {
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (start, next) = period_bounds(rule.period, now_secs);
        let exceeded = QuotaDecision::Exceeded {
            retry_after: Duration::from_secs(next - now_secs),
        };
        let lease = self.lease_slot(scope);
        let mut lease = lease.lock().await;
        if lease.period_start != start {
            *lease = Lease {
                period_start: start,
                ..Lease::default()
            };
        }
        if lease.remaining == 0 {
            if lease.exhausted {
                return exceeded;
            }
            let counter = format!("causeway:quota:{scope}:{start}");
            let ttl = next - start + SECONDS_PER_DAY;
            let limit = rule.limit.saturating_sub(rule.offset);
            match self.take(&counter, limit, ttl).await {
                Ok(0) => {
                    lease.exhausted = true;
                    return exceeded;
                }
                Ok(took) => lease.remaining = took,
                Err(()) if fail_open => {
                    // Admit from what was left at our last look at the store, counting here;
                    // the count is added to the store with the next lease. The lease stays
                    // empty so the store is asked again (after the circuit's pause).
                    return match self.admit_meanwhile(&counter, limit) {
                        false => exceeded,
                        true => QuotaDecision::Admitted,
                    };
                }
                Err(()) => return QuotaDecision::Unavailable,
            }
        }
        lease.remaining -= 1;
        QuotaDecision::Admitted
    }

    /// Gives every unspent lease of the current period back to the store (graceful stop).
    pub(crate) async fn release(&self) {
        let Store::Redis(_) = &self.store else {
            return;
        };
        let leases: Vec<(String, Arc<tokio::sync::Mutex<Lease>>)> = self
            .leases
            .lock()
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (scope, lease) in leases {
            let mut lease = lease.lock().await;
            if lease.remaining > 0 {
                let counter = format!("causeway:quota:{scope}:{}", lease.period_start);
                let give_back = lease.remaining;
                if self
                    .redis_cmd(redis::cmd("DECRBY").arg(&counter).arg(give_back))
                    .await
                    .is_ok()
                {
                    lease.remaining = 0;
                }
            }
        }
    }

    fn lease_slot(&self, scope: &str) -> Arc<tokio::sync::Mutex<Lease>> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        leases.entry(scope.to_string()).or_default().clone()
    }

    /// Leases a block from the store: a sixteenth of what is left, between 1 and [`MAX_LEASE`].
    async fn take(&self, counter: &str, limit: u64, ttl: u64) -> Result<u64, ()> {
        match &self.store {
            Store::Local => Ok(self.take_local(counter, limit, MAX_LEASE)),
            Store::Redis(_) => {
                let mut script = LEASE.prepare_invoke();
                // Ask for a block sized on what was left at our last look; the script never
                // grants past the limit whatever we ask.
                let want = self.block_hint(counter, limit);
                let meanwhile = self
                    .meanwhile
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(counter)
                    .copied()
                    .unwrap_or(0);
                script
                    .key(counter)
                    .arg(limit)
                    .arg(want)
                    .arg(ttl)
                    .arg(meanwhile);
                let (took, left): (u64, u64) = self.redis_invoke(script).await?;
                if meanwhile > 0 {
                    self.meanwhile
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(counter);
                }
                self.note_left(counter, left);
                Ok(took)
            }
        }
    }

    /// Failing open: admits one request if fewer than the quota left at the last look at the
    /// store (all of it, if never looked) were admitted this way since. One replica alone thus
    /// never exceeds the quota; N replicas exceed it by at most what the others spend of the
    /// same remainder: (N − 1) × what was left at their last look (at most the quota).
    fn admit_meanwhile(&self, counter: &str, limit: u64) -> bool {
        let left = {
            let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            local
                .get(&format!("left:{counter}"))
                .copied()
                .unwrap_or(limit)
        };
        let mut meanwhile = self.meanwhile.lock().unwrap_or_else(|p| p.into_inner());
        let admitted = meanwhile.entry(counter.to_string()).or_insert(0);
        if *admitted >= left {
            return false;
        }
        *admitted += 1;
        true
    }

    fn take_local(&self, counter: &str, limit: u64, want: u64) -> u64 {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let used = local.entry(counter.to_string()).or_insert(0);
        let left = limit.saturating_sub(*used);
        let took = want.min(left).min((left / 16).clamp(1, MAX_LEASE));
        *used += took;
        took
    }

    /// The block to ask for: small when little is left (see `note_left`), else a full one.
    fn block_hint(&self, counter: &str, limit: u64) -> u64 {
        let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let left = local
            .get(&format!("left:{counter}"))
            .copied()
            .unwrap_or(limit);
        (left / 16).clamp(1, MAX_LEASE)
    }

    fn note_left(&self, counter: &str, left: u64) {
        // What the store had left after our grant (other replicas only lower it since).
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local.insert(format!("left:{counter}"), left);
    }

    /// The connection, made on first use and again after a failure; `Err` at once while the
    /// circuit is open.
    async fn connection(&self, redis: &RedisStore) -> Result<ConnectionManager, ()> {
        if redis.is_down() {
            return Err(());
        }
        let mut slot = redis.manager.lock().await;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        // Another request may have found Redis down while this one waited for the lock.
        if redis.is_down() {
            return Err(());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(redis.timeout))
            .set_response_timeout(Some(redis.timeout))
            .set_number_of_retries(1);
        let connect = redis.client.get_connection_manager_with_config(config);
        match tokio::time::timeout(redis.timeout * 2, connect).await {
            Ok(Ok(m)) => {
                *slot = Some(m.clone());
                Ok(m)
            }
            _ => {
                self.store_errors.inc();
                redis.mark(false);
                Err(())
            }
        }
    }

    /// Runs one Redis operation within the timeout, opening the circuit on failure.
    async fn with_redis<T, F, Fut>(&self, op: F) -> Result<T, ()>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let Store::Redis(redis) = &self.store else {
            return Err(());
        };
        let conn = self.connection(redis).await?;
        match tokio::time::timeout(redis.timeout, op(conn)).await {
            Ok(Ok(v)) => {
                redis.mark(true);
                Ok(v)
            }
            _ => {
                self.store_errors.inc();
                redis.mark(false);
                Err(())
            }
        }
    }

    async fn redis_invoke<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, ()> {
        self.with_redis(|mut conn| async move { invocation.invoke_async::<T>(&mut conn).await })
            .await
    }

    async fn redis_cmd(&self, cmd: &mut redis::Cmd) -> Result<(), ()> {
        self.with_redis(|mut conn| async move { cmd.query_async::<()>(&mut conn).await })
            .await
    }
}

/// `(start, next start)` of the period holding `now`, in Unix seconds (UTC).
pub(crate) fn period_bounds(period: Period, now: u64) -> (u64, u64) {
    let day = now / SECONDS_PER_DAY;
    match period {
        Period::Day => (day * SECONDS_PER_DAY, (day + 1) * SECONDS_PER_DAY),
        Period::Week => {
            // 1970-01-01 was a Thursday: Monday-based weekday = (day + 3) % 7.
            let monday = day - (day + 3) % 7;
            (monday * SECONDS_PER_DAY, (monday + 7) * SECONDS_PER_DAY)
        }
        Period::Month => {
            let (y, m, _) = civil_from_days(day as i64);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let start = days_from_civil(y, m, 1) as u64 * SECONDS_PER_DAY;
            let next = days_from_civil(ny, nm, 1) as u64 * SECONDS_PER_DAY;
            (start, next)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_days_weeks_from_monday_and_calendar_months() {
        // 2026-11-21T08:00:00Z is a Saturday.
        let now = days_from_civil(2026, 11, 21) as u64 * SECONDS_PER_DAY + 8 * 3600;
        assert_eq!(
            civil_from_days((now / SECONDS_PER_DAY) as i64),
            (2026, 11, 21)
        );
        let (s, n) = period_bounds(Period::Day, now);
        assert_eq!((n - s, now - s), (SECONDS_PER_DAY, 8 * 3600));
        let (s, n) = period_bounds(Period::Week, now);
        assert_eq!(
            civil_from_days((s / SECONDS_PER_DAY) as i64),
            (2026, 11, 16),
            "Monday"
        );
        assert_eq!(n - s, 7 * SECONDS_PER_DAY);
        let (s, n) = period_bounds(Period::Month, now);
        assert_eq!(civil_from_days((s / SECONDS_PER_DAY) as i64), (2026, 11, 1));
        assert_eq!(civil_from_days((n / SECONDS_PER_DAY) as i64), (2026, 12, 1));
        let dec = days_from_civil(2026, 12, 15) as u64 * SECONDS_PER_DAY;
        let (_, n) = period_bounds(Period::Month, dec);
        assert_eq!(civil_from_days((n / SECONDS_PER_DAY) as i64), (2027, 1, 1));
        for day in [-1000i64, 0, 59, 365 * 30 + 7, 20_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[tokio::test]
    async fn a_local_quota_admits_exactly_its_limit_less_the_offset_then_says_when_it_resets() {
        let quotas = Quotas::local();
        let rule = QuotaRule {
            limit: 250,
            period: Period::Day,
            offset: 10,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10 * SECONDS_PER_DAY + 100);
        let mut admitted = 0;
        for _ in 0..1000 {
            if quotas.admit("plan/k1", rule, false, now).await == QuotaDecision::Admitted {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 240);
        let verdict = quotas.admit("plan/k1", rule, false, now).await;
        assert_eq!(
            verdict,
            QuotaDecision::Exceeded {
                retry_after: Duration::from_secs(SECONDS_PER_DAY - 100)
            }
        );
        // Another key, and the next day, start afresh.
        assert_eq!(
            quotas.admit("plan/k2", rule, false, now).await,
            QuotaDecision::Admitted
        );
        let tomorrow = now + Duration::from_secs(SECONDS_PER_DAY);
        assert_eq!(
            quotas.admit("plan/k1", rule, false, tomorrow).await,
            QuotaDecision::Admitted
        );
    }

    /// A throw-away `redis-server` on a free 127.0.0.1 port, with an append-only file so that
    /// a restart keeps its counts; killed on drop.
    struct RedisServer {
        child: std::process::Child,
        port: u16,
        dir: tempfile::TempDir,
    }

    impl RedisServer {
        fn start() -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            Self::start_on(port, tempfile::tempdir().unwrap())
        }

        fn start_on(port: u16, dir: tempfile::TempDir) -> Self {
            let child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--appendonly", "yes", "--appendfsync", "always"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is installed (scripts/test.sh installs it)");
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Self { child, port, dir }
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/", self.port)
        }

        /// Kills the server and starts it again on the same port and data directory.
        fn restart(mut self) -> Self {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let (port, dir) = (
                self.port,
                std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()),
            );
            drop(self);
            Self::start_on(port, dir)
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    const DAY: QuotaRule = QuotaRule {
        limit: 0,
        period: Period::Day,
        offset: 0,
    };

    async fn drive(
        replicas: &[Arc<Quotas>],
        scope: &str,
        rule: QuotaRule,
        attempts: usize,
    ) -> usize {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..attempts {
            let q = replicas[i % replicas.len()].clone();
            let scope = scope.to_string();
            tasks.spawn(async move { q.admit(&scope, rule, false, SystemTime::now()).await });
        }
        let mut admitted = 0;
        while let Some(verdict) = tasks.join_next().await {
            if verdict.expect("task") == QuotaDecision::Admitted {
                admitted += 1;
            }
        }
        admitted
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_replicas_sharing_redis_admit_exactly_the_quota_under_ten_times_the_demand() {
        let redis = RedisServer::start();
        let replicas: Vec<Arc<Quotas>> = (0..3)
            .map(|_| Arc::new(Quotas::redis(&redis.url(), DEFAULT_REDIS_TIMEOUT).unwrap()))
            .collect();
        for (run, limit) in [(1, 1000u64), (2, 337), (3, 50)] {
            let rule = QuotaRule { limit, ..DAY };
            let admitted = drive(
                &replicas,
                &format!("plan/run{run}"),
                rule,
                limit as usize * 10,
            )
            .await;
            assert_eq!(admitted as u64, limit, "run {run}");
        }
        assert_eq!(
            replicas.iter().map(|r| r.store_errors.get()).sum::<u64>(),
            0
        );
    }

    #[tokio::test]
    async fn leases_given_back_on_a_graceful_stop_are_spent_by_the_other_replicas() {
        let redis = RedisServer::start();
        let a = Arc::new(Quotas::redis(&redis.url(), DEFAULT_REDIS_TIMEOUT).unwrap());
        let b = Arc::new(Quotas::redis(&redis.url(), DEFAULT_REDIS_TIMEOUT).unwrap());
        let rule = QuotaRule { limit: 1000, ..DAY };
        // One request leases a block of 62 (1000 / 16) to replica a.
        assert_eq!(drive(std::slice::from_ref(&a), "plan/k", rule, 1).await, 1);
        a.release().await;
        assert_eq!(drive(&[b], "plan/k", rule, 2000).await, 999);
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_closed_or_open_as_the_plan_says() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let quotas = Quotas::redis(
            &format!("redis://127.0.0.1:{port}/"),
            Duration::from_millis(100),
        )
        .unwrap();
        let rule = QuotaRule { limit: 3, ..DAY };
        let now = SystemTime::now();
        assert_eq!(
            quotas.admit("p/k", rule, false, now).await,
            QuotaDecision::Unavailable
        );
        let open: Vec<QuotaDecision> = {
            let mut v = Vec::new();
            for _ in 0..5 {
                v.push(quotas.admit("p/k", rule, true, now).await);
            }
            v
        };
        let admitted = open
            .iter()
            .filter(|d| **d == QuotaDecision::Admitted)
            .count();
        assert_eq!(
            admitted, 3,
            "failing open still counts locally: at most one quota per replica"
        );
        // One attempt opened the circuit; the requests after it failed fast without trying.
        assert_eq!(quotas.store_errors.get(), 1);
        let started = std::time::Instant::now();
        for _ in 0..50 {
            assert_eq!(
                quotas.admit("p/k", rule, false, now).await,
                QuotaDecision::Unavailable
            );
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn failing_open_admits_only_what_was_left_and_redis_learns_of_it_when_it_returns() {
        let redis = RedisServer::start();
        let (port, url) = (redis.port, redis.url());
        let quotas = Quotas::redis(&url, Duration::from_millis(100)).unwrap();
        let rule = QuotaRule { limit: 100, ..DAY };
        let now = SystemTime::now();
        let mut admitted = 0;
        for _ in 0..60 {
            admitted +=
                usize::from(quotas.admit("p/k", rule, true, now).await == QuotaDecision::Admitted);
        }
        assert_eq!(admitted, 60);
        // Kill Redis (keeping its data directory) and keep asking, failing open.
        let mut redis = redis;
        let _ = redis.child.kill();
        let _ = redis.child.wait();
        for _ in 0..100 {
            admitted +=
                usize::from(quotas.admit("p/k", rule, true, now).await == QuotaDecision::Admitted);
        }
        assert_eq!(
            admitted, 100,
            "one replica failing open stays within the quota"
        );
        let dir = std::mem::replace(&mut redis.dir, tempfile::tempdir().unwrap());
        drop(redis);
        let _redis = RedisServer::start_on(port, dir);
        // Once Redis answers again (after the circuit's pause), the next lease adds what was
        // admitted meanwhile; nothing more is admitted.
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut used = 0;
        for _ in 0..50 {
            if quotas.admit("p/k", rule, true, now).await == QuotaDecision::Admitted {
                admitted += 1;
            }
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg("causeway:quota:*")
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if let Some(key) = keys.first() {
                    used = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut conn)
                        .await
                        .unwrap_or(0);
                }
            }
            if used >= 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!((admitted, used), (100, 100));
    }

    #[tokio::test]
    async fn counts_survive_a_redis_restart_and_the_proxy_recovers_without_restarting() {
        let redis = RedisServer::start();
        let quotas = Quotas::redis(&redis.url(), Duration::from_millis(200)).unwrap();
        let rule = QuotaRule { limit: 40, ..DAY };
        let now = SystemTime::now();
        let mut admitted = 0;
        for _ in 0..10 {
            admitted +=
                usize::from(quotas.admit("p/k", rule, false, now).await == QuotaDecision::Admitted);
        }
        assert_eq!(admitted, 10);
        let redis = redis.restart();
        // The first lease (of 2: 40/16) is spent; the next request must reach the restarted server.
        let mut after = Vec::new();
        for _ in 0..60 {
            after.push(quotas.admit("p/k", rule, false, now).await);
            if after.last() == Some(&QuotaDecision::Unavailable) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let admitted_after = after
            .iter()
            .filter(|d| **d == QuotaDecision::Admitted)
            .count();
        assert_eq!(
            admitted + admitted_after,
            40,
            "no over-admission across the restart: {after:?}"
        );
        assert!(after.contains(&QuotaDecision::Exceeded {
            retry_after: match after.iter().find_map(|d| match d {
                QuotaDecision::Exceeded { retry_after } => Some(*retry_after),
                _ => None,
            }) {
                Some(r) => r,
                None => Duration::ZERO,
            }
        }));
        drop(redis);
    }
}
