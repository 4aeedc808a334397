//! The applied snapshot as the tables keep it for `/config_dump` and `/readyz`: whole, except
//! that the usage plans' API keys are held packed ([`PackedKey`]). The key table and the plans'
//! limits are built from the keys first; after that only the dump reads them, and 100,000 keys
//! as `ApiKeyConfig` (two Strings, one of them 64 hex digits) took about 20 MB.

use std::ops::Deref;

use causeway_snapshot::{PackedKey, Snapshot};
use serde::{Serialize, Serializer};

/// The snapshot with its keys compacted (see the module docs). Reads as the [`Snapshot`] it
/// was, except for `usage_plans[..].keys`, which are empty: the keys are in [`Self::keys`]
/// and come back whole when it is serialized.
pub(crate) struct KeptSnapshot {
    snapshot: Snapshot,
    /// Per usage plan, in order: its keys, in order.
    keys: Vec<Vec<PackedKey>>,
}

impl KeptSnapshot {
    /// Takes the keys out of `snapshot` into the packed form.
    pub(crate) fn new(mut snapshot: Snapshot) -> Self {
        let keys = snapshot
            .usage_plans
            .iter_mut()
            .map(|plan| {
                std::mem::take(&mut plan.keys)
                    .into_iter()
                    .map(PackedKey::from)
                    .collect()
            })
            .collect();
        Self { snapshot, keys }
    }

    /// The snapshot exactly as it was applied, keys included.
    pub(crate) fn whole(&self) -> Snapshot {
        let mut whole = self.snapshot.clone();
        for (plan, keys) in whole.usage_plans.iter_mut().zip(&self.keys) {
            plan.keys = keys.iter().map(PackedKey::unpack).collect();
        }
        whole
    }
}

impl Deref for KeptSnapshot {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        &self.snapshot
    }
}

impl Serialize for KeptSnapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.whole().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use causeway_snapshot::{
        ApiKeyConfig, PlanStage, Quota, QuotaPeriod, Throttle, UsagePlanConfig,
    };

    use super::*;

    fn key(id: &str, sha256: String) -> ApiKeyConfig {
        ApiKeyConfig {
            id: id.into(),
            sha256,
            enabled: true,
            throttle: None,
            quota: None,
        }
    }

    #[test]
    fn the_kept_snapshot_serializes_exactly_as_the_applied_one_while_holding_no_key_list() {
        let mut own = key("own", hex::encode([7u8; 32]));
        own.enabled = false;
        own.throttle = Some(Throttle {
            rate: 2.5,
            burst: 3,
        });
        own.quota = Some(Quota {
            limit: 9,
            period: QuotaPeriod::Month,
            offset: 1,
        });
        let plan = UsagePlanConfig {
            id: "default/gold".into(),
            stages: vec![PlanStage {
                stage: "default/pets/prod".into(),
                route_throttles: Default::default(),
            }],
            throttle: None,
            quota: None,
            fail_closed: true,
            rate_limit_headers: false,
            keys: vec![
                key("a", hex::encode([1u8; 32])),
                own,
                // Not 64 lowercase hex digits: kept as written.
                key("odd", "ABCDEF".into()),
                key("upper", hex::encode_upper([2u8; 32])),
            ],
        };
        let snapshot = Snapshot {
            usage_plans: vec![plan],
            ..Snapshot::default()
        }
        .seal();
        let kept = KeptSnapshot::new(snapshot.clone());
        assert!(kept.usage_plans[0].keys.is_empty());
        assert_eq!(kept.version, snapshot.version);
        assert_eq!(kept.whole(), snapshot);
        assert_eq!(
            serde_json::to_value(&kept).expect("serializes"),
            serde_json::to_value(&snapshot).expect("serializes")
        );
    }
}
