//! Operator commands of the release lifecycle (`history`, `status`, `get-url`, `diff`, `deploy`,
//! `rollback`, `canary`, `promote`), talking to the API server with a [`kube::Client`].
//!
//! Each command takes the client, the namespace and a writer for its output, so that tests can
//! run it against a mock API server and read what it printed. Mutating commands only ever change
//! a Stage's `spec` with one JSON merge patch, print that patch first (so a GitOps user can make
//! the same change in Git), and with `dry_run` stop there.

mod export;
mod read;
mod release;

use std::io::Write;
use std::sync::Arc;

use causeway_controller::history::{self, API_LABEL};
use causeway_crds::api::DeploymentSummary;
use causeway_crds::{Api, Stage};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

pub use export::{ApiObjects, api_objects};
pub use read::{diff, get_url, history, status};
pub use release::{
    canary, canary_patch, deploy, deploy_patch, promote, promote_patch, rollback, rollback_patch,
};

/// The field manager recorded on the API server for the CLI's patches.
pub const FIELD_MANAGER: &str = "causeway-cli";

/// Errors of the operator commands.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The API server refused or failed a request.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done, naming the object.
        what: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The Api does not exist.
    #[error("Api {namespace}/{name} not found")]
    ApiNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// No Stage of the Api has that stage name.
    #[error("Api {namespace}/{api} has no stage {stage} (stages: {known})")]
    StageNotFound {
        /// Namespace.
        namespace: String,
        /// The Api.
        api: String,
        /// The stage name asked for.
        stage: String,
        /// The stage names that exist, comma-separated.
        known: String,
    },
    /// The command cannot be carried out as asked; the message says why.
    #[error("{0}")]
    Refused(String),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Result of an operator command.
pub type OpsResult<T = ()> = Result<T, OpsError>;

/// The stage name of a Stage: `spec.stageName`, else `metadata.name`.
pub fn stage_name(stage: &Stage) -> String {
    stage
        .spec
        .stage_name
        .clone()
        .unwrap_or_else(|| stage.name_any())
}

/// Reads the Api `ns/name`.
pub(crate) async fn get_api(client: &Client, ns: &str, name: &str) -> OpsResult<Api> {
    let apis = kube::Api::<Api>::namespaced(client.clone(), ns);
    match apis.get_opt(name).await {
        Ok(Some(api)) => Ok(api),
        Ok(None) => Err(OpsError::ApiNotFound {
            namespace: ns.to_string(),
            name: name.to_string(),
        }),
        Err(source) => Err(OpsError::Kube {
            what: format!("cannot read Api {ns}/{name}"),
            source,
        }),
    }
}

/// The Stages of the Api `ns/api`, sorted by stage name.
pub(crate) async fn stages_of(client: &Client, ns: &str, api: &str) -> OpsResult<Vec<Stage>> {
    let stages = kube::Api::<Stage>::namespaced(client.clone(), ns);
    let list = stages
        .list(&ListParams::default())
        .await
        .map_err(|source| OpsError::Kube {
            what: format!("cannot list Stages in namespace {ns}"),
            source,
        })?;
    let mut out: Vec<Stage> = list
        .items
        .into_iter()
        .filter(|s| s.spec.api_ref.name == api)
        .collect();
    out.sort_by_key(stage_name);
    Ok(out)
}

/// The Stage of the Api `ns/api` whose stage name is `stage`.
pub(crate) async fn find_stage(
    client: &Client,
    ns: &str,
    api: &str,
    stage: &str,
) -> OpsResult<Stage> {
    let stages = stages_of(client, ns, api).await?;
    let known: Vec<String> = stages.iter().map(stage_name).collect();
    stages
        .into_iter()
        .find(|s| stage_name(s) == stage)
        .ok_or_else(|| OpsError::StageNotFound {
            namespace: ns.to_string(),
            api: api.to_string(),
            stage: stage.to_string(),
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        })
}

/// The deployment ConfigMaps of the Api `ns/api`.
pub(crate) async fn deployment_config_maps(
    client: &Client,
    ns: &str,
    api: &str,
) -> OpsResult<Vec<ConfigMap>> {
    let cms = kube::Api::<ConfigMap>::namespaced(client.clone(), ns);
    let list = cms
        .list(&ListParams::default().labels(&format!("{API_LABEL}={api}")))
        .await
        .map_err(|source| OpsError::Kube {
            what: format!("cannot list the deployment ConfigMaps of Api {ns}/{api}"),
            source,
        })?;
    Ok(list.items)
}

/// The deployments of an Api, newest first: the ConfigMaps of its history, plus any listed in
/// `Api.status.deployments` whose ConfigMap is gone.
pub(crate) fn merged_history(api: &Api, config_maps: &[ConfigMap]) -> Vec<DeploymentSummary> {
    let arcs: Vec<Arc<ConfigMap>> = config_maps.iter().cloned().map(Arc::new).collect();
    let mut list: Vec<DeploymentSummary> =
        history::summaries(&arcs).into_values().flatten().collect();
    if let Some(status) = &api.status {
        for d in &status.deployments {
            if !list.iter().any(|known| known.id == d.id) {
                list.push(d.clone());
            }
        }
    }
    // Newest first; RFC 3339 times in UTC sort as text (as in the controller's history).
    list.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
    list
}

/// The deployment the stage serves now: `spec.deploymentId`, else (autoDeploy) what the
/// controller reports in `status.deploymentId`.
pub(crate) fn served_id(stage: &Stage) -> Option<String> {
    stage
        .spec
        .deployment_id
        .clone()
        .or_else(|| stage.status.as_ref()?.deployment_id.clone())
}

/// Prints `patch` for the Stage and, unless `dry_run`, applies it as a JSON merge patch.
pub(crate) async fn apply_stage_patch(
    client: &Client,
    stage: &Stage,
    patch: &Value,
    dry_run: bool,
    out: &mut impl Write,
) -> OpsResult {
    let ns = stage.namespace().unwrap_or_default();
    let name = stage.name_any();
    writeln!(
        out,
        "merge patch for Stage {ns}/{name} (the same change in Git: edit its spec):"
    )?;
    writeln!(out, "{patch}")?;
    if dry_run {
        writeln!(out, "dry run: nothing applied")?;
        return Ok(());
    }
    let stages = kube::Api::<Stage>::namespaced(client.clone(), &ns);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    stages
        .patch(&name, &params, &Patch::Merge(patch))
        .await
        .map_err(|source| OpsError::Kube {
            what: format!("cannot patch Stage {ns}/{name}"),
            source,
        })?;
    writeln!(
        out,
        "applied to Stage {ns}/{name}; the controller rolls it out to the proxies (see `causeway status`)"
    )?;
    Ok(())
}
