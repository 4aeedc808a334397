//! Throttling: token buckets at the gateway, stage and route levels (usage-plan and per-key
//! levels join them when API keys are resolved). The strictest level applies: a request takes a
//! token from every level that has a bucket, and if one level refuses, the tokens already taken
//! are given back, so a refusal at one level never costs another.
//!
//! Buckets outlive snapshots: they live in a [`Limiters`] registry keyed by their scope *and*
//! settings, held weakly. Building new tables asks the registry first, so a swap that keeps a
//! level's rate and burst keeps its bucket (and its count); a changed setting starts a fresh
//! bucket; a bucket no table holds any more is dropped with the last table that held it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

pub(crate) mod clients;
pub(crate) mod quota;
pub mod usage;

use causeway_snapshot::{QuotaPeriod, StageConfig, Throttle, UsagePlanConfig};

use self::quota::{Period, QuotaRule};

/// The wait reported by a bucket that never refills (rate 0) or refills too slowly for a
/// [`Duration`] to say when.
const NEVER_REFILLS: Duration = Duration::from_secs(3600);

/// A token bucket: `rate` tokens per second, at most `burst` stored. Starts full.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub(crate) fn new(throttle: Throttle, now: Instant) -> Self {
        let burst = f64::from(throttle.burst);
        Self {
            rate: throttle.rate.max(0.0),
            burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                updated: now,
            }),
        }
    }

    /// Takes one token, or says how long until one is available.
    pub(crate) fn try_take(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let elapsed = now.saturating_duration_since(state.updated).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate).min(self.burst);
        state.updated = now.max(state.updated);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            return Ok(());
        }
        if self.rate.is_nan() || self.rate <= 0.0 {
            // A zero rate never refills: say "a long time" rather than divide by zero.
            return Err(NEVER_REFILLS);
        }
        // A vanishing rate (say 1e-300 per second) makes a wait no Duration can hold.
        Err(Duration::try_from_secs_f64((1.0 - state.tokens) / self.rate).unwrap_or(NEVER_REFILLS))
    }

    /// `(burst, whole tokens left, seconds until full)` as of `now`, for `RateLimit-*` headers.
    pub(crate) fn peek(&self, now: Instant) -> (u64, u64, u64) {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let elapsed = now.saturating_duration_since(state.updated).as_secs_f64();
        let tokens = (state.tokens + elapsed * self.rate).min(self.burst);
        let to_full = if self.rate > 0.0 {
            ((self.burst - tokens) / self.rate).ceil()
        } else {
            0.0
        };
        (self.burst as u64, tokens.floor() as u64, to_full as u64)
    }

    /// Gives back a token taken by [`TokenBucket::try_take`] (another level refused).
    pub(crate) fn refund(&self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.tokens = (state.tokens + 1.0).min(self.burst);
    }
}

/// What identifies a bucket across snapshots: its scope and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BucketKey {
    scope: String,
    rate_bits: u64,
    burst: u32,
}

/// The registry of live buckets (see the module docs). A handle: clones share one registry
/// (the tables keep one to make keys' buckets on first use).
#[derive(Debug, Default, Clone)]
pub(crate) struct Limiters {
    buckets: Arc<Mutex<HashMap<BucketKey, Weak<TokenBucket>>>>,
}

impl Limiters {
    /// The bucket for this scope and settings: the live one if any, else a new, full one.
    pub(crate) fn bucket(&self, scope: String, throttle: Throttle) -> Arc<TokenBucket> {
        let key = BucketKey {
            scope,
            rate_bits: throttle.rate.to_bits(),
            burst: throttle.burst,
        };
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(live) = buckets.get(&key).and_then(Weak::upgrade) {
            return live;
        }
        let bucket = Arc::new(TokenBucket::new(throttle, Instant::now()));
        buckets.insert(key, Arc::downgrade(&bucket));
        bucket
    }

    /// Forgets buckets no table holds any more.
    pub(crate) fn prune(&self) {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets.retain(|_, weak| weak.strong_count() > 0);
    }

    /// Buckets alive now (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.buckets
            .lock()
            .map(|b| b.values().filter(|w| w.strong_count() > 0).count())
            .unwrap_or(0)
    }
}

