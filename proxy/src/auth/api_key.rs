//! API keys: per stage, a hash map from the SHA-256 of a key value to the key, so a lookup is
//! one hash of the presented value and one map probe. Raw values are never stored; a disabled
//! key is kept out of the table (it is refused like an unknown one).

use std::collections::HashMap;

use causeway_snapshot::UsagePlanConfig;
use sha2::{Digest, Sha256};

use crate::error::AuthApplyError;

/// A key as the proxy knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiKey {
    /// Key id (`$context.identity.apiKeyId`).
    pub id: String,
    /// Usage plan id.
    pub plan: String,
}

/// Stage id → key hash → key.
#[derive(Debug, Default)]
pub(crate) struct KeyTable {
    by_stage: HashMap<String, HashMap<[u8; 32], ApiKey>>,
}

impl KeyTable {
    /// Builds the table; a key whose hash does not decode is left out (it is refused like an
    /// unknown key) and returned with its `plan/key` id, the rest of its plan serves.
    pub fn build(plans: &[UsagePlanConfig]) -> (Self, Vec<(String, AuthApplyError)>) {
        let mut by_stage: HashMap<String, HashMap<[u8; 32], ApiKey>> = HashMap::new();
        let mut unusable = Vec::new();
        for plan in plans {
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
                for stage in &plan.stages {
                    by_stage.entry(stage.stage.clone()).or_default().insert(
                        hash,
                        ApiKey {
                            id: key.id.clone(),
                            plan: plan.id.clone(),
                        },
                    );
                }
            }
        }
        (Self { by_stage }, unusable)
    }

    /// The enabled key with this value bound to this stage.
    pub fn find(&self, stage: &str, value: &[u8]) -> Option<&ApiKey> {
        let keys = self.by_stage.get(stage)?;
        let hash: [u8; 32] = Sha256::digest(value).into();
        keys.get(&hash)
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
        assert_eq!(found.map(|k| k.id.as_str()), Some("alice"));
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
}
