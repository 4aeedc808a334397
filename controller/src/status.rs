//! Turning a compiled [`ObjectStatus`] into the `.status` an object should have, and deciding
//! whether it must be written.
//!
//! Pure: the clock (`now`) and the rollout state come in as arguments. The controller adds
//! `Programmed` and `Ready` to the `Accepted` and `ResolvedRefs` conditions of `compile`, keeps
//! `lastTransitionTime` when a condition's status did not change, and writes `observedGeneration`
//! at the top level and on every condition.

use causeway_compile::{Kind, ObjectStatus, StatusDetail};
use causeway_crds::Condition;
use causeway_crds::api::DeploymentSummary;
use causeway_crds::common::condition_type;
use causeway_crds::stage::ProxyCounts;
use serde_json::{Map, Value, json};

use crate::usage::{PlanUsageStatus, QUOTA_STORE_AVAILABLE};

/// Reasons the controller writes (compile's reasons live in `causeway_compile::reasons`).
pub mod reasons {
    /// Every connected proxy applied the snapshot holding the object as it is now (or a later
    /// one).
    pub const PROGRAMMED: &str = "Programmed";
    /// Proxies are still applying the snapshot, or none is connected yet.
    pub const PENDING: &str = "Pending";
    /// A proxy rejected the snapshot (the message names it and says why).
    pub const REJECTED_BY_PROXY: &str = "RejectedByProxy";
    /// A proxy applied the snapshot but left this object's part out (the message says why);
    /// everything else serves.
    pub const DROPPED_BY_PROXY: &str = "DroppedByProxy";
    /// The object is not in the snapshot because it was not accepted.
    pub const NOT_ACCEPTED: &str = "NotAccepted";
    /// Accepted, resolved and programmed.
    pub const READY: &str = "Ready";
    /// Not ready (the message says which condition is not `True`).
    pub const NOT_READY: &str = "NotReady";
}

/// How far the snapshot that carries an object as it is now has rolled out to the proxies
/// (built per object by [`crate::rollout`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollout {
    /// The snapshot in which the object's compiled status last changed; proxies serve the
    /// object as it is now once they applied this version or a later one.
    pub version: String,
    /// Proxies with an open stream.
    pub connected: u32,
    /// Of those, how many applied `version` or a later one.
    pub applied: u32,
    /// Proxies that rejected `version` or a later one (and serve none of them), with their
    /// reasons.
    pub rejected: Vec<(String, String)>,
    /// Parts that proxies which applied `version` or a later one left out, by proxy.
    pub dropped: Vec<(String, causeway_snapshot::push::DroppedPart)>,
}

impl Rollout {
    /// The `Programmed` condition for an accepted object: `(status, reason, message)`.
    fn programmed(&self, object: &ObjectStatus) -> (&'static str, &'static str, String) {
        if let Some((proxy, part)) = self.dropped.iter().find(|(_, part)| part_of(part, object)) {
            return (
                "False",
                reasons::DROPPED_BY_PROXY,
                format!(
                    "proxy {proxy} left {} {} out of snapshot {} (the rest serves): {}",
                    part.kind, part.id, self.version, part.reason
                ),
            );
        }
        if let Some((proxy, reason)) = self.rejected.first() {
            return (
                "False",
                reasons::REJECTED_BY_PROXY,
                format!(
                    "proxy {proxy} rejected a snapshot carrying it ({} or later): {reason}",
                    self.version
                ),
            );
        }
        if self.connected == 0 {
            return (
                "Unknown",
                reasons::PENDING,
                "no proxy is connected yet".to_string(),
            );
        }
        if self.applied < self.connected {
            return (
                "Unknown",
                reasons::PENDING,
                format!(
                    "{} of {} proxies applied snapshot {} or a later one",
                    self.applied, self.connected, self.version
                ),
            );
        }
        // No version and no count here: an object that did not change keeps this message
        // through later snapshots, proxy restarts and controller failovers, so its status is
        // not written again (the Stage's `proxies` field carries the counts).
        (
            "True",
            reasons::PROGRAMMED,
            "every connected proxy serves it as it is now".to_string(),
        )
    }
}

/// Whether a part a proxy left out belongs to this object: a stage to its Stage. Backends and hosts a proxy drops are in its log and `/config_dump`.
fn part_of(part: &causeway_snapshot::push::DroppedPart, object: &ObjectStatus) -> bool {
    match &object.detail {
        StatusDetail::Stage { stage_id, .. } => part.kind == "stage" && part.id == *stage_id,
        _ => false,
    }
}