/// The buckets of one stage: its own, and one per throttled route key (shared by the main and
/// canary deployments, since a route's limit is the stage's, whoever serves it).
#[derive(Debug, Default)]
pub(crate) struct StageThrottles {
    stage: Option<Arc<TokenBucket>>,
    routes: HashMap<String, Arc<TokenBucket>>,
}

impl StageThrottles {
    /// Resolves the stage's buckets from the registry.
    pub(crate) fn build(stage: &StageConfig, limiters: &Limiters) -> Self {
        let stage_bucket = stage
            .throttle
            .map(|t| limiters.bucket(format!("stage {}", stage.id), t));
        let mut routes = HashMap::new();
        let deployments =
            std::iter::once(&stage.main).chain(stage.canary.as_ref().map(|c| &c.deployment));
        for deployment in deployments {
            for route in &deployment.routes {
                if let Some(t) = route.throttle
                    && !routes.contains_key(&route.key)
                {
                    let scope = format!("route {} {}", stage.id, route.key);
                    routes.insert(route.key.clone(), limiters.bucket(scope, t));
                }
            }
        }
        Self {
            stage: stage_bucket,
            routes,
        }
    }

    /// Whether this stage throttles at all (saves the route lookup when it does not).
    fn is_empty(&self) -> bool {
        self.stage.is_none() && self.routes.is_empty()
    }
}

/// Gives back the tokens [`admit`] took (a later check refused the request).
pub(crate) fn refund(gateway: Option<&TokenBucket>, stage: &StageThrottles, route_key: &str) {
    let levels = [
        gateway,
        stage.stage.as_deref(),
        stage.routes.get(route_key).map(|b| &**b),
    ];
    for bucket in levels.into_iter().flatten() {
        bucket.refund();
    }
}

/// Takes a token at every level that has a bucket, from the widest to the narrowest; on the
/// first refusal gives the taken ones back and says how long until the refusing level admits.
pub(crate) fn admit(
    gateway: Option<&TokenBucket>,
    stage: &StageThrottles,
    route_key: &str,
    now: Instant,
) -> Result<(), Duration> {
    if gateway.is_none() && stage.is_empty() {
        return Ok(());
    }
    let levels = [
        gateway,
        stage.stage.as_deref(),
        stage.routes.get(route_key).map(|b| &**b),
    ];
    let mut taken: Vec<&TokenBucket> = Vec::with_capacity(levels.len());
    for bucket in levels.into_iter().flatten() {
        match bucket.try_take(now) {
            Ok(()) => taken.push(bucket),
            Err(wait) => {
                for t in taken {
                    t.refund();
                }
                return Err(wait);
            }
        }
    }
    Ok(())
}

/// The limits of one API key as the request path sees them: the plan's settings with the
/// key's own overrides, and the key's buckets. Made per request by [`PlanLimits::key`] from
/// shared parts; nothing in it is allocated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyLimits<'a> {
    /// `plan/key`: the quota scope.
    pub scope: &'a str,
    /// Plan id (`namespace/name`), for the usage report; shared by every key of the plan.
    pub plan: &'a Arc<str>,
    /// Key id, for the usage report.
    pub key: &'a Arc<str>,
    /// The key's quota, else the plan's.
    pub quota: Option<QuotaRule>,
    /// Send `RateLimit-*` headers (the plan's `rateLimitHeaders`).
    pub rate_limit_headers: bool,
    buckets: &'a KeyBuckets,
}

/// The buckets of one key: its own (the key's throttle, else the plan's: in API Gateway a
/// plan's throttle applies to each key separately) and one per throttled route of the plan's
/// stage bindings. Made on the key's first request, not when the tables are built: most of a
/// large plan's keys are idle, and an idle key needs no bucket (a new bucket starts full, as an
/// idle one would be).
#[derive(Debug)]
struct KeyBuckets {
    /// `plan/key`.
    scope: Box<str>,
    bucket: Option<Arc<TokenBucket>>,
    /// `(stage id, route key)` → bucket.
    routes: HashMap<(String, String), Arc<TokenBucket>>,
}

