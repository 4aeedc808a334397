//! Writing statuses and Events: the I/O half of [`crate::status`].
//!
//! A status is patched (JSON merge patch on the `status` subresource, field manager
//! [`FIELD_MANAGER`]) only when the desired status differs from the object's current one. Merge
//! patch, not server-side apply: Kubernetes 1.20 answers an apply patch holding a field its
//! schema lacks with HTTP 500, and merge patches behave the same on every version. The writer
//! also remembers what it last wrote, so a store that lags behind its own write (or a field
//! the server prunes) never causes a second identical patch.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use causeway_compile::{Inventory, Kind, ObjectStatus};
use causeway_crds::api::DeploymentSummary;
use causeway_crds::{Api, Authorizer, Route, Stage, UsagePlan, VpcLink};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{debug, warn};

use crate::status::{self, Extras, Rollout};
use crate::usage::{self, PlanRollup};
use causeway_crds::usage_plan::FailMode;

/// The field manager of every write of the controller.
pub const FIELD_MANAGER: &str = "causeway-controller";

/// One object as the writer needs it.
#[derive(Debug, Clone)]
struct Current {
    status: Option<Value>,
    reference: ObjectReference,
}

type Key = (Kind, String, String);

/// Patches statuses and publishes Events.
pub struct StatusWriter {
    client: Client,
    recorder: Option<Recorder>,
    written: HashMap<Key, Value>,
    /// The latest usage rollup by plan id (see [`crate::usage`]); `None` until the first one.
    usage: Option<BTreeMap<String, PlanRollup>>,
}

impl std::fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWriter")
            .field("written", &self.written.len())
            .finish_non_exhaustive()
    }
}

/// What one [`StatusWriter::write`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Statuses patched.
    pub patched: usize,
    /// Patches that failed (logged; retried on the next pass).
    pub failed: usize,
}

impl StatusWriter {
    /// A writer; `recorder` is `None` to publish no Events (tests).
    pub fn new(client: Client, recorder: Option<Recorder>) -> Self {
        Self {
            client,
            recorder,
            written: HashMap::new(),
            usage: None,
        }
    }

    /// Sets the usage rollup that the next [`StatusWriter::write`] puts into `UsagePlan`
    /// statuses (`counting`, `usage`, `QuotaStoreAvailable`). Until the first call those parts
    /// are left as they are. An empty rollup (no proxy reported today) changes nothing either.
    pub fn set_usage(&mut self, rollup: BTreeMap<String, PlanRollup>) {
        if !rollup.is_empty() {
            self.usage = Some(rollup);
        }
    }

    /// Forgets what was written (on becoming leader: another replica may have written since).
    pub fn forget(&mut self) {
        self.written.clear();
    }

    /// Brings every object's status in line with `statuses`.
    pub async fn write(
        &mut self,
        inventory: &Inventory,
        statuses: &[ObjectStatus],
        rollout: &Rollout,
        deployments: &BTreeMap<String, Vec<DeploymentSummary>>,
        now: &str,
    ) -> WriteReport {
        let current = index(inventory);
        let fail_modes: HashMap<String, Option<FailMode>> = inventory
            .usage_plans
            .iter()
            .map(|p| {
                let ns = p.namespace().unwrap_or_else(|| "default".into());
                (format!("{ns}/{}", p.name_any()), p.spec.fail_mode)
            })
            .collect();
        let mut report = WriteReport::default();
        for object in statuses {
            let key = (object.kind, object.namespace.clone(), object.name.clone());
            let Some(cur) = current.get(&key) else {
                continue;
            };
            let api_id = format!("{}/{}", object.namespace, object.name);
            let usage = (object.kind == Kind::UsagePlan)
                .then(|| self.usage.as_ref()?.get(&api_id))
                .flatten()
                .map(|rollup| {
                    usage::plan_status(rollup, fail_modes.get(&api_id).copied().flatten())
                });
            let extras = Extras {
                deployments: deployments.get(&api_id).map(Vec::as_slice).unwrap_or(&[]),
                usage: usage.as_ref(),
            };
            let desired = status::desired(cur.status.as_ref(), object, rollout, &extras, now);
            let Some(patch) = status::merge_patch(cur.status.as_ref(), &desired) else {
                self.written.insert(key, desired);
                continue;
            };
            if self.written.get(&key) == Some(&desired) {
                continue;
            }
            match self
                .patch(object.kind, &object.namespace, &object.name, &patch)
                .await
            {
                Ok(()) => {
                    debug!(kind = object.kind.as_str(), object = %api_id, "status patched");
                    report.patched += 1;
                    for c in status::new_rejections(cur.status.as_ref(), &desired) {
                        self.event(&cur.reference, &c.reason, &c.message).await;
                    }
                    self.written.insert(key, desired);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    warn!(kind = object.kind.as_str(), object = %api_id, "cannot patch status: {e}");
                    report.failed += 1;
                }
            }
        }
        report
    }

    async fn patch(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        body: &Value,
    ) -> Result<(), kube::Error> {
        match kind {
            Kind::Api => patch::<Api>(&self.client, ns, name, body).await,
            Kind::Route => patch::<Route>(&self.client, ns, name, body).await,
            Kind::Stage => patch::<Stage>(&self.client, ns, name, body).await,
            Kind::UsagePlan => patch::<UsagePlan>(&self.client, ns, name, body).await,
            Kind::Authorizer => patch::<Authorizer>(&self.client, ns, name, body).await,
            Kind::VpcLink => patch::<VpcLink>(&self.client, ns, name, body).await,
        }
    }

    async fn event(&self, reference: &ObjectReference, reason: &str, message: &str) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.to_string(),
            note: Some(message.chars().take(1000).collect()),
            action: "Compile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, reference).await {
            warn!(
                object = reference.name.as_deref().unwrap_or(""),
                "cannot publish event: {e}"
            );
        }
    }
}

async fn patch<K>(client: &Client, ns: &str, name: &str, body: &Value) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    kube::Api::<K>::namespaced(client.clone(), ns)
        .patch_status(name, &params, &Patch::Merge(body))
        .await
        .map(|_| ())
}

fn index(inventory: &Inventory) -> HashMap<Key, Current> {
    let mut out = HashMap::new();
    add(&mut out, Kind::Api, &inventory.apis, |o| &o.status);
    add(&mut out, Kind::Route, &inventory.routes, |o| &o.status);
    add(&mut out, Kind::Stage, &inventory.stages, |o| &o.status);
    add(&mut out, Kind::UsagePlan, &inventory.usage_plans, |o| {
        &o.status
    });
    add(&mut out, Kind::Authorizer, &inventory.authorizers, |o| {
        &o.status
    });
    add(&mut out, Kind::VpcLink, &inventory.vpc_links, |o| &o.status);
    out
}

fn add<K, S>(
    out: &mut HashMap<Key, Current>,
    kind: Kind,
    objects: &[K],
    status: impl Fn(&K) -> &Option<S>,
) where
    K: Resource<DynamicType = ()>,
    S: Serialize,
{
    for o in objects {
        let ns = o.namespace().unwrap_or_else(|| "default".into());
        let name = o.name_any();
        let current = Current {
            status: status(o)
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok()),
            reference: o.object_ref(&()),
        };
        out.insert((kind, ns, name), current);
    }
}
