//! The mutating commands: `deploy`, `rollback`, `canary`, `promote`. Each computes one JSON merge
//! patch of `Stage.spec` (pure functions, `*_patch`), then prints and applies it.

use std::io::Write;

use causeway_crds::Stage;
use kube::{Client, ResourceExt};
use serde_json::{Map, Value, json};

use super::{
    OpsError, OpsResult, apply_stage_patch, deployment_config_maps, find_stage, get_api,
    merged_history, served_id, stage_name,
};

/// `{"spec":{"deploymentId":ID,"autoDeploy":null}}`, plus `"description"` when one is given.
pub fn deploy_patch(id: &str, description: Option<&str>) -> Value {
    let mut spec = Map::new();
    spec.insert("deploymentId".into(), json!(id));
    spec.insert("autoDeploy".into(), Value::Null);
    if let Some(d) = description {
        spec.insert("description".into(), json!(d));
    }
    json!({ "spec": spec })
}

/// `{"spec":{"deploymentId":ID}}`, plus `"autoDeploy":null` when the stage had `autoDeploy`
/// (a stage sets exactly one of the two).
pub fn rollback_patch(stage: &Stage, id: &str) -> Value {
    let mut spec = Map::new();
    spec.insert("deploymentId".into(), json!(id));
    if stage.spec.auto_deploy.is_some() {
        spec.insert("autoDeploy".into(), Value::Null);
    }
    json!({ "spec": spec })
}

/// `{"spec":{"canary":{"deploymentId":ID,"percentTraffic":P}}}`; other canary fields (overrides,
/// sticky, useStageCache) are kept by the merge.
pub fn canary_patch(id: &str, percent: f64) -> Value {
    json!({ "spec": { "canary": { "deploymentId": id, "percentTraffic": percent } } })
}

/// The stage takes the canary's deployment and its `stageVariableOverrides` (merged into
/// `variables`), and the canary is removed:
/// `{"spec":{"deploymentId":C,"variables":{..overrides},"canary":null}}` (`variables` only when
/// there are overrides; `"autoDeploy":null` when the stage had `autoDeploy`). `None` when the
/// stage has no canary.
pub fn promote_patch(stage: &Stage) -> Option<Value> {
    let canary = stage.spec.canary.as_ref()?;
    let mut spec = Map::new();
    spec.insert("deploymentId".into(), json!(canary.deployment_id));
    if stage.spec.auto_deploy.is_some() {
        spec.insert("autoDeploy".into(), Value::Null);
    }
    if !canary.stage_variable_overrides.is_empty() {
        spec.insert("variables".into(), json!(canary.stage_variable_overrides));
    }
    spec.insert("canary".into(), Value::Null);
    Some(json!({ "spec": spec }))
}

/// `causeway deploy`: pins the stage to the Api's newest deployment (`status.latestDeploymentId`).
pub async fn deploy(
    client: &Client,
    ns: &str,
    api: &str,
    stage: &str,
    description: Option<&str>,
    dry_run: bool,
    out: &mut impl Write,
) -> OpsResult {
    let the_api = get_api(client, ns, api).await?;
    let latest = the_api
        .status
        .as_ref()
        .and_then(|s| s.latest_deployment_id.clone())
        .ok_or_else(|| {
            OpsError::Refused(format!(
                "Api {ns}/{api} has no deployment yet (status.latestDeploymentId is empty: is the controller running, and is the Api accepted?)"
            ))
        })?;
    let the_stage = find_stage(client, ns, api, stage).await?;
    let current = served_id(&the_stage).unwrap_or_else(|| "none".into());
    writeln!(
        out,
        "stage {stage} of Api {ns}/{api}: serves {current}; newest deployment is {latest}"
    )?;
    if current == latest && the_stage.spec.auto_deploy.is_none() && description.is_none() {
        writeln!(out, "already pinned to {latest}: nothing to change")?;
        return Ok(());
    }
    apply_stage_patch(
        client,
        &the_stage,
        &deploy_patch(&latest, description),
        dry_run,
        out,
    )
    .await
}

