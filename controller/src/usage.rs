//! The usage rollup: what the proxies report (`POST /v1/usage`, about once a minute each, see
//! [`crate::push`]) added up per plan into the `counting`, `usage` and `QuotaStoreAvailable`
//! parts of `UsagePlan.status`.
//!
//! Pure: the reports and the day come in as arguments. Each report holds one proxy's counts of
//! the current UTC day (totals, not deltas), so the rollup is the sum of the latest report of
//! every proxy that reported today — a lost or repeated report changes nothing. The controller
//! recomputes it every [`DEFAULT_ROLLUP_EVERY`], and the status writer patches a plan only when
//! its part changed: at most one status write per plan per interval, never one per request.
//!
//! Limits of the sum: a proxy that restarts starts counting again from zero (its earlier counts
//! of the day are lost to the rollup, but not to Redis, where `causeway usage` reads them); a
//! proxy that disconnects keeps its last report in the sum until the day ends.

use std::collections::BTreeMap;
use std::time::Duration;

use causeway_crds::Condition;
use causeway_crds::usage_plan::{FailMode, KeyUsage, UsageSummary};
use causeway_snapshot::push::UsageReport;

/// How often the controller recomputes the rollup (and so at most how often a plan's status
/// is written for usage).
pub const DEFAULT_ROLLUP_EVERY: Duration = Duration::from_secs(60);
/// Keys listed in `status.usage.topKeys`.
pub const TOP_KEYS: usize = 10;
/// Reports kept at most (one per proxy id; the oldest day goes first).
pub const MAX_REPORTS: usize = 4096;

/// The condition type saying whether the shared counter store answers the proxies.
pub const QUOTA_STORE_AVAILABLE: &str = "QuotaStoreAvailable";

/// Reasons of [`QUOTA_STORE_AVAILABLE`].
pub mod reasons {
    /// Every reporting proxy reaches Redis.
    pub const STORE_AVAILABLE: &str = "StoreAvailable";
    /// Some proxy cannot reach Redis; the plan fails closed (requests needing the quota get 503).
    pub const STORE_UNAVAILABLE_FAIL_CLOSED: &str = "StoreUnavailableFailClosed";
    /// Some proxy cannot reach Redis; the plan fails open (counted per replica meanwhile).
    pub const STORE_UNAVAILABLE_FAIL_OPEN: &str = "StoreUnavailableFailOpen";
}

/// `status.counting` values.
pub mod counting {
    /// Every reporting proxy counts quotas in Redis.
    pub const SHARED: &str = "Shared";
    /// At least one reporting proxy has no Redis: each replica counts alone.
    pub const PER_REPLICA: &str = "PerReplica";
}

/// One plan's rolled-up usage of one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRollup {
    /// The UTC day (days since 1970-01-01).
    pub day: u64,
    /// Proxies that reported today.
    pub proxies: u32,
    /// Of those, how many count in Redis.
    pub shared: u32,
    /// Proxies with Redis configured that reported it unavailable, by id.
    pub store_unavailable: Vec<String>,
    /// Requests admitted, every key, every proxy.
    pub admitted: u64,
    /// Requests refused, every key, every proxy.
    pub throttled: u64,
    /// The busiest keys (by admitted, then throttled), at most [`TOP_KEYS`].
    pub top_keys: Vec<KeyUsage>,
}

/// What the status writer adds to one UsagePlan's status.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanUsageStatus {
    /// `Shared` or `PerReplica`.
    pub counting: &'static str,
    /// Totals and top keys of the day.
    pub usage: UsageSummary,
    /// `QuotaStoreAvailable`, when the proxies count in Redis (without `lastTransitionTime`).
    pub condition: Option<Condition>,
}

/// Adds up the reports of `day` for each plan of `plans` (plan ids, `namespace/name`). Reports
/// of other days are ignored. With no report of `day` at all the result is empty: nothing is
/// known yet, and the statuses keep what they say.
pub fn rollup<'a>(
    reports: impl IntoIterator<Item = &'a UsageReport>,
    plans: &[String],
    day: u64,
) -> BTreeMap<String, PlanRollup> {
    let today: Vec<&UsageReport> = reports.into_iter().filter(|r| r.day == day).collect();
    if today.is_empty() {
        return BTreeMap::new();
    }
    let proxies = u32::try_from(today.len()).unwrap_or(u32::MAX);
    let shared = u32::try_from(today.iter().filter(|r| r.shared).count()).unwrap_or(u32::MAX);
    let mut store_unavailable: Vec<String> = today
        .iter()
        .filter(|r| r.shared && !r.store_available)
        .map(|r| r.proxy_id.clone())
        .collect();
    store_unavailable.sort();
    let mut out = BTreeMap::new();
    for plan in plans {
        let mut rollup = PlanRollup {
            day,
            proxies,
            shared,
            store_unavailable: store_unavailable.clone(),
            ..PlanRollup::default()
        };
        let mut keys: BTreeMap<&str, KeyUsage> = BTreeMap::new();
        for usage in today
            .iter()
            .flat_map(|r| &r.plans)
            .filter(|p| &p.plan == plan)
        {
            rollup.admitted += usage.admitted;
            rollup.throttled += usage.throttled;
            for k in &usage.keys {
                let entry = keys.entry(&k.id).or_insert_with(|| KeyUsage {
                    id: k.id.clone(),
                    ..KeyUsage::default()
                });
                entry.admitted += k.admitted;
                entry.throttled += k.throttled;
            }
        }
        let mut keys: Vec<KeyUsage> = keys.into_values().collect();
        keys.sort_by(|a, b| {
            b.admitted
                .cmp(&a.admitted)
                .then(b.throttled.cmp(&a.throttled))
                .then_with(|| a.id.cmp(&b.id))
        });
        keys.truncate(TOP_KEYS);
        rollup.top_keys = keys;
        out.insert(plan.clone(), rollup);
    }
    out
}