/// One key of a plan, as stored: 40 bytes plus its id, whatever the plan's size.
#[derive(Debug)]
struct KeyEntry {
    /// The key's own throttle and quota, when it has either (most keys use the plan's).
    own: Option<Box<(Option<Throttle>, Option<QuotaRule>)>>,
    /// Its buckets, once it has been used (see [`KeyBuckets`]).
    buckets: OnceLock<Box<KeyBuckets>>,
}

/// One usage plan's limits.
#[derive(Debug)]
pub(crate) struct PlanEntry {
    id: Arc<str>,
    /// Refuse (true) or admit counting locally (false) while Redis is unreachable.
    pub fail_closed: bool,
    throttle: Option<Throttle>,
    quota: Option<QuotaRule>,
    rate_limit_headers: bool,
    /// `(stage id, route key, throttle)` of the plan's per-route throttles.
    route_throttles: Vec<(String, String, Throttle)>,
    keys: HashMap<Arc<str>, KeyEntry>,
}

/// Every plan's limits, by plan id.
#[derive(Debug, Default)]
pub(crate) struct PlanLimits {
    plans: HashMap<String, PlanEntry>,
    /// Where keys' buckets are made on first use (so that the buckets of a key still live in an
    /// older table are shared, not doubled).
    limiters: Limiters,
}

fn quota_rule(q: causeway_snapshot::Quota) -> QuotaRule {
    QuotaRule {
        limit: q.limit,
        period: match q.period {
            QuotaPeriod::Day => Period::Day,
            QuotaPeriod::Week => Period::Week,
            QuotaPeriod::Month => Period::Month,
        },
        offset: q.offset,
    }
}

impl PlanLimits {
    /// Builds the plans' limits. No bucket is made here, except for the keys that had buckets in
    /// `previous` (the tables being replaced): theirs are resolved from the registry at once,
    /// so a swap keeps a used key's count while its settings hold.
    pub(crate) fn build(
        plans: &[UsagePlanConfig],
        limiters: &Limiters,
        previous: Option<&PlanLimits>,
    ) -> Self {
        let mut out = HashMap::with_capacity(plans.len());
        for plan in plans {
            let mut keys = HashMap::with_capacity(plan.keys.len());
            for key in plan.keys.iter().filter(|k| k.enabled) {
                let own = (key.throttle.is_some() || key.quota.is_some())
                    .then(|| Box::new((key.throttle, key.quota.map(quota_rule))));
                keys.insert(
                    Arc::from(key.id.as_str()),
                    KeyEntry {
                        own,
                        buckets: OnceLock::new(),
                    },
                );
            }
            let route_throttles = plan
                .stages
                .iter()
                .flat_map(|stage| {
                    stage
                        .route_throttles
                        .iter()
                        .map(|(route, t)| (stage.stage.clone(), route.clone(), *t))
                })
                .collect();
            let entry = PlanEntry {
                id: Arc::from(plan.id.as_str()),
                fail_closed: plan.fail_closed,
                throttle: plan.throttle,
                quota: plan.quota.map(quota_rule),
                rate_limit_headers: plan.rate_limit_headers,
                route_throttles,
                keys,
            };
            out.insert(plan.id.clone(), entry);
        }
        let built = Self {
            plans: out,
            limiters: limiters.clone(),
        };
        if let Some(previous) = previous {
            for (plan_id, old) in &previous.plans {
                let used = old.keys.iter().filter(|(_, k)| k.buckets.get().is_some());
                for (key_id, _) in used {
                    // Resolves the key's buckets from the registry, where the old ones live.
                    let _ = built.key(plan_id, key_id);
                }
            }
        }
        built
    }

