//! Per-object results of a compilation.

use causeway_crds::Condition;
use serde::Serialize;

/// The six Causeway kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    /// `Api`.
    Api,
    /// `Route`.
    Route,
    /// `Stage`.
    Stage,
    /// `UsagePlan`.
    UsagePlan,
    /// `Authorizer`.
    Authorizer,
    /// `VpcLink`.
    VpcLink,
}

impl Kind {
    /// The kind as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Api => "Api",
            Kind::Route => "Route",
            Kind::Stage => "Stage",
            Kind::UsagePlan => "UsagePlan",
            Kind::Authorizer => "Authorizer",
            Kind::VpcLink => "VpcLink",
        }
    }
}

/// The status `compile` computed for one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    /// Kind of the object.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.generation` the status was computed from.
    pub generation: Option<i64>,
    /// `Accepted` and `ResolvedRefs` (the controller adds `Programmed` and `Ready`), without
    /// transition times (compile has no clock).
    pub conditions: Vec<Condition>,
    /// Kind-specific facts for the status.
    pub detail: StatusDetail,
}

impl ObjectStatus {
    /// Whether the object was taken into the snapshot (`Accepted=True` and `ResolvedRefs=True`).
    pub fn is_accepted(&self) -> bool {
        !self.conditions.is_empty() && self.conditions.iter().all(|c| c.status == "True")
    }

    /// The first condition that is not `True`, if any.
    pub fn problem(&self) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.status != "True")
    }
}

/// Kind-specific status facts.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum StatusDetail {
    /// Nothing beyond conditions.
    #[default]
    None,
    /// An Api's newest deployment.
    Api {
        /// Deployment id of the Api as compiled now.
        latest_deployment_id: String,
        /// Routes in it.
        route_count: u32,
    },
    /// What a Stage serves.
    Stage {
        /// Its id in the snapshot (`namespace/api/stage`), which proxies name it by.
        stage_id: String,
        /// URLs reaching the stage.
        urls: Vec<String>,
        /// Deployment served.
        deployment_id: String,
        /// Canary deployment, if any.
        canary_deployment_id: Option<String>,
    },
    /// A SERVICE_ACCOUNT authorizer's keys.
    ServiceAccount {
        /// `Secret` or `APIServer`.
        source: String,
        /// The Secret (`namespace/name`) for source `Secret`.
        secret: Option<String>,
        /// The issuer tokens must carry.
        issuer: String,
        /// Key ids in the JWKS, sorted.
        key_ids: Vec<String>,
    },
    /// A usage plan's keys.
    UsagePlan {
        /// Keys resolved.
        key_count: u32,
    },
}
