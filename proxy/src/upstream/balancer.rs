//! Load balancing and passive outlier ejection over a backend's endpoints.
//!
//! - **Policies** (per backend, from the snapshot): round robin, or power-of-two-choices
//!   least-request (two random eligible endpoints, the one with fewer requests in flight wins).
//! - **Outlier ejection**: `consecutive_failures` connect failures or 5xx answers in a row
//!   eject an endpoint for `base_ejection × 2^(n-1)` (n = times ejected in a row, capped at
//!   [`MAX_EJECTION_MULTIPLIER`]). A success resets the streak. The last healthy endpoint is
//!   never ejected, and when every endpoint is ejected anyway (they failed together), they are
//!   all eligible again: an outage is better reported by the backend than hidden by the proxy.
//! - Endpoint state lives in [`EndpointState`], carried over across snapshot swaps for the same
//!   backend id and address, so a pod roll elsewhere does not forgive a failing endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use causeway_snapshot::LoadBalancing;

/// Largest multiplier of the base ejection time.
pub const MAX_EJECTION_MULTIPLIER: u32 = 10;

/// Outlier-ejection settings (process-wide, from `ProxyConfig`).
#[derive(Clone, Copy, Debug)]
pub struct OutlierSettings {
    /// Failures in a row that eject an endpoint; 0 turns ejection off.
    pub consecutive_failures: u32,
    /// First ejection time.
    pub base_ejection: Duration,
}

/// Mutable state of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct EndpointState {
    inflight: AtomicU32,
    failures: AtomicU32,
    times_ejected: AtomicU32,
    /// Milliseconds since [`Clock`] start until which the endpoint is ejected; 0: not ejected.
    ejected_until_ms: AtomicU64,
}

/// One endpoint address and its state.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub address: String,
    pub state: Arc<EndpointState>,
}

/// Monotonic milliseconds since the first use (cheap to compare atomically).
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The endpoints of a backend and how to choose among them.
#[derive(Debug)]
pub(crate) struct Balancer {
    pub endpoints: Vec<Endpoint>,
    policy: LoadBalancing,
    cursor: AtomicUsize,
}