    /// The limits of a key of a plan, and the plan's fail mode. The key's first call makes its
    /// buckets (from the registry: the live ones if an older table has them).
    pub(crate) fn key(&self, plan: &str, key: &str) -> Option<(KeyLimits<'_>, bool)> {
        let entry = self.plans.get(plan)?;
        let (key_id, found) = entry.keys.get_key_value(key)?;
        let (own_throttle, own_quota) = found.own.as_deref().copied().unwrap_or((None, None));
        let buckets = found.buckets.get_or_init(|| {
            let scope = format!("{}/{}", entry.id, key_id);
            let bucket = own_throttle
                .or(entry.throttle)
                .map(|t| self.limiters.bucket(format!("key {scope}"), t));
            let routes = entry
                .route_throttles
                .iter()
                .map(|(stage, route, t)| {
                    let bucket_scope = format!("key-route {scope} {stage} {route}");
                    (
                        (stage.clone(), route.clone()),
                        self.limiters.bucket(bucket_scope, *t),
                    )
                })
                .collect();
            Box::new(KeyBuckets {
                scope: scope.into_boxed_str(),
                bucket,
                routes,
            })
        });
        let limits = KeyLimits {
            scope: &buckets.scope,
            plan: &entry.id,
            key: key_id,
            quota: own_quota.or(entry.quota),
            rate_limit_headers: entry.rate_limit_headers,
            buckets,
        };
        Some((limits, entry.fail_closed))
    }

    /// Keys whose buckets exist (for tests).
    #[cfg(test)]
    fn used_keys(&self) -> usize {
        self.plans
            .values()
            .flat_map(|p| p.keys.values())
            .filter(|k| k.buckets.get().is_some())
            .count()
    }
}

impl KeyLimits<'_> {
    /// `(limit, remaining, reset seconds)` of the key's bucket, when the plan sends
    /// `RateLimit-*` headers and the key is throttled.
    pub(crate) fn rate_limit(&self, now: Instant) -> Option<(u64, u64, u64)> {
        if !self.rate_limit_headers {
            return None;
        }
        self.buckets.bucket.as_ref().map(|b| b.peek(now))
    }

    /// Gives back the tokens [`KeyLimits::admit`] took.
    pub(crate) fn refund(&self, stage: &str, route: &str) {
        let route_bucket = self.route_bucket(stage, route);
        for bucket in [self.buckets.bucket.as_deref(), route_bucket]
            .into_iter()
            .flatten()
        {
            bucket.refund();
        }
    }

    fn route_bucket(&self, stage: &str, route: &str) -> Option<&TokenBucket> {
        if self.buckets.routes.is_empty() {
            return None;
        }
        self.buckets
            .routes
            .get(&(stage.to_string(), route.to_string()))
            .map(|b| &**b)
    }

    /// Takes a token from the key's bucket and its bucket for this route, refunding on refusal.
    pub(crate) fn admit(&self, stage: &str, route: &str, now: Instant) -> Result<(), Duration> {
        let levels = [
            self.buckets.bucket.as_deref(),
            self.route_bucket(stage, route),
        ];
        let mut taken: Vec<&TokenBucket> = Vec::with_capacity(2);
        for bucket in levels.into_iter().flatten() {
            match bucket.try_take(now) {
                Ok(()) => taken.push(bucket),
                Err(wait) => {
                    for t in taken {
                        t.refund();
                    }
                    return Err(wait);
                }
            }
        }
        Ok(())
    }
}

