//! Usage plans: the stages a plan is bound to and its API keys, read from Secrets and hashed.
//!
//! Only the SHA-256 (lowercase hex) of a key's value reaches the snapshot; the raw value is
//! dropped as soon as it is hashed. A key whose Secret (or key in it) is missing makes the plan
//! `ResolvedRefs=False, SecretNotFound`, naming the API key, and the plan is left out, so no key
//! of a half-resolved plan is honoured. Two plans may not bind the same key value to the same
//! stage (the proxy could not tell which plan counts it): the newer plan gets `Accepted=False`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use causeway_crds::UsagePlan;
use causeway_crds::common::{SecretKeyRef, ThrottleSpec};
use causeway_crds::usage_plan::{FailMode, QuotaPeriod as CrdPeriod, QuotaSpec};
use causeway_snapshot::{
    ApiKeyConfig, PlanStage, Quota, QuotaPeriod, StageConfig, Throttle, UsagePlanConfig,
};
use sha2::{Digest, Sha256};

use super::Input;
use super::{Apis, Problem, Verdict, age, api_ref_problem, cel, obj_key};
use crate::reasons;
use crate::status::{Kind, ObjectStatus, StatusDetail};

/// The value of one key of a Secret in `namespace`: `data` (base64 in YAML, decoded by the
/// type) wins over `stringData`.
pub(crate) fn secret_value(
    inventory: &Input<'_>,
    field: &str,
    namespace: &str,
    secret: &SecretKeyRef,
) -> Result<Vec<u8>, Problem> {
    let object = secret_object(inventory, field, namespace, &secret.name)?;
    let from_data = object
        .data
        .as_ref()
        .and_then(|d| d.get(&secret.key))
        .map(|v| v.0.clone());
    let from_string = || {
        object
            .string_data
            .as_ref()
            .and_then(|d| d.get(&secret.key))
            .map(|v| v.as_bytes().to_vec())
    };
    from_data.or_else(from_string).ok_or_else(|| {
        Problem::unresolved(
            reasons::SECRET_NOT_FOUND,
            format!(
                "{field}: Secret {namespace}/{} has no key {:?}",
                secret.name, secret.key
            ),
        )
    })
}

/// Every key of a Secret (`data` over `stringData`), values as bytes.
pub(crate) fn secret_entries(
    inventory: &Input<'_>,
    field: &str,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, Problem> {
    let object = secret_object(inventory, field, namespace, name)?;
    let mut out: BTreeMap<String, Vec<u8>> = object
        .string_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    out.extend(
        object
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone())),
    );
    Ok(out)
}

fn secret_object<'i>(
    inventory: &'i Input<'_>,
    field: &str,
    namespace: &str,
    name: &str,
) -> Result<&'i k8s_openapi::api::core::v1::Secret, Problem> {
    inventory.secret(namespace, name).ok_or_else(|| {
        Problem::unresolved(
            reasons::SECRET_NOT_FOUND,
            format!("{field}: Secret {namespace}/{name} does not exist"),
        )
    })
}

fn throttle(field: &str, spec: &ThrottleSpec) -> Result<Throttle, Problem> {
    if !spec.rate_limit.is_finite() || spec.rate_limit < 0.0 {
        return Err(Problem::invalid(
            reasons::INVALID,
            format!("{field}.rateLimit must be a number of at least 0"),
        ));
    }
    Ok(Throttle {
        rate: spec.rate_limit,
        burst: spec.burst_limit,
    })
}

fn quota(spec: &QuotaSpec) -> Quota {
    Quota {
        limit: spec.limit,
        period: match spec.period {
            CrdPeriod::Day => QuotaPeriod::Day,
            CrdPeriod::Week => QuotaPeriod::Week,
            CrdPeriod::Month => QuotaPeriod::Month,
        },
        offset: spec.offset.unwrap_or(0),
    }
}

