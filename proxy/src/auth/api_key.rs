//! API keys: per stage, a hash map from the SHA-256 of a key value to the key, so a lookup is
//! one hash of the presented value and one map probe. Raw values are never stored; a disabled
//! key is kept out of the table (it is refused like an unknown one).

use std::collections::HashMap;
use std::sync::Arc;

use causeway_snapshot::UsagePlanConfig;
use sha2::{Digest, Sha256};

use crate::error::AuthApplyError;

/// A key as the proxy knows it (cheap to clone: both ids are shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiKey {
    /// Key id (`$context.identity.apiKeyId`).
    pub id: Arc<str>,
    /// Usage plan id.
    pub plan: Arc<str>,
}

/// Key hash → the keys with that value (one per plan that has it), each checked against the
/// stages of its plan. A key is stored once, however many stages its plan is bound to: with
/// 100,000 keys in plans bound to ten stages each, a table per stage held a million entries.
#[derive(Debug, Default)]
pub(crate) struct KeyTable {
    /// Stage id → its index in the plans' stage lists.
    stages: HashMap<String, u32>,
    /// Key hash → index of the first key with that hash in `keys`.
    by_hash: HashMap<[u8; 32], u32>,
    keys: Vec<Entry>,
    /// Per plan: the indexes of its stages, sorted.
    plan_stages: Vec<Box<[u32]>>,
    /// Per plan: its id, shared by its keys.
    plan_ids: Vec<Arc<str>>,
}

/// One key: 24 bytes and its id (the plan's id is stored once per plan).
#[derive(Debug)]
struct Entry {
    id: Arc<str>,
    /// Index in `plan_stages` and `plan_ids`.
    plan: u32,
    /// The next key with the same hash (another plan's), or `u32::MAX`.
    next: u32,
}

impl KeyTable {
    /// Builds the table; a key whose hash does not decode is left out (it is refused like an
    /// unknown key) and returned with its `plan/key` id, the rest of its plan serves.
    pub fn build(plans: &[UsagePlanConfig]) -> (Self, Vec<(String, AuthApplyError)>) {
        let mut table = Self::default();
        let mut unusable = Vec::new();
        let count = plans.iter().map(|p| p.keys.len()).sum();
        table.by_hash.reserve(count);
        table.keys.reserve(count);
        for (p, plan) in plans.iter().enumerate() {
            let plan_index = u32::try_from(p).unwrap_or(u32::MAX);
            let mut stages: Vec<u32> = plan
                .stages
                .iter()
                .map(|s| {
                    let next = u32::try_from(table.stages.len()).unwrap_or(u32::MAX);
                    *table.stages.entry(s.stage.clone()).or_insert(next)
                })
                .collect();
            stages.sort_unstable();
            table.plan_stages.push(stages.into_boxed_slice());
            table.plan_ids.push(Arc::from(plan.id.as_str()));
            for key in plan.keys.iter().filter(|k| k.enabled) {
                let mut hash = [0u8; 32];
                if hex::decode_to_slice(&key.sha256, &mut hash).is_err() {
                    let error = AuthApplyError::KeyHash {
                        plan: plan.id.clone(),
                        key: key.id.clone(),
                    };
                    unusable.push((format!("{}/{}", plan.id, key.id), error));
                    continue;
                }
                let index = u32::try_from(table.keys.len()).unwrap_or(u32::MAX);
                let next = table.by_hash.insert(hash, index).unwrap_or(u32::MAX);
                table.keys.push(Entry {
                    id: Arc::from(key.id.as_str()),
                    plan: plan_index,
                    next,
                });
            }
        }
        (table, unusable)
    }

