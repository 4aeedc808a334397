//! The compiler proper: reads an [`Inventory`] in a fixed order and produces the snapshot,
//! the statuses and the deployment records.
//!
//! Order of work (each step only reads the results of earlier ones):
//! 0. Api definitions (OpenAPI documents) are imported into Routes and Authorizers,
//! 1. VpcLinks (grants for cross-namespace backends),
//! 2. Apis (settings, gateway responses),
//! 3. Routes per Api (keys, duplicates, conflicts, integrations) → deployment definitions,
//! 4. Stages (deployment choice, materialization, custom domains) → stages, hosts, backends,
//! 5. UsagePlans (API keys hashed from Secrets). Authorizers are compiled before Routes, which
//!    name them.
//!
//! Wherever two objects compete (same route key, same stage name, same domain), the older one
//! (by `creationTimestamp`, then name) wins, so adding an object never breaks a working one.

mod api;
mod authorizer;
mod backend;
mod cache;
mod cel;
mod definition;
mod deployment;
mod mapping;
mod preflight;
mod route;
mod stage;
mod templates;
mod text;
mod tls;
mod usage_plan;
mod validation;
mod websocket;

use std::collections::{BTreeMap, HashMap};

use causeway_crds::Condition;
use causeway_crds::common::condition_type;
use causeway_snapshot::Snapshot;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::status::{Kind, ObjectStatus, StatusDetail};
use crate::{CompileOptions, Compiled, Inventory, reasons};

pub(crate) fn run(inventory: &Inventory, options: &CompileOptions) -> Compiled {
    let (expanded, definitions) = definition::expand(inventory);
    let input = Input::new(&expanded);
    let inventory = &input;
    let mut statuses = Vec::new();
    let cluster = backend::Cluster::new(inventory, options, &mut statuses);
    let mut apis = api::compile_apis(inventory);
    let authorizers =
        authorizer::compile_authorizers(inventory, options, &apis, &cluster, &mut statuses);
    api::resolve_connections_authorizers(&mut apis, &authorizers);
    let routes = route::compile_routes(inventory, &apis, &cluster, &authorizers, &mut statuses);
    let deployments = deployment::current(&apis, &routes);
    let stages = stage::compile_stages(inventory, options, &apis, &deployments, &cluster);
    statuses.extend(stages.statuses);
    let usage_plans =
        usage_plan::compile_usage_plans(inventory, &apis, &stages.stages, &mut statuses);
    let mut backends = stages.backends;
    backends.extend(authorizers.values().filter_map(|a| a.backend.clone()));
    let route_counts = routes
        .iter()
        .map(|(k, r)| (k.clone(), u32::try_from(r.len()).unwrap_or(u32::MAX)))
        .collect();
    let records = deployments
        .current
        .into_iter()
        .map(|(k, (_, record))| (k, record))
        .collect();
    statuses.extend(api::statuses(&apis, &records, &route_counts));
    definition::apply_statuses(&mut statuses, &definitions, &inventory.apis);
    statuses.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));

    let snapshot = Snapshot {
        version: String::new(),
        apis: apis
            .values()
            .filter_map(|a| a.compiled.as_ref().ok().map(|c| c.config.clone()))
            .collect(),
        stages: stages.stages,
        hosts: stages.hosts,
        backends,
        usage_plans,
        authorizers: authorizers
            .into_values()
            .map(|a| (a.config.id.clone(), a.config))
            .collect(),
        certificates: stages.certificates,
    }
    .seal();
    Compiled {
        snapshot,
        statuses,
        deployments: records.into_values().collect(),
    }
}

/// The inventory with the indexes the steps look things up in (a Secret by name is looked up
/// once per API key: a plan with 100,000 keys must not scan 100,000 Secrets each time).
pub(crate) struct Input<'i> {
    inventory: &'i Inventory,
    /// Secrets by `(namespace, name)`; the first of two with the same name wins, as before.
    secret_index: HashMap<(&'i str, &'i str), &'i Secret>,
}

impl<'i> Input<'i> {
    fn new(inventory: &'i Inventory) -> Self {
        let mut secrets = HashMap::with_capacity(inventory.secrets.len());
        for secret in &inventory.secrets {
            let namespace = secret.metadata.namespace.as_deref().unwrap_or("default");
            let name = secret.metadata.name.as_deref().unwrap_or_default();
            secrets.entry((namespace, name)).or_insert(secret);
        }
        Self {
            inventory,
            secret_index: secrets,
        }
    }

    /// The Secret `namespace/name`.
    pub(crate) fn secret(&self, namespace: &str, name: &str) -> Option<&'i Secret> {
        self.secret_index.get(&(namespace, name)).copied()
    }
}

impl std::ops::Deref for Input<'_> {
    type Target = Inventory;
    fn deref(&self) -> &Inventory {
        self.inventory
    }
}