/// `Retry-After` in whole seconds, at least 1 (a client told 0 would retry at once).
pub(crate) fn retry_after_seconds(wait: Duration) -> u64 {
    // Whole seconds rounded up, in integers: through `f64` a long wait loses precision.
    let up = u64::from(wait.subsec_nanos() > 0);
    wait.as_secs().saturating_add(up).max(1)
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(rate: f64, burst: u32) -> Throttle {
        Throttle { rate, burst }
    }

    /// Closed-loop load at `factor` × the rate for `secs` of simulated time, one attempt every
    /// `1 / (rate × factor)` seconds; returns how many were admitted.
    fn admitted(rate: f64, burst: u32, factor: f64, secs: f64) -> u64 {
        let start = Instant::now();
        let bucket = TokenBucket::new(throttle(rate, burst), start);
        let attempts = (rate * factor * secs) as u64;
        let step = 1.0 / (rate * factor);
        (0..attempts)
            .filter(|i| {
                let now = start + Duration::from_secs_f64(*i as f64 * step);
                bucket.try_take(now).is_ok()
            })
            .count() as u64
    }

    #[test]
    fn admitted_requests_stay_within_rate_times_time_plus_burst_at_every_rate() {
        for rate in [10.0, 100.0, 1_000.0, 5_000.0] {
            let burst = (rate / 2.0) as u32;
            let secs = 30.0;
            let got = admitted(rate, burst, 3.0, secs) as f64;
            let bound = rate * secs + f64::from(burst);
            let ratio = got / bound;
            assert!(
                (0.98..=1.0).contains(&ratio),
                "rate {rate}: admitted {got} of bound {bound} ({ratio:.4})"
            );
        }
    }

    #[test]
    fn a_refused_request_says_how_long_until_a_token_and_retry_after_rounds_up() {
        let start = Instant::now();
        let bucket = TokenBucket::new(throttle(2.0, 1), start);
        assert!(bucket.try_take(start).is_ok());
        let wait = bucket.try_take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert_eq!(retry_after_seconds(wait), 1);
        assert!(bucket.try_take(start + Duration::from_millis(500)).is_ok());
        let never = TokenBucket::new(throttle(0.0, 0), start);
        assert_eq!(
            retry_after_seconds(never.try_take(start).unwrap_err()),
            3600
        );
    }

    #[test]
    fn a_refusal_at_a_narrow_level_gives_back_the_wider_levels_token() {
        let limiters = Limiters::default();
        let now = Instant::now();
        let gateway = limiters.bucket("gateway".into(), throttle(0.0, 5));
        let stage = StageThrottles {
            stage: None,
            routes: HashMap::from([(
                "GET /x".to_string(),
                limiters.bucket("r".into(), throttle(0.0, 1)),
            )]),
        };
        assert!(admit(Some(&gateway), &stage, "GET /x", now).is_ok());
        for _ in 0..3 {
            assert!(admit(Some(&gateway), &stage, "GET /x", now).is_err());
        }
        // The gateway spent one token (the admitted request), not four.
        for _ in 0..4 {
            assert!(admit(Some(&gateway), &StageThrottles::default(), "GET /y", now).is_ok());
        }
        assert!(admit(Some(&gateway), &StageThrottles::default(), "GET /y", now).is_err());
    }

    fn plan(keys: usize, key_throttle: Throttle) -> UsagePlanConfig {
        use causeway_snapshot::{ApiKeyConfig, PlanStage};
        UsagePlanConfig {
            id: "default/gold".into(),
            stages: vec![PlanStage {
                stage: "default/pets/prod".into(),
                route_throttles: [("GET /slow".to_string(), throttle(0.0, 1))].into(),
            }],
            throttle: Some(key_throttle),
            quota: Some(causeway_snapshot::Quota {
                limit: 100,
                period: QuotaPeriod::Day,
                offset: 0,
            }),
            fail_closed: true,
            rate_limit_headers: true,
            keys: (0..keys)
                .map(|i| ApiKeyConfig {
                    id: format!("k{i}"),
                    sha256: String::new(),
                    enabled: true,
                    throttle: None,
                    quota: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_keys_buckets_are_made_on_its_first_request_and_enforce_the_plans_limits() {
        let limiters = Limiters::default();
        let now = Instant::now();
        let plans = PlanLimits::build(&[plan(1_000, throttle(0.0, 2))], &limiters, None);
        assert_eq!(plans.used_keys(), 0, "building makes no bucket");
        assert_eq!(limiters.live(), 0);

        let (k1, fail_closed) = plans.key("default/gold", "k1").expect("k1");
        assert!(fail_closed);
        assert_eq!(k1.scope, "default/gold/k1");
        assert_eq!(&**k1.plan, "default/gold");
        assert_eq!(&**k1.key, "k1");
        assert_eq!(k1.quota.map(|q| q.limit), Some(100));
        assert_eq!(k1.rate_limit(now), Some((2, 2, 0)));
        assert_eq!(plans.used_keys(), 1);
        assert_eq!(limiters.live(), 2, "the key's bucket and its route bucket");

        // The plan's burst of 2 applies to the key.
        assert!(k1.admit("default/pets/prod", "GET /x", now).is_ok());
        assert!(k1.admit("default/pets/prod", "GET /x", now).is_ok());
        assert!(k1.admit("default/pets/prod", "GET /x", now).is_err());
        // A later lookup of the same key finds the same, spent bucket.
        let (again, _) = plans.key("default/gold", "k1").expect("k1");
        assert!(again.admit("default/pets/prod", "GET /x", now).is_err());
        // Another key has its own full bucket; the route's own limit (burst 1) applies too, and a
        // refusal there gives the key's token back.
        let (k2, _) = plans.key("default/gold", "k2").expect("k2");
        assert!(k2.admit("default/pets/prod", "GET /slow", now).is_ok());
        assert!(k2.admit("default/pets/prod", "GET /slow", now).is_err());
        assert_eq!(k2.rate_limit(now), Some((2, 1, 0)));
        assert!(plans.key("default/gold", "nobody").is_none());
        assert!(plans.key("default/silver", "k1").is_none());
    }

    #[test]
    fn a_keys_own_throttle_and_quota_replace_the_plans() {
        let limiters = Limiters::default();
        let now = Instant::now();
        let mut config = plan(2, throttle(0.0, 5));
        config.keys[0].throttle = Some(throttle(0.0, 1));
        config.keys[0].quota = Some(causeway_snapshot::Quota {
            limit: 7,
            period: QuotaPeriod::Week,
            offset: 0,
        });
        let plans = PlanLimits::build(&[config], &limiters, None);
        let (own, _) = plans.key("default/gold", "k0").expect("k0");
        assert_eq!(
            own.quota.map(|q| (q.limit, q.period)),
            Some((7, Period::Week))
        );
        assert!(own.admit("default/pets/prod", "GET /x", now).is_ok());
        assert!(own.admit("default/pets/prod", "GET /x", now).is_err());
        let (plain, _) = plans.key("default/gold", "k1").expect("k1");
        assert_eq!(plain.quota.map(|q| q.limit), Some(100));
        assert_eq!(plain.rate_limit(now), Some((5, 5, 0)));
    }

    #[test]
    fn a_used_keys_buckets_survive_a_swap_while_idle_keys_stay_without_buckets() {
        let limiters = Limiters::default();
        let now = Instant::now();
        let first = PlanLimits::build(&[plan(1_000, throttle(0.0, 2))], &limiters, None);
        let (k1, _) = first.key("default/gold", "k1").expect("k1");
        assert!(k1.admit("default/pets/prod", "GET /x", now).is_ok());
        assert!(k1.admit("default/pets/prod", "GET /x", now).is_ok());

        let second = PlanLimits::build(&[plan(1_000, throttle(0.0, 2))], &limiters, Some(&first));
        assert_eq!(
            second.used_keys(),
            1,
            "only the used key's buckets are carried"
        );
        drop(first);
        limiters.prune();
        let (k1, _) = second.key("default/gold", "k1").expect("k1");
        assert!(
            k1.admit("default/pets/prod", "GET /x", now).is_err(),
            "the swap kept the spent bucket"
        );

        // Changed settings start a fresh bucket.
        let third = PlanLimits::build(&[plan(1_000, throttle(0.0, 3))], &limiters, Some(&second));
        let (k1, _) = third.key("default/gold", "k1").expect("k1");
        assert!(k1.admit("default/pets/prod", "GET /x", now).is_ok());
    }

    #[test]
    fn the_registry_keeps_a_bucket_while_its_settings_are_unchanged_and_drops_it_when_unheld() {
        let limiters = Limiters::default();
        let now = Instant::now();
        let first = limiters.bucket("stage a".into(), throttle(0.0, 2));
        assert!(first.try_take(now).is_ok());
        let same = limiters.bucket("stage a".into(), throttle(0.0, 2));
        assert!(
            Arc::ptr_eq(&first, &same),
            "unchanged settings keep the bucket and its count"
        );
        assert!(same.try_take(now).is_ok());
        assert!(
            same.try_take(now).is_err(),
            "the two takes above shared one bucket"
        );
        let changed = limiters.bucket("stage a".into(), throttle(0.0, 3));
        assert!(!Arc::ptr_eq(&first, &changed));
        drop((first, same, changed));
        limiters.prune();
        assert_eq!(limiters.live(), 0);
    }
}