/// `causeway rollback`: points the stage at `to`, by default the deployment before the one it
/// serves in the Api's history.
pub async fn rollback(
    client: &Client,
    ns: &str,
    api: &str,
    stage: &str,
    to: Option<&str>,
    dry_run: bool,
    out: &mut impl Write,
) -> OpsResult {
    let the_api = get_api(client, ns, api).await?;
    let the_stage = find_stage(client, ns, api, stage).await?;
    let cms = deployment_config_maps(client, ns, api).await?;
    let history = merged_history(&the_api, &cms);
    let current = served_id(&the_stage);
    let target = match to {
        Some(id) => {
            if !history.iter().any(|d| d.id == id) {
                return Err(OpsError::Refused(format!(
                    "deployment {id} is not in the history of Api {ns}/{api} (see `causeway history {api}`)"
                )));
            }
            id.to_string()
        }
        None => {
            let current = current.as_deref().ok_or_else(|| {
                OpsError::Refused(format!(
                    "stage {stage} serves no deployment yet; name one with --to"
                ))
            })?;
            let at = history.iter().position(|d| d.id == current).ok_or_else(|| {
                OpsError::Refused(format!(
                    "deployment {current} (served by stage {stage}) is not in the history of Api {ns}/{api}; name one with --to"
                ))
            })?;
            history
                .get(at + 1)
                .map(|d| d.id.clone())
                .ok_or_else(|| {
                    OpsError::Refused(format!(
                        "deployment {current} is the oldest in the history of Api {ns}/{api}: nothing to roll back to"
                    ))
                })?
        }
    };
    writeln!(
        out,
        "stage {} of Api {ns}/{api}: rolling back from {} to {target}",
        stage_name(&the_stage),
        current.as_deref().unwrap_or("none")
    )?;
    if current.as_deref() == Some(target.as_str()) && the_stage.spec.auto_deploy.is_none() {
        writeln!(out, "already serving {target}: nothing to change")?;
        return Ok(());
    }
    apply_stage_patch(
        client,
        &the_stage,
        &rollback_patch(&the_stage, &target),
        dry_run,
        out,
    )
    .await
}

/// `causeway canary`: sends `percent` % of the stage's traffic to `deployment` (default: the
/// Api's newest deployment).
#[allow(clippy::too_many_arguments)]
pub async fn canary(
    client: &Client,
    ns: &str,
    api: &str,
    stage: &str,
    percent: f64,
    deployment: Option<&str>,
    dry_run: bool,
    out: &mut impl Write,
) -> OpsResult {
    if !(0.0..=100.0).contains(&percent) {
        return Err(OpsError::Refused(format!(
            "--percent must be between 0 and 100, got {percent}"
        )));
    }
    let the_api = get_api(client, ns, api).await?;
    let the_stage = find_stage(client, ns, api, stage).await?;
    let id = match deployment {
        Some(id) => {
            let cms = deployment_config_maps(client, ns, api).await?;
            if !merged_history(&the_api, &cms).iter().any(|d| d.id == id) {
                return Err(OpsError::Refused(format!(
                    "deployment {id} is not in the history of Api {ns}/{api} (see `causeway history {api}`)"
                )));
            }
            id.to_string()
        }
        None => the_api
            .status
            .as_ref()
            .and_then(|s| s.latest_deployment_id.clone())
            .ok_or_else(|| {
                OpsError::Refused(format!(
                    "Api {ns}/{api} has no deployment yet (status.latestDeploymentId is empty)"
                ))
            })?,
    };
    let main = served_id(&the_stage).unwrap_or_else(|| "none".into());
    if main == id {
        writeln!(
            out,
            "warning: stage {stage} already serves {id}: the canary would change nothing"
        )?;
    }
    writeln!(
        out,
        "stage {stage} of Api {ns}/{api}: {percent}% of requests to {id}, the rest to {main}"
    )?;
    apply_stage_patch(
        client,
        &the_stage,
        &canary_patch(&id, percent),
        dry_run,
        out,
    )
    .await
}

/// `causeway promote`: the stage takes its canary's deployment and variable overrides; the canary
/// is removed.
pub async fn promote(
    client: &Client,
    ns: &str,
    api: &str,
    stage: &str,
    dry_run: bool,
    out: &mut impl Write,
) -> OpsResult {
    let the_stage = find_stage(client, ns, api, stage).await?;
    let patch = promote_patch(&the_stage).ok_or_else(|| {
        OpsError::Refused(format!(
            "stage {stage} of Api {ns}/{api} (Stage {}) has no canary to promote",
            the_stage.name_any()
        ))
    })?;
    if let Some(c) = &the_stage.spec.canary {
        writeln!(
            out,
            "stage {stage} of Api {ns}/{api}: promoting canary {} ({}% of traffic) to 100%, replacing {}",
            c.deployment_id,
            c.percent_traffic,
            served_id(&the_stage).unwrap_or_else(|| "none".into())
        )?;
    }
    apply_stage_patch(client, &the_stage, &patch, dry_run, out).await
}