/// `(namespace, name)` of an object; the key of every index here.
pub(crate) type ObjKey = (String, String);

/// The namespace and name of an object (`default` when the namespace is unset).
pub(crate) fn obj_key(meta: &ObjectMeta) -> ObjKey {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Sort key "older first": creation time (unset first, as in files), then name.
pub(crate) fn age(meta: &ObjectMeta) -> (Option<Time>, String) {
    (
        meta.creation_timestamp.clone(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Which condition a problem turns `False`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cond {
    /// The object itself is wrong.
    Accepted,
    /// Something it names is missing or may not be used.
    ResolvedRefs,
}

/// Why an object is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The condition it sets to `False`.
    pub cond: Cond,
    /// A constant from [`reasons`].
    pub reason: &'static str,
    /// What is wrong, naming the field.
    pub message: String,
}

impl Problem {
    /// An `Accepted=False` problem.
    pub(crate) fn invalid(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            cond: Cond::Accepted,
            reason,
            message: message.into(),
        }
    }

    /// A `ResolvedRefs=False` problem.
    pub(crate) fn unresolved(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            cond: Cond::ResolvedRefs,
            reason,
            message: message.into(),
        }
    }
}

/// Builds the status of one object: the first problem of each condition is kept.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    accepted: Option<Problem>,
    resolved: Option<Problem>,
    /// Things that are allowed but probably not meant, appended to the `Accepted=True` message.
    warnings: Vec<String>,
    /// Facts worth knowing about an accepted object, appended to its `Accepted` message.
    notes: Vec<String>,
}

impl Verdict {
    /// Records a problem (the first of each condition wins).
    pub(crate) fn add(&mut self, problem: Problem) {
        let slot = match problem.cond {
            Cond::Accepted => &mut self.accepted,
            Cond::ResolvedRefs => &mut self.resolved,
        };
        if slot.is_none() {
            *slot = Some(problem);
        }
    }

    /// Records the problem of a result, if any.
    pub(crate) fn check<T>(&mut self, result: Result<T, Problem>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(problem) => {
                self.add(problem);
                None
            }
        }
    }

    /// Records a warning: the object is accepted, and its `Accepted` message says this too.
    pub(crate) fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// Records a note for the `Accepted=True` message.
    pub(crate) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// No problem so far.
    pub(crate) fn is_ok(&self) -> bool {
        self.accepted.is_none() && self.resolved.is_none()
    }

    /// The status with both conditions.
    pub(crate) fn into_status(
        self,
        kind: Kind,
        meta: &ObjectMeta,
        detail: StatusDetail,
    ) -> ObjectStatus {
        let (namespace, name) = obj_key(meta);
        let generation = meta.generation;
        let condition = |type_: &str, ok_reason: &str, ok_message: String, p: Option<Problem>| {
            let (status, reason, message) = match p {
                None => ("True", ok_reason.to_string(), ok_message),
                Some(p) => (
                    "False",
                    p.reason.to_string(),
                    format!("{} {namespace}/{name}: {}", kind.as_str(), p.message),
                ),
            };
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason,
                message,
                observed_generation: generation,
                last_transition_time: None,
            }
        };
        let accepted = self.accepted.is_none();
        let mut valid = format!("{} {namespace}/{name} is valid", kind.as_str());
        for note in &self.notes {
            valid.push_str("; ");
            valid.push_str(note);
        }
        for warning in &self.warnings {
            valid.push_str("; warning: ");
            valid.push_str(warning);
        }
        let conditions = vec![
            condition(
                condition_type::ACCEPTED,
                reasons::ACCEPTED,
                valid,
                self.accepted,
            ),
            condition(
                condition_type::RESOLVED_REFS,
                reasons::RESOLVED_REFS,
                format!(
                    "every reference of {} {namespace}/{name} resolved",
                    kind.as_str()
                ),
                self.resolved,
            ),
        ];
        let detail = if accepted && conditions.iter().all(|c| c.status == "True") {
            detail
        } else {
            StatusDetail::None
        };
        ObjectStatus {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
            generation,
            conditions,
            detail,
        }
    }
}

/// Api lookups shared by the later steps, keyed by `(namespace, name)`.
pub(crate) type Apis = BTreeMap<ObjKey, api::ApiEntry>;

/// The "Api not found" problem for an object of `namespace` naming Api `name`.
pub(crate) fn api_ref_problem(apis: &Apis, namespace: &str, name: &str) -> Option<Problem> {
    match apis.get(&(namespace.to_string(), name.to_string())) {
        None => Some(Problem::unresolved(
            reasons::API_NOT_FOUND,
            format!("spec.apiRef: Api {namespace}/{name} does not exist"),
        )),
        Some(entry) if entry.compiled.is_err() => Some(Problem::unresolved(
            reasons::API_NOT_FOUND,
            format!("spec.apiRef: Api {namespace}/{name} is not accepted"),
        )),
        Some(_) => None,
    }
}
