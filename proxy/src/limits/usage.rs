//! Usage per API key per UTC day: requests admitted and refused (throttle or quota), like API
//! Gateway's GetUsage.
//!
//! Counted in memory on the request path (two atomic adds, no I/O). With Redis, a background
//! task flushes the deltas every [`FLUSH_EVERY`] in one pipelined round trip of `HINCRBY`s into
//! `causeway:usage:{plan}:{day}` (field `{key}:admitted` / `{key}:throttled`, kept
//! [`RETENTION_DAYS`]), so every replica's counts add up in one place and reads see the whole
//! fleet — never a write per request.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use causeway_snapshot::push::{KeyCount, MAX_REPORT_KEYS, PlanUsage};
use serde::Serialize;

/// How often counts are flushed to Redis.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How long daily usage is kept in Redis.
pub(crate) const RETENTION_DAYS: u64 = 90;

/// Counts of one key on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DayUsage {
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused by a throttle or the quota.
    pub throttled: u64,
}

/// `(plan, key id, day number since 1970-01-01)`.
type Slot = (String, String, u64);

/// The usage recorder of one proxy.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    /// Everything counted here (what `/usage` answers without Redis).
    totals: Mutex<BTreeMap<Slot, DayUsage>>,
    /// Counted since the last flush to Redis.
    pending: Mutex<BTreeMap<Slot, DayUsage>>,
}

impl Usage {
    /// Counts one request of `key` in `plan` on `day`.
    pub(crate) fn record(&self, plan: &str, key: &str, day: u64, admitted: bool) {
        let slot = (plan.to_string(), key.to_string(), day);
        for map in [&self.totals, &self.pending] {
            let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
            let entry = map.entry(slot.clone()).or_default();
            if admitted {
                entry.admitted += 1;
            } else {
                entry.throttled += 1;
            }
        }
    }

    /// Counts kept by this replica for `plan` (and `key`), days `from..=to`.
    pub(crate) fn local(&self, plan: &str, key: Option<&str>, from: u64, to: u64) -> UsageReport {
        let totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = UsageReport::default();
        for ((p, k, day), counts) in totals.iter() {
            if p == plan && key.is_none_or(|key| key == k) && (from..=to).contains(day) {
                report.add(k, *day, *counts);
            }
        }
        report
    }

    /// This replica's counts of `day` per plan, for the report to the controller: plan totals
    /// over every key, and the busiest [`MAX_REPORT_KEYS`] keys (bounded whatever the key count).
    /// Days before `day` are forgotten here (they stay in Redis when it is configured).
    pub(crate) fn day_report(&self, day: u64) -> Vec<PlanUsage> {
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        // Keep yesterday too: `/usage` without Redis answers for the last two days.
        totals.retain(|(_, _, d), _| *d + 1 >= day);
        let mut plans: BTreeMap<&str, PlanUsage> = BTreeMap::new();
        for ((plan, key, d), counts) in totals.iter() {
            if *d != day {
                continue;
            }
            let entry = plans.entry(plan).or_insert_with(|| PlanUsage {
                plan: plan.clone(),
                ..PlanUsage::default()
            });
            entry.admitted += counts.admitted;
            entry.throttled += counts.throttled;
            entry.keys.push(KeyCount {
                id: key.clone(),
                admitted: counts.admitted,
                throttled: counts.throttled,
            });
        }
        plans
            .into_values()
            .map(|mut plan| {
                plan.keys.sort_by(|a, b| {
                    (b.admitted + b.throttled)
                        .cmp(&(a.admitted + a.throttled))
                        .then_with(|| a.id.cmp(&b.id))
                });
                plan.keys.truncate(MAX_REPORT_KEYS);
                plan
            })
            .collect()
    }

    /// Writes the counts gathered since the last flush to Redis; on failure they are kept for
    /// the next flush (bounded: a day's counts per key are one map entry, however many requests).
    pub(crate) async fn flush(
        &self,
        conn: &mut redis::aio::ConnectionManager,
    ) -> Result<(), redis::RedisError> {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for ((plan, key, day), counts) in &batch {
            let hash = format!("causeway:usage:{plan}:{day}");
            if counts.admitted > 0 {
                pipe.hincr(&hash, format!("{key}:admitted"), counts.admitted)
                    .ignore();
            }
            if counts.throttled > 0 {
                pipe.hincr(&hash, format!("{key}:throttled"), counts.throttled)
                    .ignore();
            }
            pipe.expire(&hash, (RETENTION_DAYS * 86_400) as i64)
                .ignore();
        }
        match pipe.query_async::<()>(conn).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                for (slot, counts) in batch {
                    let entry = pending.entry(slot).or_default();
                    entry.admitted += counts.admitted;
                    entry.throttled += counts.throttled;
                }
                Err(e)
            }
        }
    }
}