    /// The enabled key with this value bound to this stage.
    pub fn find(&self, stage: &str, value: &[u8]) -> Option<ApiKey> {
        let stage = *self.stages.get(stage)?;
        let hash: [u8; 32] = Sha256::digest(value).into();
        let mut at = *self.by_hash.get(&hash)?;
        while let Some(entry) = self.keys.get(at as usize) {
            let bound = self
                .plan_stages
                .get(entry.plan as usize)
                .is_some_and(|s| s.binary_search(&stage).is_ok());
            if bound {
                let plan = self.plan_ids.get(entry.plan as usize)?;
                return Some(ApiKey {
                    id: Arc::clone(&entry.id),
                    plan: Arc::clone(plan),
                });
            }
            at = entry.next;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use causeway_snapshot::{ApiKeyConfig, PlanStage};

    use super::*;

    fn plan(keys: &[(&str, &str, bool)]) -> UsagePlanConfig {
        UsagePlanConfig {
            id: "default/gold".into(),
            stages: vec![PlanStage {
                stage: "default/pets/prod".into(),
                route_throttles: Default::default(),
            }],
            throttle: None,
            quota: None,
            fail_closed: true,
            rate_limit_headers: false,
            keys: keys
                .iter()
                .map(|(id, value, enabled)| ApiKeyConfig {
                    id: id.to_string(),
                    sha256: hex::encode(Sha256::digest(value.as_bytes())),
                    enabled: *enabled,
                    throttle: None,
                    quota: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_key_is_found_by_its_value_only_on_the_stages_of_its_plan_and_only_when_enabled() {
        let (table, unusable) = KeyTable::build(&[plan(&[
            ("alice", "alice-key-0123456789", true),
            ("bob", "bob-key-0123456789ab", false),
        ])]);
        assert!(unusable.is_empty());
        let found = table.find("default/pets/prod", b"alice-key-0123456789");
        assert_eq!(found.as_ref().map(|k| &*k.id), Some("alice"));
        assert!(
            table
                .find("default/pets/beta", b"alice-key-0123456789")
                .is_none()
        );
        assert!(
            table
                .find("default/pets/prod", b"bob-key-0123456789ab")
                .is_none()
        );
        assert!(table.find("default/pets/prod", b"nobody").is_none());
    }

    #[test]
    fn a_key_with_a_bad_hash_is_left_out_and_named_while_the_rest_of_its_plan_serves() {
        let mut plan = plan(&[
            ("alice", "alice-key-0123456789", true),
            ("carol", "carol-key-0123456789", true),
        ]);
        plan.keys[1].sha256 = "not-hex".into();
        let (table, unusable) = KeyTable::build(&[plan]);
        assert_eq!(unusable.len(), 1);
        assert_eq!(unusable[0].0, "default/gold/carol");
        assert!(
            table
                .find("default/pets/prod", b"alice-key-0123456789")
                .is_some()
        );
        assert!(
            table
                .find("default/pets/prod", b"carol-key-0123456789")
                .is_none()
        );
    }

    #[test]
    fn one_value_in_two_plans_on_different_stages_finds_the_plan_of_the_stage() {
        let mut gold = plan(&[("alice", "shared-key-0123456789", true)]);
        let mut silver = plan(&[("alice2", "shared-key-0123456789", true)]);
        silver.id = "default/silver".into();
        silver.stages[0].stage = "default/pets/beta".into();
        gold.stages.push(PlanStage {
            stage: "default/pets/dev".into(),
            route_throttles: Default::default(),
        });
        let (table, unusable) = KeyTable::build(&[gold, silver]);
        assert!(unusable.is_empty());
        let on = |stage: &str| {
            table
                .find(stage, b"shared-key-0123456789")
                .map(|k| (k.id.to_string(), k.plan.to_string()))
        };
        assert_eq!(
            on("default/pets/prod"),
            Some(("alice".into(), "default/gold".into()))
        );
        assert_eq!(
            on("default/pets/dev"),
            Some(("alice".into(), "default/gold".into()))
        );
        assert_eq!(
            on("default/pets/beta"),
            Some(("alice2".into(), "default/silver".into()))
        );
        assert_eq!(on("default/pets/other"), None);
    }
}