/// The status parts of a plan from its rollup and its fail mode (`None`: the default,
/// `FAIL_CLOSED`).
pub fn plan_status(rollup: &PlanRollup, fail_mode: Option<FailMode>) -> PlanUsageStatus {
    let counting = if rollup.shared == rollup.proxies {
        counting::SHARED
    } else {
        counting::PER_REPLICA
    };
    let condition = (rollup.shared > 0).then(|| {
        let (status, reason, message) = if rollup.store_unavailable.is_empty() {
            (
                "True",
                reasons::STORE_AVAILABLE,
                format!("all {} proxies counting in Redis reach it", rollup.shared),
            )
        } else {
            let who = format!(
                "{} of {} proxies cannot reach Redis ({})",
                rollup.store_unavailable.len(),
                rollup.shared,
                rollup.store_unavailable.join(", ")
            );
            match fail_mode.unwrap_or(FailMode::FailClosed) {
                FailMode::FailClosed => (
                    "False",
                    reasons::STORE_UNAVAILABLE_FAIL_CLOSED,
                    format!(
                        "{who}; the plan fails closed: their requests that need a new quota lease are refused (503)"
                    ),
                ),
                FailMode::FailOpen => (
                    "False",
                    reasons::STORE_UNAVAILABLE_FAIL_OPEN,
                    format!(
                        "{who}; the plan fails open: they admit requests, counting per replica until Redis answers"
                    ),
                ),
            }
        };
        Condition {
            type_: QUOTA_STORE_AVAILABLE.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: None,
            last_transition_time: None,
        }
    });
    PlanUsageStatus {
        counting,
        usage: UsageSummary {
            period_start: day_start(rollup.day),
            admitted: rollup.admitted,
            throttled: rollup.throttled,
            top_keys: rollup.top_keys.clone(),
        },
        condition,
    }
}

/// Keeps the newest report of each proxy, bounded by [`MAX_REPORTS`] (older days go first).
pub fn keep(reports: &mut BTreeMap<String, UsageReport>, report: UsageReport) {
    if reports.len() >= MAX_REPORTS && !reports.contains_key(&report.proxy_id) {
        let oldest = reports
            .iter()
            .min_by_key(|(_, r)| r.day)
            .map(|(id, _)| id.clone());
        if let Some(oldest) = oldest {
            reports.remove(&oldest);
        }
    }
    reports.insert(report.proxy_id.clone(), report);
}

/// The current UTC day number.
pub fn today() -> u64 {
    u64::try_from(k8s_openapi::jiff::Timestamp::now().as_second() / 86_400).unwrap_or(0)
}