/// Reads fleet-wide usage from Redis for `plan` (and `key`), days `from..=to`.
pub async fn read_shared(
    conn: &mut redis::aio::ConnectionManager,
    plan: &str,
    key: Option<&str>,
    from: u64,
    to: u64,
) -> Result<UsageReport, redis::RedisError> {
    let mut report = UsageReport::default();
    for day in from..=to.min(from + 400) {
        let hash = format!("causeway:usage:{plan}:{day}");
        let fields: BTreeMap<String, u64> =
            redis::cmd("HGETALL").arg(&hash).query_async(conn).await?;
        let mut per_key: BTreeMap<&str, DayUsage> = BTreeMap::new();
        for (field, n) in &fields {
            let Some((k, what)) = field.rsplit_once(':') else {
                continue;
            };
            if key.is_some_and(|key| key != k) {
                continue;
            }
            let entry = per_key.entry(k).or_default();
            match what {
                "admitted" => entry.admitted += n,
                "throttled" => entry.throttled += n,
                _ => {}
            }
        }
        for (k, counts) in per_key {
            report.add(k, day, counts);
        }
    }
    Ok(report)
}

/// Usage by key and day, as `/usage` and `causeway usage` print it (API Gateway's `items`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    /// Key id → date (`YYYY-MM-DD`) → counts.
    pub items: BTreeMap<String, BTreeMap<String, DayUsage>>,
}

impl UsageReport {
    fn add(&mut self, key: &str, day: u64, counts: DayUsage) {
        let entry = self
            .items
            .entry(key.to_string())
            .or_default()
            .entry(date(day))
            .or_default();
        entry.admitted += counts.admitted;
        entry.throttled += counts.throttled;
    }
}

/// `YYYY-MM-DD` of a day number.
pub fn date(day: u64) -> String {
    let (y, m, d) = crate::clock::civil_from_days(day as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<u64> {
    let mut parts = text.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    u64::try_from(crate::clock::days_from_civil(y, m, d)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_reported_per_key_and_day_within_the_range_asked() {
        let usage = Usage::default();
        let day = parse_date("2026-11-21").unwrap();
        for _ in 0..3 {
            usage.record("gold", "alice", day, true);
        }
        usage.record("gold", "alice", day, false);
        usage.record("gold", "bob", day, true);
        usage.record("gold", "alice", day - 1, true);
        usage.record("silver", "alice", day, true);
        let report = usage.local("gold", None, day, day);
        assert_eq!(
            report.items["alice"]["2026-11-21"],
            DayUsage {
                admitted: 3,
                throttled: 1
            }
        );
        assert_eq!(
            report.items["bob"]["2026-11-21"],
            DayUsage {
                admitted: 1,
                throttled: 0
            }
        );
        assert_eq!(report.items.len(), 2);
        let alice = usage.local("gold", Some("alice"), day - 1, day);
        assert_eq!(alice.items["alice"].len(), 2);
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(date(day), "2026-11-21");
    }

    #[test]
    fn the_day_report_totals_every_key_lists_the_busiest_first_and_forgets_old_days() {
        let usage = Usage::default();
        let day = parse_date("2026-11-21").unwrap();
        for i in 0..(MAX_REPORT_KEYS + 5) {
            usage.record("gold", &format!("k{i:05}"), day, true);
        }
        for _ in 0..3 {
            usage.record("gold", "busy", day, false);
        }
        usage.record("gold", "old", day - 2, true);
        let report = usage.day_report(day);
        assert_eq!(report.len(), 1);
        let gold = &report[0];
        assert_eq!(gold.plan, "gold");
        assert_eq!(gold.admitted, MAX_REPORT_KEYS as u64 + 5);
        assert_eq!(gold.throttled, 3);
        assert_eq!(gold.keys.len(), MAX_REPORT_KEYS);
        assert_eq!(gold.keys[0].id, "busy");
        assert!(
            usage
                .local("gold", Some("old"), day - 2, day)
                .items
                .is_empty()
        );
    }
}