/// Decrements the in-flight count of an endpoint when the exchange ends.
pub(crate) struct InflightGuard(Arc<EndpointState>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balancer {
    pub fn new(endpoints: Vec<Endpoint>, policy: LoadBalancing) -> Self {
        Self {
            endpoints,
            policy,
            cursor: AtomicUsize::new(0),
        }
    }

    /// Whether endpoint `i` may be chosen now.
    fn eligible(&self, i: usize, now: u64, tried: u64) -> bool {
        tried & (1 << (i % 64)) == 0
            && self.endpoints[i]
                .state
                .ejected_until_ms
                .load(Ordering::Relaxed)
                <= now
    }

    /// Chooses an endpoint not in `tried` (a bit set of indexes): by policy among the
    /// non-ejected ones, or among all untried ones when every one is ejected.
    pub fn pick(&self, tried: u64) -> Option<usize> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let now = now_ms();
        let chosen = match self.policy {
            LoadBalancing::RoundRobin => self.round_robin(|i| self.eligible(i, now, tried)),
            LoadBalancing::LeastRequest => self.least_request(now, tried),
        };
        chosen.or_else(|| self.round_robin(|i| tried & (1 << (i % 64)) == 0))
    }

    fn round_robin(&self, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.endpoints.len();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find(|&i| ok(i))
    }

    fn least_request(&self, now: u64, tried: u64) -> Option<usize> {
        let n = self.endpoints.len();
        if n == 1 {
            return self.eligible(0, now, tried).then_some(0);
        }
        let a = rand::random_range(0..n);
        let b = (a + 1 + rand::random_range(0..n - 1)) % n;
        let load = |i: usize| self.endpoints[i].state.inflight.load(Ordering::Relaxed);
        match (self.eligible(a, now, tried), self.eligible(b, now, tried)) {
            (true, true) => Some(if load(b) < load(a) { b } else { a }),
            (true, false) => Some(a),
            (false, true) => Some(b),
            (false, false) => self.round_robin(|i| self.eligible(i, now, tried)),
        }
    }

    /// Marks a request in flight on endpoint `i` until the guard drops.
    pub fn start(&self, i: usize) -> InflightGuard {
        let state = Arc::clone(&self.endpoints[i].state);
        state.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(state)
    }

    /// Records a success: the failure streak ends.
    pub fn succeeded(&self, i: usize) {
        let state = &self.endpoints[i].state;
        if state.failures.load(Ordering::Relaxed) != 0 {
            state.failures.store(0, Ordering::Relaxed);
            state.times_ejected.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failure (connect error or 5xx); returns whether the endpoint was ejected.
    pub fn failed(&self, i: usize, settings: OutlierSettings) -> bool {
        if settings.consecutive_failures == 0 {
            return false;
        }
        let state = &self.endpoints[i].state;
        let failures = state.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < settings.consecutive_failures {
            return false;
        }
        let now = now_ms();
        let healthy_others = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|(j, e)| *j != i && e.state.ejected_until_ms.load(Ordering::Relaxed) <= now)
            .count();
        if healthy_others == 0 {
            return false;
        }
        let times = state.times_ejected.fetch_add(1, Ordering::Relaxed) + 1;
        let multiplier = 1u32
            .checked_shl(times - 1)
            .unwrap_or(u32::MAX)
            .min(MAX_EJECTION_MULTIPLIER);
        let ejection = settings.base_ejection * multiplier;
        let until = now + u64::try_from(ejection.as_millis()).unwrap_or(u64::MAX / 2);
        state.ejected_until_ms.store(until, Ordering::Relaxed);
        state.failures.store(0, Ordering::Relaxed);
        tracing::info!(
            endpoint = %self.endpoints[i].address,
            ejection_ms = ejection.as_millis() as u64,
            "endpoint ejected after consecutive failures"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(n: usize, policy: LoadBalancing) -> Balancer {
        let endpoints = (0..n)
            .map(|i| Endpoint {
                address: format!("10.0.0.{i}:80"),
                state: Arc::default(),
            })
            .collect();
        Balancer::new(endpoints, policy)
    }

    const SETTINGS: OutlierSettings = OutlierSettings {
        consecutive_failures: 2,
        base_ejection: Duration::from_secs(60),
    };

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let b = balancer(3, LoadBalancing::RoundRobin);
        let picks: Vec<_> = (0..6).filter_map(|_| b.pick(0)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_request_prefers_the_endpoint_with_fewer_requests_in_flight() {
        let b = balancer(2, LoadBalancing::LeastRequest);
        let _busy: Vec<_> = (0..5).map(|_| b.start(0)).collect();
        assert!((0..20).all(|_| b.pick(0) == Some(1)));
    }

    #[test]
    fn an_endpoint_failing_in_a_row_is_ejected_but_never_the_last_healthy_one() {
        let b = balancer(2, LoadBalancing::RoundRobin);
        assert!(!b.failed(0, SETTINGS));
        assert!(b.failed(0, SETTINGS), "second failure in a row ejects");
        assert!((0..10).all(|_| b.pick(0) == Some(1)));
        assert!(!b.failed(1, SETTINGS));
        assert!(!b.failed(1, SETTINGS), "the last healthy endpoint stays");
        assert_eq!(b.pick(0), Some(1));
    }

    #[test]
    fn a_success_ends_the_failure_streak() {
        let b = balancer(2, LoadBalancing::RoundRobin);
        assert!(!b.failed(0, SETTINGS));
        b.succeeded(0);
        assert!(!b.failed(0, SETTINGS), "the streak started over");
    }

    #[test]
    fn endpoints_already_tried_are_skipped_and_none_is_left_at_the_end() {
        let b = balancer(2, LoadBalancing::LeastRequest);
        assert_eq!(b.pick(0b01), Some(1));
        assert_eq!(b.pick(0b11), None);
    }
}