/// Compiles every UsagePlan (oldest first) against the accepted stages; pushes one status per
/// plan and returns the accepted plans sorted by id.
pub(crate) fn compile_usage_plans(
    inventory: &Input<'_>,
    apis: &Apis,
    stages: &[StageConfig],
    statuses: &mut Vec<ObjectStatus>,
) -> Vec<UsagePlanConfig> {
    let stage_ids: BTreeSet<&str> = stages.iter().map(|s| s.id.as_str()).collect();
    let mut plans: Vec<&UsagePlan> = inventory.usage_plans.iter().collect();
    plans.sort_by_key(|p| (age(&p.metadata), obj_key(&p.metadata)));
    // Key hash → the accepted plans (index into `accepted`) that have it: a key value may be
    // bound to a stage by one plan only. Looked up once per key, whatever the stage count.
    let mut bound: HashMap<String, Vec<usize>> = HashMap::new();
    // Per accepted plan: its id and its stages.
    let mut accepted: Vec<(String, BTreeSet<String>)> = Vec::new();
    let mut out = Vec::new();
    for plan in plans {
        let mut verdict = Verdict::default();
        let compiled = verdict.check(compile_plan(plan, inventory, apis, &stage_ids));
        let mut detail = StatusDetail::None;
        if let Some(config) = compiled {
            // The first clash in (stage, key) order, as the message names one.
            let mut clash: Option<(usize, usize, usize)> = None;
            for (ki, key) in config.keys.iter().enumerate() {
                for &q in bound.get(&key.sha256).into_iter().flatten() {
                    let other_stages = &accepted[q].1;
                    if let Some(si) = config
                        .stages
                        .iter()
                        .position(|s| other_stages.contains(&s.stage))
                        && clash.is_none_or(|(s0, k0, _)| (si, ki) < (s0, k0))
                    {
                        clash = Some((si, ki, q));
                    }
                }
            }
            if let Some((si, ki, q)) = clash {
                let (stage, key, other) = (
                    &config.stages[si].stage,
                    &config.keys[ki].id,
                    &accepted[q].0,
                );
                verdict.add(Problem::invalid(
                    reasons::INVALID,
                    format!(
                        "spec.apiKeys: key {key:?} has the same value as a key of the older UsagePlan {other} on stage {stage}"
                    ),
                ));
            } else if verdict.is_ok() {
                let index = accepted.len();
                accepted.push((
                    config.id.clone(),
                    config.stages.iter().map(|s| s.stage.clone()).collect(),
                ));
                for k in &config.keys {
                    bound.entry(k.sha256.clone()).or_default().push(index);
                }
                detail = StatusDetail::UsagePlan {
                    key_count: u32::try_from(config.keys.len()).unwrap_or(u32::MAX),
                };
                out.push(config);
            }
        }
        statuses.push(verdict.into_status(Kind::UsagePlan, &plan.metadata, detail));
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn compile_plan(
    plan: &UsagePlan,
    inventory: &Input<'_>,
    apis: &Apis,
    stage_ids: &BTreeSet<&str>,
) -> Result<UsagePlanConfig, Problem> {
    cel::check(Kind::UsagePlan, plan)?;
    let (namespace, name) = obj_key(&plan.metadata);
    let spec = &plan.spec;
    let mut stages = BTreeMap::new();
    for (i, binding) in spec.api_stages.iter().enumerate() {
        let field = format!("spec.apiStages[{i}]");
        if let Some(mut p) = api_ref_problem(apis, &namespace, &binding.api) {
            p.message = p
                .message
                .replacen("spec.apiRef", &format!("{field}.api"), 1);
            return Err(p);
        }
        let stage = format!("{namespace}/{}/{}", binding.api, binding.stage);
        if !stage_ids.contains(stage.as_str()) {
            return Err(Problem::unresolved(
                reasons::STAGE_NOT_FOUND,
                format!(
                    "{field}.stage: Api {namespace}/{} has no accepted stage {:?}",
                    binding.api, binding.stage
                ),
            ));
        }
        let mut route_throttles = BTreeMap::new();
        for (key, t) in &binding.route_throttles {
            route_throttles.insert(
                key.clone(),
                throttle(&format!("{field}.routeThrottles[{key:?}]"), t)?,
            );
        }
        if stages
            .insert(
                stage.clone(),
                PlanStage {
                    stage: stage.clone(),
                    route_throttles,
                },
            )
            .is_some()
        {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!("{field}: stage {stage} is listed twice"),
            ));
        }
    }
    let mut keys = Vec::with_capacity(spec.api_keys.len());
    let mut ids = BTreeSet::new();
    let mut hashes = BTreeSet::new();
    for (i, key) in spec.api_keys.iter().enumerate() {
        let field = format!("spec.apiKeys[{i}] (key {:?})", key.id);
        if key.id.is_empty() || !ids.insert(key.id.clone()) {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!("{field}: key ids must be non-empty and unique in the plan"),
            ));
        }
        let value = secret_value(
            inventory,
            &format!("{field}.secretRef"),
            &namespace,
            &key.secret_ref,
        )?;
        let value = trim_line_end(&value);
        if value.len() < 20 {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!(
                    "{field}: the key value must be at least 20 characters (API Gateway's minimum)"
                ),
            ));
        }
        let sha256 = hex::encode(Sha256::digest(value));
        if !hashes.insert(sha256.clone()) {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!("{field}: another key of the plan has the same value"),
            ));
        }
        keys.push(ApiKeyConfig {
            id: key.id.clone(),
            sha256,
            enabled: key.enabled.unwrap_or(true),
            throttle: key
                .throttle
                .as_ref()
                .map(|t| throttle(&format!("{field}.throttle"), t))
                .transpose()?,
            quota: key.quota.as_ref().map(quota),
        });
    }
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(UsagePlanConfig {
        id: format!("{namespace}/{name}"),
        stages: stages.into_values().collect(),
        throttle: spec
            .throttle
            .as_ref()
            .map(|t| throttle("spec.throttle", t))
            .transpose()?,
        quota: spec.quota.as_ref().map(quota),
        fail_closed: spec.fail_mode != Some(FailMode::FailOpen),
        rate_limit_headers: spec.rate_limit_headers.unwrap_or(false),
        keys,
    })
}

/// A Secret written with `echo key > file` ends in a newline nobody means to send.
fn trim_line_end(value: &[u8]) -> &[u8] {
    let mut end = value.len();
    while end > 0 && matches!(value[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &value[..end]
}
