//! The proxy's clock: where expiring state reads the time — the response cache, the decision
//! cache of function authorizers, JWKS ages and refetch limits, usage-plan quota windows and
//! usage days. It is the system clock unless a test injects a manual one
//! ([`ProxyConfig::clock`](crate::ProxyConfig::clock)) and moves it forward instead of
//! sleeping past a TTL.
//!
//! Timeouts (header read, idle, integration) stay on tokio's clock: they are about real
//! waiting, and tests of them pause tokio's time where they need to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of `Instant`s and `SystemTime`s; cheap to clone, shared by everything built from
/// one [`ProxyConfig`](crate::ProxyConfig).
///
/// The system clock ([`Clock::system`], the default) costs one branch on a `None` over the
/// plain system call: no allocation, no dynamic dispatch. A manual clock ([`Clock::manual`])
/// is the system clock plus an offset that only grows ([`Clock::advance`]): it still moves on
/// its own, so nothing that also waits on real time stalls, and it never goes backwards.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Nanoseconds added to the system clock; `None` for the system clock.
    offset: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that [`Clock::advance`] moves forward; it starts at the system time.
    pub fn manual() -> Self {
        Self {
            offset: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    fn offset(&self) -> Duration {
        match &self.offset {
            None => Duration::ZERO,
            Some(nanos) => Duration::from_nanos(nanos.load(Ordering::Acquire)),
        }
    }

    /// Now, for durations and expiry.
    #[inline]
    pub fn now(&self) -> Instant {
        match &self.offset {
            None => Instant::now(),
            Some(_) => Instant::now() + self.offset(),
        }
    }

    /// Now, as wall time (quota periods, usage days, request times).
    #[inline]
    pub fn system_time(&self) -> SystemTime {
        match &self.offset {
            None => SystemTime::now(),
            Some(_) => SystemTime::now() + self.offset(),
        }
    }

    /// Days since the Unix epoch (UTC), the key of usage counts.
    pub fn unix_day(&self) -> u64 {
        self.system_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400)
    }

    /// Moves a manual clock forward by `by`; every clone of it sees the move.
    ///
    /// # Panics
    ///
    /// On the system clock, which cannot be moved (only tests call this).
    pub fn advance(&self, by: Duration) {
        let Some(nanos) = &self.offset else {
            panic!("the system clock cannot be advanced; build the proxy with Clock::manual()");
        };
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            })
            .ok();
    }
}

// ---------------------------------------------------------------- calendar

/// Days since 1970-01-01 → (year, month 1-12, day 1-31). Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_forward_for_every_clone_and_the_system_clock_tracks_real_time() {
        let clock = Clock::manual();
        let clone = clock.clone();
        let (before, wall_before) = (clone.now(), clone.system_time());
        clock.advance(Duration::from_secs(3_600));
        assert!(clone.now() >= before + Duration::from_secs(3_600));
        assert!(clone.system_time() >= wall_before + Duration::from_secs(3_600));
        let system = Clock::system();
        let real = Instant::now();
        assert!(system.now() >= real && system.now() < real + Duration::from_secs(60));
    }

    #[test]
    fn a_day_later_is_the_next_unix_day() {
        let clock = Clock::manual();
        let today = clock.unix_day();
        clock.advance(Duration::from_secs(86_400));
        assert_eq!(clock.unix_day(), today + 1);
    }
}
