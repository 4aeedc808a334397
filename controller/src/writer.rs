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
//!
//! In the controller the writer runs in its own task ([`StatusWriter::spawn`]), off the path
//! from compile to the proxies: each pass of the reconciler hands it the latest compile result
//! ([`StatusInput`]) and goes on at once. The task writes from the newest input it has; an input
//! that arrives while it writes replaces the older one, and the writes the older one still
//! needed are recomputed from the newer (coalescing). Acks of proxies wake the task, not the
//! compile, and `Programmed` is decided per object ([`crate::rollout`]): a change writes the
//! statuses of the objects whose compiled status changed, not of every object.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

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
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::push::PushServer;
use crate::rollout::{Changes, RolloutOf, Tracked};
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
    resource_version: Option<String>,
    reference: ObjectReference,
}

type Key = (Kind, String, String);

/// An object found in line with its desired status: what that was decided from. While the
/// object's `resourceVersion`, compiled status and rollout stay the same, it is not looked at
/// again (at 10,000 Routes, deciding every status on every pass costs more than the compile).
#[derive(Debug)]
struct Settled {
    resource_version: Option<String>,
    status: ObjectStatus,
    rollout: Rollout,
}

/// Kinds whose status also depends on facts outside the compiled status and the rollout
/// (deployment history, usage rollups): always decided.
fn has_extras(kind: Kind) -> bool {
    matches!(kind, Kind::Api | Kind::UsagePlan)
}

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
    settled: HashMap<Key, Settled>,
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
    /// Writes not sent because the pass was told to stop (newer input arrived); the next pass
    /// decides them again.
    pub deferred: usize,
}

