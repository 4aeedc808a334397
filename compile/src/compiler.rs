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
pub(crate) mod memo;
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
use std::sync::Arc;

use causeway_crds::Condition;
use causeway_crds::common::condition_type;
use causeway_snapshot::Snapshot;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::status::{Kind, ObjectStatus, StatusDetail};
use crate::{CompileOptions, Compiled, DeploymentRecord, Inventory, reasons};
use memo::Fp;
pub(crate) use memo::Memo;

/// One compile: `memo` holds what earlier compiles made and is updated with what this one made
/// (see [`memo`]); with an empty memo this is the full compile.
pub(crate) fn run(inventory: &Inventory, options: &CompileOptions, memo: &mut Memo) -> Compiled {
    let (expanded, definitions) = definition::expand(inventory);
    let input = Input::new(&expanded);
    let inventory = &input;
    let mut statuses = Vec::new();

    // What routes read besides themselves (their Api, authorizers, Services, grants, Secrets
    // through authorizers), and what stages read besides their own deployment.
    let mut fp = Fp::default();
    fp.add(options_fp(options))
        .objects(&inventory.apis, |o| &o.metadata)
        .objects(&inventory.authorizers, |o| &o.metadata)
        .objects(&inventory.vpc_links, |o| &o.metadata)
        .objects(&inventory.services, |o| &o.metadata)
        .objects(&inventory.secrets, |o| &o.metadata)
        .objects(&inventory.config_maps, |o| &o.metadata);
    let route_context = fp.finish();
    // The deployment history is not in here: each Stage's key holds what it reads of it (the
    // records of the ids it pins), so a new record (every edit of an auto-deployed Api makes
    // one) recompiles no Stage that does not pin it.
    fp.objects(&inventory.endpoint_slices, |o| &o.metadata);
    let stage_context = fp.finish();

    let cluster = backend::Cluster::new(inventory, options, &mut statuses);
    let mut apis = api::compile_apis(inventory);
    let authorizers =
        authorizer::compile_authorizers(inventory, options, &apis, &cluster, &mut statuses);
    api::resolve_connections_authorizers(&mut apis, &authorizers);
    let routes = route::compile_routes(
        inventory,
        &apis,
        &cluster,
        &authorizers,
        route_context,
        &mut memo.routes,
        !memo.one_shot,
    );
    let route_statuses: usize = routes.values().map(|r| r.statuses.len()).sum();
    statuses.reserve(
        route_statuses
            + inventory.stages.len()
            + inventory.usage_plans.len()
            + inventory.apis.len(),
    );
    let mut route_counts = BTreeMap::new();
    let mut current = BTreeMap::new();
    for (key, compiled) in routes {
        // Shared with the memo: copied; a one-shot compile owns it and moves its statuses.
        let (route_count, deployment) = match Arc::try_unwrap(compiled) {
            Ok(owned) => {
                statuses.extend(owned.statuses);
                (owned.route_count, owned.deployment)
            }
            Err(shared) => {
                statuses.extend(shared.statuses.iter().cloned());
                (shared.route_count, shared.deployment.clone())
            }
        };
        if let Some(d) = deployment {
            route_counts.insert(key.clone(), route_count);
            current.insert(key, d);
        }
    }
    let deployments = deployment::Deployments { current };
    let stages = stage::compile_stages(
        inventory,
        options,
        &apis,
        &deployments,
        &cluster,
        stage_context,
        (!memo.one_shot).then_some(&mut memo.stages),
    );
    statuses.extend(stages.statuses);
    let mut fp = Fp::default();
    fp.add(route_context)
        .objects(&inventory.usage_plans, |o| &o.metadata);
    for stage in &stages.stages {
        fp.add(&stage.id);
    }
    let plans_key = fp.finish();
    let (usage_plans, plan_digests) = match &memo.usage_plans {
        Some((key, plans, plan_statuses, digests)) if *key == plans_key => {
            statuses.extend(plan_statuses.iter().cloned());
            (plans.clone(), digests.clone())
        }
        _ => {
            let mut plan_statuses = Vec::new();
            let plans = usage_plan::compile_usage_plans(
                inventory,
                &apis,
                &stages.stages,
                &mut plan_statuses,
            );
            statuses.extend(plan_statuses.iter().cloned());
            let digests: Vec<_> = plans.iter().map(causeway_snapshot::part_digest).collect();
            if !memo.one_shot {
                memo.usage_plans = Some((plans_key, plans.clone(), plan_statuses, digests.clone()));
            }
            (plans, digests)
        }
    };
    let mut backends = stages.backends;
    backends.extend(authorizers.values().filter_map(|a| a.backend.clone()));
    let records: BTreeMap<ObjKey, DeploymentRecord> = deployments
        .current
        .iter()
        .map(|(k, d)| (k.clone(), d.1.clone()))
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
    .seal_with_digests(&stages.stage_digests, &plan_digests);
    Compiled {
        snapshot,
        statuses,
        deployments: records.into_values().collect(),
    }
}

fn options_fp(options: &CompileOptions) -> u64 {
    let mut fp = Fp::default();
    fp.add(&options.execute_api_domain)
        .add(&options.cluster_domain)
        .add(&options.service_account_issuer)
        .add(&options.service_account_jwks);
    fp.finish()
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

/// [`age`] as a comparison, without copying names.
pub(crate) fn age_cmp(a: &ObjectMeta, b: &ObjectMeta) -> std::cmp::Ordering {
    a.creation_timestamp
        .cmp(&b.creation_timestamp)
        .then_with(|| {
            a.name
                .as_deref()
                .unwrap_or("")
                .cmp(b.name.as_deref().unwrap_or(""))
        })
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
