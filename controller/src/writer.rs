//! Writing statuses and Events: the I/O half of [`crate::status`].
//!
//! A status is written (on the `status` subresource, field manager [`FIELD_MANAGER`]) only when
//! the desired status differs from the object's current one, in one of two ways chosen by
//! [`PatchMode::for_server`] from the server's version:
//! - server-side apply (Kubernetes 1.22 and later): the whole desired status, forced, so that the
//!   controller owns exactly the status fields it writes and no `spec` field ever;
//! - JSON merge patch of the difference (older servers): Kubernetes 1.20 answers an apply patch
//!   holding a field its schema lacks with HTTP 500 (server-side apply was beta there).
//!
//! The writer also remembers what it last wrote, so a store that lags behind its own write (or a
//! field the server prunes) never causes a second identical patch.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use futures_util::StreamExt;

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
/// Status PATCHes in flight at once (client-go's default QPS budget is of the same order).
const PATCH_CONCURRENCY: usize = 16;

/// One object as the writer needs it.
#[derive(Debug, Clone)]
struct Current {
    status: Option<Value>,
    reference: ObjectReference,
}

type Key = (Kind, String, String);

/// A status write decided and not yet sent.
struct Pending<'a> {
    key: Key,
    api_id: String,
    cur: &'a Current,
    desired: Value,
    body: Value,
}

/// How statuses are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PatchMode {
    /// JSON merge patch of the difference (every server version).
    #[default]
    Merge,
    /// Server-side apply of the whole status, forced (Kubernetes 1.22+).
    Apply,
}

impl PatchMode {
    /// The mode for a server of this version (`major`, `minor` as the version endpoint gives
    /// them: `"1"`, `"22+"`): apply from 1.22 (server-side apply GA, with the fixes that make a
    /// status apply safe), merge patch before and when the version cannot be read.
    pub fn for_server(major: &str, minor: &str) -> Self {
        let number = |s: &str| {
            s.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse::<u32>()
                .ok()
        };
        match (number(major), number(minor)) {
            (Some(major), Some(minor)) if (major, minor) >= (1, 22) => Self::Apply,
            _ => Self::Merge,
        }
    }

    /// Asks the server its version (discovery) and chooses.
    pub async fn discover(client: &Client) -> Self {
        match client.apiserver_version().await {
            Ok(info) => Self::for_server(&info.major, &info.minor),
            Err(e) => {
                warn!("cannot read the server version ({e}); writing statuses with merge patches");
                Self::Merge
            }
        }
    }
}

/// Patches statuses and publishes Events.
pub struct StatusWriter {
    client: Client,
    mode: PatchMode,
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
            mode: PatchMode::Merge,
            recorder,
            written: HashMap::new(),
            usage: None,
        }
    }

    /// Writes with `mode` from now on.
    pub fn with_mode(mut self, mode: PatchMode) -> Self {
        self.mode = mode;
        self
    }

    /// The mode statuses are written with.
    pub fn mode(&self) -> PatchMode {
        self.mode
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
        // What must be written, decided first; the PATCHes then go out concurrently (a change
        // that touches the status of a thousand objects must not take a thousand round trips
        // one after another), and what they did is recorded afterwards.
        let mut pending = Vec::new();
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
            let body = match self.mode {
                PatchMode::Merge => patch,
                PatchMode::Apply => desired.clone(),
            };
            pending.push(Pending {
                key,
                api_id,
                cur,
                desired,
                body,
            });
        }
        let this = &*self;
        // A list of futures, not a mapped iterator: the closure type in a `Map` trips the
        // `Send` check of the spawned controller loop (a higher-ranked lifetime).
        let writes: Vec<_> = pending.into_iter().map(|w| this.patch_one(w)).collect();
        let results: Vec<_> = futures_util::stream::iter(writes)
            .buffer_unordered(PATCH_CONCURRENCY)
            .collect()
            .await;
        for (
            Pending {
                key,
                api_id,
                cur,
                desired,
                ..
            },
            result,
        ) in results
        {
            let kind = key.0;
            match result {
                Ok(()) => {
                    debug!(kind = kind.as_str(), object = %api_id, "status patched");
                    report.patched += 1;
                    for c in status::new_rejections(cur.status.as_ref(), &desired) {
                        self.event(&cur.reference, &c.reason, &c.message).await;
                    }
                    self.written.insert(key, desired);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    warn!(kind = kind.as_str(), object = %api_id, "cannot patch status: {e}");
                    report.failed += 1;
                }
            }
        }
        report
    }

    /// One status PATCH, handed back with what it wrote.
    async fn patch_one<'a>(&self, write: Pending<'a>) -> (Pending<'a>, Result<(), kube::Error>) {
        let (kind, ns, name) = &write.key;
        let result = self.patch(*kind, ns, name, &write.body).await;
        (write, result)
    }

    async fn patch(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        body: &Value,
    ) -> Result<(), kube::Error> {
        let (c, m) = (&self.client, self.mode);
        match kind {
            Kind::Api => patch::<Api>(c, m, ns, name, body).await,
            Kind::Route => patch::<Route>(c, m, ns, name, body).await,
            Kind::Stage => patch::<Stage>(c, m, ns, name, body).await,
            Kind::UsagePlan => patch::<UsagePlan>(c, m, ns, name, body).await,
            Kind::Authorizer => patch::<Authorizer>(c, m, ns, name, body).await,
            Kind::VpcLink => patch::<VpcLink>(c, m, ns, name, body).await,
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

/// Writes `body` to the status of `ns/name`: a merge patch, or (apply) the whole status.
async fn patch<K>(
    client: &Client,
    mode: PatchMode,
    ns: &str,
    name: &str,
    body: &Value,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api = kube::Api::<K>::namespaced(client.clone(), ns);
    match mode {
        PatchMode::Merge => {
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            api.patch_status(name, &params, &Patch::Merge(body)).await
        }
        PatchMode::Apply => {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let apply = serde_json::json!({
                "apiVersion": K::api_version(&()),
                "kind": K::kind(&()),
                "metadata": {"name": name, "namespace": ns},
                "status": body,
            });
            api.patch_status(name, &params, &Patch::Apply(&apply)).await
        }
    }
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

#[cfg(test)]
mod tests {
    use super::PatchMode;

    #[test]
    fn servers_from_1_22_get_server_side_apply_and_older_ones_merge_patches() {
        for (major, minor, mode) in [
            ("1", "20", PatchMode::Merge),
            ("1", "21+", PatchMode::Merge),
            ("1", "22", PatchMode::Apply),
            ("1", "22+", PatchMode::Apply),
            ("1", "33", PatchMode::Apply),
            ("2", "0", PatchMode::Apply),
            ("", "", PatchMode::Merge),
            ("one", "x", PatchMode::Merge),
        ] {
            assert_eq!(PatchMode::for_server(major, minor), mode, "{major}.{minor}");
        }
    }
}