impl StatusWriter {
    /// A writer; `recorder` is `None` to publish no Events (tests).
    pub fn new(client: Client, recorder: Option<Recorder>) -> Self {
        Self {
            client,
            mode: PatchMode::Merge,
            recorder,
            written: HashMap::new(),
            settled: HashMap::new(),
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
        self.settled.clear();
    }

    /// Brings every object's status in line with `statuses`; `rollout` gives each object's
    /// rollout (one [`Rollout`](crate::status::Rollout) for all, or
    /// [`Tracked`] per object).
    pub async fn write(
        &mut self,
        inventory: &Inventory,
        statuses: &[ObjectStatus],
        rollout: &(impl RolloutOf + Sync),
        deployments: &BTreeMap<String, Vec<DeploymentSummary>>,
        now: &str,
    ) -> WriteReport {
        self.write_until(inventory, statuses, rollout, deployments, now, &|| false)
            .await
    }

    /// [`write`](Self::write) that sends no further PATCH once `stop` returns true (the
    /// PATCHes in flight complete); what was not sent is counted in
    /// [`WriteReport::deferred`].
    pub async fn write_until(
        &mut self,
        inventory: &Inventory,
        statuses: &[ObjectStatus],
        rollout: &(impl RolloutOf + Sync),
        deployments: &BTreeMap<String, Vec<DeploymentSummary>>,
        now: &str,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> WriteReport {
        let started = std::time::Instant::now();
        let rollouts: Vec<Rollout> = statuses.iter().map(|o| rollout.rollout_of(o)).collect();
        // Objects settled from the same compiled status and rollout are skipped unless their
        // `resourceVersion` moved (someone wrote them, or the store caught up with our write).
        let unchanged: HashMap<Key, Option<&str>> = statuses
            .iter()
            .zip(&rollouts)
            .filter(|(o, _)| !has_extras(o.kind))
            .filter_map(|(o, r)| {
                let key = (o.kind, o.namespace.clone(), o.name.clone());
                let settled = self.settled.get(&key)?;
                (settled.status == *o && settled.rollout == *r)
                    .then_some((key, settled.resource_version.as_deref()))
            })
            .collect();
        let current = index(inventory, &unchanged);
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
        let mut settled = Vec::new();
        for (object, object_rollout) in statuses.iter().zip(rollouts) {
            let key = (object.kind, object.namespace.clone(), object.name.clone());
            // Absent: gone from the inventory, or settled and unchanged.
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
            let desired =
                status::desired(cur.status.as_ref(), object, &object_rollout, &extras, now);
            let in_line = |key: Key| {
                let entry = Settled {
                    resource_version: cur.resource_version.clone(),
                    status: object.clone(),
                    rollout: object_rollout.clone(),
                };
                (key, entry)
            };
            let Some(patch) = status::merge_patch(cur.status.as_ref(), &desired) else {
                settled.push(in_line(key.clone()));
                self.written.insert(key, desired);
                continue;
            };
            if self.written.get(&key) == Some(&desired) {
                settled.push(in_line(key));
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
        let decided = current.len();
        self.settled.extend(settled);
        let decided_ms = started.elapsed().as_secs_f64() * 1000.0;
        let to_write = pending.len();
        let this = &*self;
        let mut queue = pending.into_iter();
        let mut in_flight = FuturesUnordered::new();
        let mut results = Vec::new();
        let mut stopped = false;
        let mut launched = 0;
        loop {
            while !stopped && in_flight.len() < PATCH_CONCURRENCY {
                // The first PATCH_CONCURRENCY writes always go out: a pass makes progress even
                // when newer input keeps arriving faster than statuses are decided.
                if launched >= PATCH_CONCURRENCY && stop() {
                    stopped = true;
                    break;
                }
                match queue.next() {
                    Some(write) => {
                        in_flight.push(this.patch_one(write));
                        launched += 1;
                    }
                    None => break,
                }
            }
            match in_flight.next().await {
                Some(result) => results.push(result),
                None => break,
            }
        }
        report.deferred = queue.len();
        drop(in_flight);
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
        debug!(
            objects = statuses.len(),
            decided,
            to_write,
            patched = report.patched,
            deferred = report.deferred,
            decide_ms = decided_ms,
            total_ms = started.elapsed().as_secs_f64() * 1000.0,
            "status pass"
        );
        report
    }

    /// Runs the writer in a task of its own that writes from the newest [`StatusInput`] given
    /// to the returned handle, and again whenever proxies acknowledge, connect or disconnect
    /// (`push`'s [`progress`](PushServer::progress)). After being woken it waits `settle`, so
    /// that the acks following a publish are folded into one pass. The task ends when the
    /// handle is dropped.
    pub fn spawn(self, push: PushServer, settle: Duration) -> StatusTask {
        let (input, input_rx) = watch::channel(None);
        let (usage, usage_rx) = watch::channel(None);
        let (deployments, deployments_rx) = watch::channel(Arc::default());
        let task = tokio::spawn(status_task(
            self,
            push,
            input_rx,
            usage_rx,
            deployments_rx,
            settle,
        ));
        StatusTask {
            input,
            usage,
            deployments,
            task: task.abort_handle(),
        }
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

/// One compile's statuses, for the status task.
#[derive(Debug)]
pub struct StatusInput {
    /// The objects as they were compiled (their current statuses are read from it).
    pub inventory: Arc<Inventory>,
    /// What `compile` said of each.
    pub statuses: Vec<ObjectStatus>,
    /// The number of the snapshot compiled from it ([`PushServer::number`]).
    pub number: u64,
    /// That snapshot's version.
    pub version: String,
    /// Whether this replica leads (only the leader writes; becoming leader forgets what was
    /// written before).
    pub leading: bool,
    /// The time of the compile, for condition transitions.
    pub now: String,
}

/// The handle of the status task ([`StatusWriter::spawn`]); dropping it stops the task.
#[derive(Debug)]
pub struct StatusTask {
    input: watch::Sender<Option<Arc<StatusInput>>>,
    usage: watch::Sender<Option<BTreeMap<String, PlanRollup>>>,
    deployments: watch::Sender<Arc<Deployments>>,
    task: tokio::task::AbortHandle,
}

/// Recorded deployments per Api id (`namespace/name`), newest first.
pub type Deployments = BTreeMap<String, Vec<DeploymentSummary>>;

impl StatusTask {
    /// Hands over the latest compile result; an input the task has not started on is dropped.
    pub fn submit(&self, input: StatusInput) {
        self.input.send_replace(Some(Arc::new(input)));
    }

    /// The recorded deployments (for `Api.status`) from now on; the task writes them without
    /// a compile (the history writes are not worth one), and leaves an unchanged list be.
    pub fn set_deployments(&self, deployments: Deployments) {
        self.deployments.send_if_modified(|d| {
            let changed = **d != deployments;
            if changed {
                *d = Arc::new(deployments);
            }
            changed
        });
    }

    /// See [`StatusWriter::set_usage`].
    pub fn set_usage(&self, rollup: BTreeMap<String, PlanRollup>) {
        if !rollup.is_empty() {
            self.usage.send_replace(Some(rollup));
        }
    }
}

impl Drop for StatusTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn status_task(
    mut writer: StatusWriter,
    push: PushServer,
    mut input_rx: watch::Receiver<Option<Arc<StatusInput>>>,
    mut usage_rx: watch::Receiver<Option<BTreeMap<String, PlanRollup>>>,
    mut deployments_rx: watch::Receiver<Arc<Deployments>>,
    settle: Duration,
) {
    let mut progress = push.progress();
    let mut changes = Changes::default();
    let mut last: Option<Arc<StatusInput>> = None;
    let mut leading = false;
    // Failed writes are tried again at the next pass: the next compile (at the latest the next
    // usage rollup of the reconciler) or the next ack.
    loop {
        tokio::select! {
            changed = input_rx.changed() => if changed.is_err() { return },
            changed = progress.changed() => if changed.is_err() { return },
            changed = usage_rx.changed() => if changed.is_err() { return },
            changed = deployments_rx.changed() => if changed.is_err() { return },
        }
        if !settle.is_zero() {
            tokio::time::sleep(settle).await;
        }
        // Passes follow each other while newer input keeps interrupting them.
        loop {
            let Some(input) = input_rx.borrow_and_update().clone() else {
                break;
            };
            progress.borrow_and_update();
            if let Some(rollup) = usage_rx.borrow_and_update().clone() {
                writer.set_usage(rollup);
            }
            let deployments = Arc::clone(&deployments_rx.borrow_and_update());
            let fresh = !last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &input));
            if fresh {
                let started = std::time::Instant::now();
                let changed = changes.observe(&input.statuses, input.number, &input.version);
                debug!(
                    changed,
                    number = input.number,
                    observe_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "compiled statuses observed"
                );
                last = Some(Arc::clone(&input));
            }
            if input.leading != leading {
                // Another replica may have written meanwhile: check every status once more.
                writer.forget();
                leading = input.leading;
            }
            if !leading {
                break;
            }
            let fleet = push.fleet();
            let now = if fresh {
                input.now.clone()
            } else {
                crate::now()
            };
            // A closed channel (the controller is stopping) stops the pass too; the task then
            // ends below.
            let stop =
                || input_rx.has_changed().unwrap_or(true) || progress.has_changed().unwrap_or(true);
            let report = writer
                .write_until(
                    &input.inventory,
                    &input.statuses,
                    &Tracked {
                        fleet: &fleet,
                        changes: &changes,
                    },
                    &deployments,
                    &now,
                    &stop,
                )
                .await;
            if report.patched > 0 || report.failed > 0 {
                info!(patched = report.patched, failed = report.failed, deferred = report.deferred, version = %input.version, "statuses written");
            }
            if input_rx.has_changed().is_err() {
                return;
            }
            if report.deferred == 0 {
                break;
            }
            // Deciding thousands of statuses runs without an await; let other tasks (and an
            // abort) in before the next pass.
            tokio::task::yield_now().await;
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

/// The objects of `inventory` by key, with their current status, except those in `unchanged`
/// whose `resourceVersion` is still the one given there.
fn index(inventory: &Inventory, unchanged: &HashMap<Key, Option<&str>>) -> HashMap<Key, Current> {
    let mut out = Adder {
        out: HashMap::new(),
        unchanged,
    };
    out.add(Kind::Api, &inventory.apis, |o| &o.status);
    out.add(Kind::Route, &inventory.routes, |o| &o.status);
    out.add(Kind::Stage, &inventory.stages, |o| &o.status);
    out.add(Kind::UsagePlan, &inventory.usage_plans, |o| &o.status);
    out.add(Kind::Authorizer, &inventory.authorizers, |o| &o.status);
    out.add(Kind::VpcLink, &inventory.vpc_links, |o| &o.status);
    out.out
}

struct Adder<'a, 'b> {
    out: HashMap<Key, Current>,
    unchanged: &'a HashMap<Key, Option<&'b str>>,
}

impl Adder<'_, '_> {
    fn add<K, S>(&mut self, kind: Kind, objects: &[K], status: impl Fn(&K) -> &Option<S>)
    where
        K: Resource<DynamicType = ()>,
        S: Serialize,
    {
        for o in objects {
            let ns = o.namespace().unwrap_or_else(|| "default".into());
            let key = (kind, ns, o.name_any());
            let rv = o.meta().resource_version.as_deref();
            if self
                .unchanged
                .get(&key)
                .is_some_and(|settled| *settled == rv)
            {
                continue;
            }
            let current = Current {
                status: status(o)
                    .as_ref()
                    .and_then(|s| serde_json::to_value(s).ok()),
                resource_version: rv.map(str::to_string),
                reference: o.object_ref(&()),
            };
            self.out.insert(key, current);
        }
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