/// Extra facts for the status that are not in the compile result.
#[derive(Debug, Clone, Default)]
pub struct Extras<'a> {
    /// For an Api: its recorded deployments, newest first.
    pub deployments: &'a [DeploymentSummary],
    /// For a UsagePlan: its usage rollup; `None` keeps what the status says now.
    pub usage: Option<&'a PlanUsageStatus>,
}

/// The `.status` the object should have. `current` is its status now (to keep transition times).
pub fn desired(
    current: Option<&Value>,
    status: &ObjectStatus,
    rollout: &Rollout,
    extras: &Extras<'_>,
    now: &str,
) -> Value {
    let mut conditions = status.conditions.clone();
    let accepted = status.is_accepted();
    let (p_status, p_reason, p_message) = if accepted {
        rollout.programmed(status)
    } else {
        (
            "False",
            reasons::NOT_ACCEPTED,
            format!(
                "{} {}/{} is not in the snapshot",
                status.kind.as_str(),
                status.namespace,
                status.name
            ),
        )
    };
    conditions.push(condition(
        condition_type::PROGRAMMED,
        p_status,
        p_reason,
        p_message,
        status,
    ));
    let not_true: Vec<&str> = conditions
        .iter()
        .filter(|c| c.status != "True")
        .map(|c| c.type_.as_str())
        .collect();
    let (r_status, r_reason, r_message) = if not_true.is_empty() {
        ("True", reasons::READY, "serving traffic".to_string())
    } else if p_status == "Unknown" && not_true.len() == 1 {
        (
            "Unknown",
            reasons::PENDING,
            "waiting for proxies".to_string(),
        )
    } else {
        (
            "False",
            reasons::NOT_READY,
            format!("not True: {}", not_true.join(", ")),
        )
    };
    conditions.push(condition(
        condition_type::READY,
        r_status,
        r_reason,
        r_message,
        status,
    ));
    // Stalled (kstatus' abnormal-true condition): the object itself is invalid, so no retry and
    // no other object can fix it; only an edit can. Written only while true.
    if let Some(invalid) = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition_type::ACCEPTED && c.status == "False")
    {
        conditions.push(condition(
            condition_type::STALLED,
            "True",
            &invalid.reason,
            invalid.message.clone(),
            status,
        ));
    }

    let old_conditions: Vec<Condition> = current
        .and_then(|c| c.get("conditions"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    // The usage parts of a UsagePlan (not part of Ready: a plan serves whatever the store does).
    if status.kind == Kind::UsagePlan {
        let store = match extras.usage {
            Some(usage) => usage.condition.clone().map(|mut c| {
                c.observed_generation = status.generation;
                c
            }),
            None => old_conditions
                .iter()
                .find(|c| c.type_ == QUOTA_STORE_AVAILABLE)
                .cloned(),
        };
        conditions.extend(store);
    }
    for c in &mut conditions {
        let kept = old_conditions
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
            .and_then(|o| o.last_transition_time.clone());
        c.last_transition_time = Some(kept.unwrap_or_else(|| now.to_string()));
    }

    let mut out = Map::new();
    if let Some(generation) = status.generation {
        out.insert("observedGeneration".into(), json!(generation));
    }
    out.insert("conditions".into(), json!(conditions));
    match &status.detail {
        StatusDetail::Api {
            latest_deployment_id,
            route_count,
        } => {
            out.insert("latestDeploymentId".into(), json!(latest_deployment_id));
            out.insert("routeCount".into(), json!(route_count));
        }
        StatusDetail::Stage {
            urls,
            deployment_id,
            canary_deployment_id,
            ..
        } => {
            out.insert("urls".into(), json!(urls));
            out.insert("deploymentId".into(), json!(deployment_id));
            if let Some(canary) = canary_deployment_id {
                out.insert("canaryDeploymentId".into(), json!(canary));
            }
            let counts = ProxyCounts {
                connected: rollout.connected,
                applied: rollout.applied,
            };
            out.insert("proxies".into(), json!(counts));
        }
        StatusDetail::UsagePlan { key_count } => {
            out.insert("keyCount".into(), json!(key_count));
            match extras.usage {
                Some(usage) => {
                    out.insert("counting".into(), json!(usage.counting));
                    out.insert("usage".into(), json!(usage.usage));
                }
                // No rollup yet (a new leader): keep what the previous one wrote.
                None => {
                    for field in ["counting", "usage"] {
                        if let Some(v) = current.and_then(|c| c.get(field)) {
                            out.insert(field.into(), v.clone());
                        }
                    }
                }
            }
        }
        StatusDetail::ServiceAccount {
            source,
            secret,
            issuer,
            key_ids,
        } => {
            let keys = causeway_crds::authorizer::ServiceAccountKeysStatus {
                source: source.clone(),
                secret: secret.clone(),
                issuer: issuer.clone(),
                key_ids: key_ids.clone(),
            };
            out.insert("serviceAccountKeys".into(), json!(keys));
        }
        StatusDetail::None => {}
    }
    if status.kind == Kind::Api && !extras.deployments.is_empty() {
        out.insert("deployments".into(), json!(extras.deployments));
    }
    // Empty lists are not stored by the API server (the CRD types skip them), so leave them out
    // to compare equal with what is read back.
    out.retain(|_, v| !matches!(v, Value::Array(a) if a.is_empty()));
    Value::Object(out)
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    object: &ObjectStatus,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: object.generation,
        last_transition_time: None,
    }
}

