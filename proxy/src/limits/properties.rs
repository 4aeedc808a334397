//! Property tests: no rate, burst, quota or period a custom resource can carry (compile checks
//! most of them, a hand-built or older snapshot may not) makes the limits code panic or report
//! a wait that is not a finite, positive number of seconds.

use std::time::{Duration, Instant, UNIX_EPOCH};

use causeway_snapshot::Throttle;
use proptest::prelude::*;

use super::quota::{Period, QuotaDecision, QuotaRule, Quotas, SECONDS_PER_DAY, period_bounds};
use super::{TokenBucket, retry_after_seconds};

/// Every kind of `f64` a rate field can hold: zero, negative, tiny, fractional, huge, NaN, ∞.
fn any_rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(f64::MAX),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        0.0..1.0f64,
        0.0..1e9f64,
        any::<f64>(),
    ]
}

fn any_period() -> impl Strategy<Value = Period> {
    prop_oneof![Just(Period::Day), Just(Period::Week), Just(Period::Month)]
}

/// Up to the last second of the year 9999.
const LAST_SECOND: u64 = 253_402_300_799;

proptest! {
    #[test]
    fn a_bucket_with_any_rate_and_burst_never_panics_and_waits_a_finite_time(
        rate in any_rate(),
        burst in any::<u32>(),
        steps in proptest::collection::vec(0u64..=u64::from(u32::MAX) * 1_000_000_000, 1..40),
    ) {
        let start = Instant::now();
        let bucket = TokenBucket::new(Throttle { rate, burst }, start);
        let mut at = Duration::ZERO;
        for step in steps {
            // Time moves forward (by up to ~136 years) and, now and then, backwards.
            let nanos = Duration::from_nanos(step);
            at = if step % 7 == 0 { at.saturating_sub(nanos) } else { at.saturating_add(nanos) };
            let now = start.checked_add(at).unwrap_or(start);
            match bucket.try_take(now) {
                Ok(()) => bucket.refund(),
                Err(wait) => {
                    prop_assert!(wait.as_secs_f64().is_finite());
                    prop_assert!(retry_after_seconds(wait) >= 1);
                }
            }
            let (full, left, _to_full) = bucket.peek(now);
            prop_assert!(left <= full);
        }
    }

    #[test]
    fn retry_after_is_at_least_one_second_for_any_wait(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        let wait = Duration::new(secs, nanos);
        let seconds = retry_after_seconds(wait);
        prop_assert!(seconds >= 1);
        prop_assert!(seconds >= secs, "never sooner than the wait");
        prop_assert!(seconds <= secs.saturating_add(1).max(1), "at most a second later");
    }

    #[test]
    fn every_period_holds_its_instant_and_lasts_a_day_a_week_or_a_month(
        period in any_period(),
        now in 0..=LAST_SECOND,
    ) {
        let (start, next) = period_bounds(period, now);
        prop_assert!(start <= now && now < next, "{start} <= {now} < {next}");
        let days = (next - start) / SECONDS_PER_DAY;
        let expected = match period {
            Period::Day => 1..=1,
            Period::Week => 7..=7,
            Period::Month => 28..=31,
        };
        prop_assert!(expected.contains(&days), "{period:?}: {days} days");
        prop_assert_eq!(start % SECONDS_PER_DAY, 0);
    }

    #[test]
    fn a_quota_with_any_limit_offset_and_period_never_panics_and_never_admits_past_its_limit(
        limit in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), 0u64..100],
        offset in prop_oneof![Just(0u64), Just(u64::MAX), 0u64..100],
        period in any_period(),
        now in 0..=LAST_SECOND,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let quotas = Quotas::local();
        let rule = QuotaRule { limit, period, offset };
        let at = UNIX_EPOCH + Duration::from_secs(now);
        let allowed = limit.saturating_sub(offset);
        let tries = allowed.min(50) + 2;
        let mut admitted = 0u64;
        for _ in 0..tries {
            match runtime.block_on(quotas.admit("plan/key", rule, false, at)) {
                QuotaDecision::Admitted => admitted += 1,
                QuotaDecision::Exceeded { retry_after } => {
                    prop_assert!(retry_after > Duration::ZERO);
                    prop_assert!(retry_after <= Duration::from_secs(31 * SECONDS_PER_DAY));
                }
                QuotaDecision::Unavailable => prop_assert!(false, "a local quota is always available"),
            }
        }
        prop_assert!(admitted <= allowed);
        prop_assert_eq!(admitted, allowed.min(tries));
    }
}

/// A clock before 1970 (or a broken one) counts as the epoch rather than panicking.
#[test]
fn a_clock_before_the_epoch_is_the_epoch() {
    let before = UNIX_EPOCH
        .checked_sub(Duration::from_secs(10))
        .unwrap_or(UNIX_EPOCH);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let rule = QuotaRule {
        limit: 1,
        period: Period::Month,
        offset: 0,
    };
    let quotas = Quotas::local();
    assert_eq!(
        runtime.block_on(quotas.admit("p/k", rule, false, before)),
        QuotaDecision::Admitted
    );
}