/// RFC 3339 start of a UTC day.
pub fn day_start(day: u64) -> String {
    i64::try_from(day * 86_400)
        .ok()
        .and_then(|s| k8s_openapi::jiff::Timestamp::from_second(s).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_snapshot::push::{KeyCount, PlanUsage};

    const DAY: u64 = 20_413; // 2025-11-21

    fn report(proxy: &str, day: u64, shared: bool, available: bool) -> UsageReport {
        UsageReport {
            proxy_id: proxy.into(),
            day,
            shared,
            store_available: available,
            plans: vec![],
        }
    }

    fn with_keys(mut r: UsageReport, plan: &str, keys: &[(&str, u64, u64)]) -> UsageReport {
        r.plans.push(PlanUsage {
            plan: plan.into(),
            admitted: keys.iter().map(|k| k.1).sum(),
            throttled: keys.iter().map(|k| k.2).sum(),
            keys: keys
                .iter()
                .map(|(id, a, t)| KeyCount {
                    id: (*id).into(),
                    admitted: *a,
                    throttled: *t,
                })
                .collect(),
        });
        r
    }

    #[test]
    fn reports_of_every_proxy_add_up_per_plan_and_key_and_old_days_do_not_count() {
        let a = with_keys(
            report("a", DAY, true, true),
            "ns/gold",
            &[("alice", 10, 1), ("bob", 3, 0)],
        );
        let b = with_keys(
            report("b", DAY, true, true),
            "ns/gold",
            &[("alice", 5, 2), ("carol", 20, 0)],
        );
        let yesterday = with_keys(
            report("c", DAY - 1, true, true),
            "ns/gold",
            &[("alice", 1000, 0)],
        );
        let plans = vec!["ns/gold".to_string(), "ns/silver".to_string()];
        let rollup = rollup([&a, &b, &yesterday], &plans, DAY);
        let gold = &rollup["ns/gold"];
        assert_eq!((gold.admitted, gold.throttled, gold.proxies), (38, 3, 2));
        let top: Vec<(&str, u64, u64)> = gold
            .top_keys
            .iter()
            .map(|k| (k.id.as_str(), k.admitted, k.throttled))
            .collect();
        assert_eq!(top, [("carol", 20, 0), ("alice", 15, 3), ("bob", 3, 0)]);
        let silver = &rollup["ns/silver"];
        assert_eq!((silver.admitted, silver.throttled), (0, 0));
        let status = plan_status(gold, None);
        assert_eq!(status.counting, counting::SHARED);
        assert_eq!(status.usage.period_start, "2025-11-21T00:00:00Z");
        let condition = status.condition.expect("a store condition");
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("True", reasons::STORE_AVAILABLE)
        );
    }

    #[test]
    fn the_top_keys_are_bounded_and_the_totals_still_count_every_key() {
        let keys: Vec<(String, u64, u64)> = (0..50).map(|i| (format!("k{i:02}"), i, 0)).collect();
        let keys: Vec<(&str, u64, u64)> =
            keys.iter().map(|(k, a, t)| (k.as_str(), *a, *t)).collect();
        let r = with_keys(report("a", DAY, false, true), "ns/gold", &keys);
        let rollup = rollup([&r], &["ns/gold".to_string()], DAY);
        let gold = &rollup["ns/gold"];
        assert_eq!(gold.top_keys.len(), TOP_KEYS);
        assert_eq!(gold.top_keys[0].id, "k49");
        assert_eq!(gold.admitted, (0..50).sum::<u64>());
    }

    #[test]
    fn a_proxy_without_redis_makes_counting_per_replica_and_no_store_condition_without_redis() {
        let plans = vec!["ns/gold".to_string()];
        let local = report("a", DAY, false, true);
        let shared = report("b", DAY, true, true);
        let mixed = rollup([&local, &shared], &plans, DAY);
        assert_eq!(
            plan_status(&mixed["ns/gold"], None).counting,
            counting::PER_REPLICA
        );
        let alone = rollup([&local], &plans, DAY);
        let status = plan_status(&alone["ns/gold"], None);
        assert_eq!(status.counting, counting::PER_REPLICA);
        assert_eq!(status.condition, None);
        assert!(
            rollup([&local], &plans, DAY + 1).is_empty(),
            "nothing known today"
        );
    }

    #[test]
    fn an_unreachable_store_gives_a_false_condition_that_names_the_fail_mode() {
        let plans = vec!["ns/gold".to_string()];
        let down = report("p-2", DAY, true, false);
        let up = report("p-1", DAY, true, true);
        let rollup = rollup([&down, &up], &plans, DAY);
        let closed = plan_status(&rollup["ns/gold"], Some(FailMode::FailClosed))
            .condition
            .unwrap();
        assert_eq!(closed.status, "False");
        assert_eq!(closed.reason, reasons::STORE_UNAVAILABLE_FAIL_CLOSED);
        assert!(
            closed
                .message
                .contains("1 of 2 proxies cannot reach Redis (p-2)")
        );
        let open = plan_status(&rollup["ns/gold"], Some(FailMode::FailOpen))
            .condition
            .unwrap();
        assert_eq!(open.reason, reasons::STORE_UNAVAILABLE_FAIL_OPEN);
        assert_eq!(
            plan_status(&rollup["ns/gold"], None)
                .condition
                .unwrap()
                .reason,
            reasons::STORE_UNAVAILABLE_FAIL_CLOSED,
            "the default fail mode is FAIL_CLOSED"
        );
    }

    #[test]
    fn the_report_store_keeps_one_report_per_proxy_and_stays_bounded() {
        let mut reports = BTreeMap::new();
        keep(&mut reports, report("a", DAY - 1, false, true));
        keep(&mut reports, report("a", DAY, false, true));
        assert_eq!(reports.len(), 1);
        assert_eq!(reports["a"].day, DAY);
        for i in 0..MAX_REPORTS + 10 {
            keep(&mut reports, report(&format!("p{i}"), DAY, false, true));
        }
        assert_eq!(reports.len(), MAX_REPORTS);
    }
}