/// The merge patch that turns `current` into `desired`, or `None` when they are equal. Fields
/// of `current` that `desired` lacks are set to `null` (removed).
pub fn merge_patch(current: Option<&Value>, desired: &Value) -> Option<Value> {
    let empty = Map::new();
    let current_map = current.and_then(Value::as_object).unwrap_or(&empty);
    let desired_map = desired.as_object()?;
    let mut status = desired_map.clone();
    for key in current_map.keys() {
        if !desired_map.contains_key(key) {
            status.insert(key.clone(), Value::Null);
        }
    }
    let same = current_map.len() == desired_map.len()
        && desired_map
            .iter()
            .all(|(k, v)| current_map.get(k) == Some(v));
    if same {
        None
    } else {
        Some(json!({ "status": Value::Object(status) }))
    }
}

/// The conditions that turned `False` (or changed reason while `False`) between `current` and
/// `desired`: the rejections worth a Kubernetes Event.
pub fn new_rejections(current: Option<&Value>, desired: &Value) -> Vec<Condition> {
    let parse = |v: Option<&Value>| -> Vec<Condition> {
        v.and_then(|s| s.get("conditions"))
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default()
    };
    let old = parse(current);
    parse(Some(desired))
        .into_iter()
        .filter(|c| {
            (c.type_ == condition_type::ACCEPTED || c.type_ == condition_type::RESOLVED_REFS)
                && c.status == "False"
                && !old
                    .iter()
                    .any(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_status(accepted: bool, generation: i64) -> ObjectStatus {
        let cond = |t: &str, ok: bool| Condition {
            type_: t.into(),
            status: if ok { "True" } else { "False" }.into(),
            reason: if ok { t } else { "BackendNotFound" }.into(),
            message: "m".into(),
            observed_generation: Some(generation),
            last_transition_time: None,
        };
        ObjectStatus {
            kind: Kind::Route,
            namespace: "default".into(),
            name: "r".into(),
            generation: Some(generation),
            conditions: vec![cond("Accepted", true), cond("ResolvedRefs", accepted)],
            detail: StatusDetail::None,
        }
    }

    fn all_applied() -> Rollout {
        Rollout {
            version: "v1".into(),
            connected: 2,
            applied: 2,
            rejected: vec![],
            dropped: vec![],
        }
    }

    fn cond<'a>(status: &'a Value, type_: &str) -> &'a Value {
        status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
            .unwrap_or_else(|| panic!("no condition {type_} in {status}"))
    }

    #[test]
    fn an_accepted_object_is_programmed_and_ready_when_every_proxy_applied() {
        let d = desired(
            None,
            &route_status(true, 3),
            &all_applied(),
            &Extras::default(),
            "T1",
        );
        assert_eq!(d["observedGeneration"], 3);
        assert_eq!(cond(&d, "Programmed")["status"], "True");
        assert_eq!(cond(&d, "Ready")["status"], "True");
        assert_eq!(cond(&d, "Accepted")["observedGeneration"], 3);
        assert_eq!(cond(&d, "Accepted")["lastTransitionTime"], "T1");
    }

    #[test]
    fn programmed_is_not_claimed_while_proxies_are_still_applying() {
        let rollout = Rollout {
            applied: 1,
            ..all_applied()
        };
        let d = desired(
            None,
            &route_status(true, 1),
            &rollout,
            &Extras::default(),
            "T1",
        );
        assert_eq!(cond(&d, "Programmed")["status"], "Unknown");
        assert_eq!(cond(&d, "Programmed")["reason"], reasons::PENDING);
        assert_eq!(cond(&d, "Ready")["status"], "Unknown");
    }

    #[test]
    fn a_rejection_by_a_proxy_is_reported_with_its_reason() {
        let rollout = Rollout {
            applied: 1,
            rejected: vec![("p2".into(), "bad tls key".into())],
            ..all_applied()
        };
        let d = desired(
            None,
            &route_status(true, 1),
            &rollout,
            &Extras::default(),
            "T1",
        );
        assert_eq!(cond(&d, "Programmed")["status"], "False");
        assert!(
            cond(&d, "Programmed")["message"]
                .as_str()
                .unwrap_or("")
                .contains("bad tls key")
        );
    }

    #[test]
    fn a_stage_a_proxy_left_out_is_not_programmed_and_says_why_while_others_are() {
        let stage = |name: &str| ObjectStatus {
            kind: Kind::Stage,
            name: name.into(),
            detail: StatusDetail::Stage {
                stage_id: format!("default/pets/{name}"),
                urls: vec![],
                deployment_id: "d1".into(),
                canary_deployment_id: None,
            },
            ..route_status(true, 1)
        };
        let rollout = Rollout {
            dropped: vec![(
                "p2".into(),
                causeway_snapshot::push::DroppedPart {
                    kind: "stage".into(),
                    id: "default/pets/prod".into(),
                    reason: "header value has a control character".into(),
                },
            )],
            ..all_applied()
        };
        let prod = desired(None, &stage("prod"), &rollout, &Extras::default(), "T1");
        assert_eq!(cond(&prod, "Programmed")["status"], "False");
        assert_eq!(
            cond(&prod, "Programmed")["reason"],
            reasons::DROPPED_BY_PROXY
        );
        let message = cond(&prod, "Programmed")["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            message.contains("p2") && message.contains("control character"),
            "{message}"
        );
        let dev = desired(None, &stage("dev"), &rollout, &Extras::default(), "T1");
        assert_eq!(cond(&dev, "Programmed")["status"], "True");
        let route = desired(
            None,
            &route_status(true, 1),
            &rollout,
            &Extras::default(),
            "T1",
        );
        assert_eq!(cond(&route, "Programmed")["status"], "True");
    }

    #[test]
    fn transition_times_are_kept_while_the_status_does_not_change() {
        let s = route_status(true, 1);
        let first = desired(None, &s, &all_applied(), &Extras::default(), "T1");
        let second = desired(Some(&first), &s, &all_applied(), &Extras::default(), "T2");
        assert_eq!(first, second);
        assert_eq!(merge_patch(Some(&first), &second), None);
        let broken = desired(
            Some(&first),
            &route_status(false, 2),
            &all_applied(),
            &Extras::default(),
            "T3",
        );
        assert_eq!(cond(&broken, "Accepted")["lastTransitionTime"], "T1");
        assert_eq!(cond(&broken, "ResolvedRefs")["lastTransitionTime"], "T3");
        assert_eq!(cond(&broken, "Programmed")["reason"], reasons::NOT_ACCEPTED);
    }

    #[test]
    fn an_invalid_object_is_stalled_and_a_missing_reference_is_not() {
        let mut invalid = route_status(true, 1);
        invalid.conditions[0].status = "False".into();
        invalid.conditions[0].reason = "InvalidRouteKey".into();
        let d = desired(None, &invalid, &all_applied(), &Extras::default(), "T");
        assert_eq!(cond(&d, "Stalled")["status"], "True");
        assert_eq!(cond(&d, "Stalled")["reason"], "InvalidRouteKey");
        let unresolved = desired(
            None,
            &route_status(false, 1),
            &all_applied(),
            &Extras::default(),
            "T",
        );
        let types: Vec<&str> = unresolved["conditions"]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["type"].as_str()).collect())
            .unwrap_or_default();
        assert!(!types.contains(&"Stalled"), "{types:?}");
    }

    #[test]
    fn fields_that_are_no_longer_wanted_are_removed_by_the_patch() {
        let current =
            json!({"conditions": [], "latestDeploymentId": "abc", "observedGeneration": 1});
        let desired = json!({"observedGeneration": 2});
        let patch = merge_patch(Some(&current), &desired).expect("a patch");
        assert_eq!(patch["status"]["latestDeploymentId"], Value::Null);
        assert_eq!(patch["status"]["observedGeneration"], 2);
    }

    #[test]
    fn only_new_rejections_are_reported_as_events() {
        let ok = desired(
            None,
            &route_status(true, 1),
            &all_applied(),
            &Extras::default(),
            "T",
        );
        let bad = desired(
            Some(&ok),
            &route_status(false, 2),
            &all_applied(),
            &Extras::default(),
            "T",
        );
        let events = new_rejections(Some(&ok), &bad);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "BackendNotFound");
        assert!(new_rejections(Some(&bad), &bad).is_empty());
    }
}
