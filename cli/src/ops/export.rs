//! Reading what `causeway export` needs from the cluster: the Api, its Routes and Authorizers,
//! and the URL of a stage.

use causeway_crds::{Api, Authorizer, Route, Stage};
use kube::Client;
use kube::api::ListParams;

use super::{OpsError, OpsResult, get_api, stage_name, stages_of};

/// The objects of one Api as the cluster holds them. Routes and Authorizers whose
/// `Accepted` condition is `False` are left out: the export describes what is served.
#[derive(Debug)]
pub struct ApiObjects {
    /// The Api.
    pub api: Api,
    /// Its accepted Routes.
    pub routes: Vec<Route>,
    /// Its accepted Authorizers.
    pub authorizers: Vec<Authorizer>,
    /// Its Stages.
    pub stages: Vec<Stage>,
}

/// Reads the Api `ns/name` and the objects that belong to it.
pub async fn api_objects(client: &Client, ns: &str, name: &str) -> OpsResult<ApiObjects> {
    let api = get_api(client, ns, name).await?;
    let routes = kube::Api::<Route>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|source| OpsError::Kube {
            what: format!("cannot list Routes in {ns}"),
            source,
        })?
        .items
        .into_iter()
        .filter(|r| {
            r.spec.api_ref.name == name && !rejected(r.status.as_ref().map(|s| &s.conditions))
        })
        .collect();
    let authorizers = kube::Api::<Authorizer>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|source| OpsError::Kube {
            what: format!("cannot list Authorizers in {ns}"),
            source,
        })?
        .items
        .into_iter()
        .filter(|a| {
            a.spec.api_ref.name == name && !rejected(a.status.as_ref().map(|s| &s.conditions))
        })
        .collect();
    let stages = stages_of(client, ns, name).await?;
    Ok(ApiObjects {
        api,
        routes,
        authorizers,
        stages,
    })
}

impl ApiObjects {
    /// The first URL of the stage named `stage` (from its status), if any.
    pub fn stage_url(&self, stage: &str) -> Option<String> {
        self.stages
            .iter()
            .find(|s| stage_name(s) == stage)
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.urls.first().cloned())
    }
}

fn rejected(conditions: Option<&Vec<causeway_crds::Condition>>) -> bool {
    conditions.is_some_and(|c| {
        c.iter()
            .any(|c| c.type_ == "Accepted" && c.status == "False")
    })
}
