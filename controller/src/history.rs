//! Deployment history in the cluster: each distinct compiled Api is an immutable ConfigMap
//! `causeway-deploy-<api>-<id>` in the Api's namespace, owned by the Api, labelled
//! [`API_LABEL`]`=<api>`, with the definition in `definition.json` and the creation time and
//! description in annotations. At most [`HISTORY_PER_API`] are kept per Api, plus any that a
//! Stage pins (pinned deployments are never pruned).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use causeway_compile::DeploymentRecord;
use causeway_crds::api::DeploymentSummary;
use causeway_crds::{Api, Stage};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::Notify;

/// Label naming the Api (its `metadata.name`) a deployment ConfigMap belongs to.
pub const API_LABEL: &str = "causeway.dev/api";
/// Label holding the deployment id.
pub const ID_LABEL: &str = "causeway.dev/deployment-id";
/// Annotation: when the deployment was recorded (RFC 3339).
pub const CREATED_ANNOTATION: &str = "causeway.dev/created-at";
/// Annotation: a description of the deployment.
pub const DESCRIPTION_ANNOTATION: &str = "causeway.dev/description";
/// The data key holding the compiled definition.
pub const DEFINITION_KEY: &str = "definition.json";
/// Deployments kept per Api, newest first (pinned ones come on top of this).
pub const HISTORY_PER_API: usize = 20;

/// Errors writing the history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The API server refused a write.
    #[error("deployment history of Api {api}: {source}")]
    Kube {
        /// `namespace/name` of the Api.
        api: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

/// The ConfigMap name of a deployment.
pub fn config_map_name(api_name: &str, id: &str) -> String {
    format!("causeway-deploy-{api_name}-{id}")
}

/// Which deployment a history ConfigMap records: its Api (`namespace/name`) and the
/// deployment id, from its namespace and labels.
fn recorded(cm: &ConfigMap) -> Option<(String, &String)> {
    let ns = cm.namespace()?;
    let api = cm.labels().get(API_LABEL)?;
    let id = cm.labels().get(ID_LABEL)?;
    Some((format!("{ns}/{api}"), id))
}

/// Reads a deployment record back from its ConfigMap.
pub fn record_from_config_map(cm: &ConfigMap) -> Option<DeploymentRecord> {
    let (api, id) = recorded(cm)?;
    let text = cm.data.as_ref()?.get(DEFINITION_KEY)?;
    Some(DeploymentRecord {
        id: id.clone(),
        api,
        definition: serde_json::from_str(text).ok()?,
    })
}

/// The deployment records read back from their ConfigMaps, parsed once per ConfigMap version.
///
/// A record's `definition.json` is the whole compiled Api (hundreds of kilobytes at 1,000
/// routes), and every pass reads all of them (up to [`HISTORY_PER_API`] per Api, plus pinned
/// ones). The ConfigMaps are immutable, so each is parsed when it first appears (or when its
/// `resourceVersion` changes, should someone replace it) and shared afterwards: the records
/// handed out carry the same `Arc` definition pass after pass. ConfigMaps no longer present are
/// forgotten. A ConfigMap the controller writes itself is not parsed at all when it comes back
/// through the watch: [`writing`](Self::writing) hands over the record it was made from (at
/// 10,000 routes parsing it cost the next change 20-100 ms).
#[derive(Debug, Default)]
pub struct RecordCache {
    /// By `(namespace, name)`: the `resourceVersion` it was parsed at, and the record (`None`:
    /// not a readable record).
    parsed: HashMap<(String, String), (String, Option<DeploymentRecord>)>,
    /// Records being written by this controller, by the `(namespace, name)` of their ConfigMap.
    writing: HashMap<(String, String), DeploymentRecord>,
}

/// Records announced by [`RecordCache::writing`] that are kept waiting for their ConfigMap
/// (writes that failed, or whose ConfigMap was deleted before it was seen, are forgotten when
/// this many wait: the ConfigMap is then parsed as anyone else's).
const WRITING_KEPT: usize = 256;

impl RecordCache {
    /// The controller is about to create the ConfigMap `namespace/name` from `record`: when it
    /// is seen, with `record`'s id, it is taken to hold `record` (a deployment id is the hash
    /// of its definition, and the ConfigMap is immutable) instead of being parsed.
    pub fn writing(&mut self, namespace: &str, name: &str, record: DeploymentRecord) {
        if self.writing.len() >= WRITING_KEPT {
            self.writing.clear();
        }
        self.writing
            .insert((namespace.to_string(), name.to_string()), record);
    }

    /// [`writing`](Self::writing) for each ConfigMap `plan` creates, from the record of
    /// `records` it was made from.
    pub fn writing_plan(&mut self, plan: &Plan, records: &[DeploymentRecord]) {
        for cm in &plan.create {
            let Some((api, id)) = recorded(cm) else {
                continue;
            };
            if let Some(record) = records.iter().find(|r| r.id == *id && r.api == api) {
                let ns = cm.namespace().unwrap_or_default();
                self.writing(&ns, &cm.name_any(), record.clone());
            }
        }
    }

    /// The records of `config_maps`, in their order (unreadable ones are left out).
    pub fn records(&mut self, config_maps: &[Arc<ConfigMap>]) -> Vec<DeploymentRecord> {
        let mut seen = std::collections::HashSet::with_capacity(config_maps.len());
        let mut out = Vec::with_capacity(config_maps.len());
        for cm in config_maps {
            let (Some(ns), Some(rv)) = (cm.namespace(), cm.resource_version()) else {
                // Not from the API server: nothing to key it on.
                out.extend(record_from_config_map(cm));
                continue;
            };
            let key = (ns, cm.name_any());
            let own = self.writing.remove(&key);
            let entry = match self.parsed.get(&key) {
                Some((at, record)) if *at == rv => record.clone(),
                _ => {
                    let record = match own {
                        Some(own) if cm.labels().get(ID_LABEL) == Some(&own.id) => Some(own),
                        _ => record_from_config_map(cm),
                    };
                    self.parsed.insert(key.clone(), (rv, record.clone()));
                    record
                }
            };
            out.extend(entry);
            seen.insert(key);
        }
        self.parsed.retain(|key, _| seen.contains(key));
        out
    }
}

/// The ConfigMap that records `record` for `api`.
pub fn config_map_for(record: &DeploymentRecord, api: &Api, now: &str) -> ConfigMap {
    let name = api.name_any();
    let owner = OwnerReference {
        api_version: Api::api_version(&()).into_owned(),
        kind: Api::kind(&()).into_owned(),
        name: name.clone(),
        uid: api.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let description = api.spec.description.clone().unwrap_or_else(|| {
        format!(
            "Api {} at generation {}",
            name,
            api.meta().generation.unwrap_or(0)
        )
    });
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(&name, &record.id)),
            namespace: api.namespace(),
            labels: Some(BTreeMap::from([
                (API_LABEL.to_string(), name.clone()),
                (ID_LABEL.to_string(), record.id.clone()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "causeway-controller".to_string(),
                ),
            ])),
            annotations: Some(BTreeMap::from([
                (CREATED_ANNOTATION.to_string(), now.to_string()),
                (DESCRIPTION_ANNOTATION.to_string(), description),
            ])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            DEFINITION_KEY.to_string(),
            serde_json::to_string(&record.definition).unwrap_or_default(),
        )])),
        ..ConfigMap::default()
    }
}

/// The recorded deployments of each Api (`namespace/name`), newest first.
pub fn summaries(config_maps: &[Arc<ConfigMap>]) -> BTreeMap<String, Vec<DeploymentSummary>> {
    let mut out: BTreeMap<String, Vec<DeploymentSummary>> = BTreeMap::new();
    for cm in config_maps {
        let Some((api, id)) = recorded(cm) else {
            continue;
        };
        out.entry(api).or_default().push(DeploymentSummary {
            id: id.clone(),
            created_at: cm.annotations().get(CREATED_ANNOTATION).cloned(),
            description: cm.annotations().get(DESCRIPTION_ANNOTATION).cloned(),
        });
    }
    for list in out.values_mut() {
        // Newest first, by the parsed time (records are stamped to the microsecond; older ones
        // to the second). Ties by id for determinism.
        let time = |d: &DeploymentSummary| {
            d.created_at
                .as_deref()
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        };
        list.sort_by(|a, b| (time(b), &b.id).cmp(&(time(a), &a.id)));
    }
    out
}

/// What to change in the history: ConfigMaps to create and names to delete.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// New deployments.
    pub create: Vec<ConfigMap>,
    /// `(namespace, name)` of ConfigMaps to delete (beyond the bound, not pinned).
    pub delete: Vec<(String, String)>,
}

/// Plans the history changes for the current deployments of a compilation.
pub fn plan(
    current: &[DeploymentRecord],
    apis: &[Api],
    stages: &[Stage],
    config_maps: &[Arc<ConfigMap>],
    now: &str,
) -> Plan {
    let existing = summaries(config_maps);
    let pinned: BTreeSet<(String, String)> = stages
        .iter()
        .filter_map(|s| {
            let id = s.spec.deployment_id.clone()?;
            let ns = s.namespace().unwrap_or_default();
            let canary = s.spec.canary.as_ref().map(|c| c.deployment_id.clone());
            Some(
                [(ns.clone(), id)]
                    .into_iter()
                    .chain(canary.map(|c| (ns, c))),
            )
        })
        .flatten()
        .collect();
    let mut plan = Plan::default();
    for record in current {
        let known = existing
            .get(&record.api)
            .is_some_and(|list| list.iter().any(|d| d.id == record.id));
        if known {
            continue;
        }
        let api = apis.iter().find(|a| {
            format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any()) == record.api
        });
        if let Some(api) = api {
            plan.create.push(config_map_for(record, api, now));
        }
    }
    for (api, list) in &existing {
        let (ns, name) = api.split_once('/').unwrap_or(("", api));
        // The one about to be created counts as the newest.
        let fresh = plan
            .create
            .iter()
            .filter(|cm| {
                cm.namespace().as_deref() == Some(ns)
                    && cm.labels().get(API_LABEL).map(String::as_str) == Some(name)
            })
            .count();
        let keep = HISTORY_PER_API.saturating_sub(fresh);
        for d in list.iter().skip(keep) {
            let is_current = current.iter().any(|r| &r.api == api && r.id == d.id);
            if !pinned.contains(&(ns.to_string(), d.id.clone())) && !is_current {
                plan.delete
                    .push((ns.to_string(), config_map_name(name, &d.id)));
            }
        }
    }
    plan
}

/// Applies a plan (leader only). A ConfigMap that already exists is fine (another replica or an
/// earlier run recorded it), and so is one already gone. Each write is announced to `own`
/// before it is sent, so that its watch event is known as the controller's own.
pub async fn apply(client: &Client, plan: &Plan, own: &OwnWrites) -> Result<(), HistoryError> {
    for cm in &plan.create {
        let ns = cm.namespace().unwrap_or_default();
        let name = cm.name_any();
        let api = kube::Api::<ConfigMap>::namespaced(client.clone(), &ns);
        own.sending(&ns, &name);
        let result = api.create(&PostParams::default(), cm).await;
        if result.is_err() {
            own.not_sent(&ns, &name);
        }
        match result {
            Ok(_) => tracing::info!(
                config_map = %cm.name_any(),
                namespace = %ns,
                "deployment recorded"
            ),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => {
                return Err(HistoryError::Kube {
                    api: format!(
                        "{ns}/{}",
                        cm.labels().get(API_LABEL).cloned().unwrap_or_default()
                    ),
                    source,
                });
            }
        }
    }
    for (ns, name) in &plan.delete {
        let api = kube::Api::<ConfigMap>::namespaced(client.clone(), ns);
        own.sending(ns, name);
        let result = api.delete(name, &DeleteParams::default()).await;
        if result.is_err() {
            own.not_sent(ns, name);
        }
        match result {
            Ok(_) => tracing::info!(config_map = %name, namespace = %ns, "old deployment pruned"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(HistoryError::Kube {
                    api: format!("{ns}/{name}"),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// History ConfigMaps the controller is creating or deleting, until the watch event of each
/// write arrives: that event is the controller's own doing and wakes no compile (the compile
/// that planned the write already had the deployment), only [`OwnWrites::written`], which
/// refreshes the deployment lists of the Api statuses.
#[derive(Debug, Default)]
pub struct OwnWrites {
    pending: Mutex<HashMap<(String, String), usize>>,
    written: Notify,
}

impl OwnWrites {
    /// A write of `ns/name` is about to be sent.
    pub fn sending(&self, ns: &str, name: &str) {
        *self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((ns.to_string(), name.to_string()))
            .or_default() += 1;
    }

    /// The write of `ns/name` failed (or changed nothing): no event will come for it.
    pub fn not_sent(&self, ns: &str, name: &str) {
        self.take(ns, name);
    }

    fn take(&self, ns: &str, name: &str) -> bool {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (ns.to_string(), name.to_string());
        match pending.get_mut(&key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                pending.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Whether a watch event of the history ConfigMaps wakes the compile: not when it is the
    /// echo of the controller's own write (then [`written`](Self::written) is notified
    /// instead). The first full list and its relists wake it; their single objects do not.
    pub fn wakes<K: Resource>(&self, event: &watcher::Event<K>) -> bool {
        match event {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
                let meta = o.meta();
                let ns = meta.namespace.as_deref().unwrap_or_default();
                let name = meta.name.as_deref().unwrap_or_default();
                if self.take(ns, name) {
                    self.written.notify_one();
                    false
                } else {
                    true
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => false,
            watcher::Event::InitDone => true,
        }
    }

    /// Notified when the watch delivered one of the controller's own writes.
    pub fn written(&self) -> &Notify {
        &self.written
    }
}

/// The history writer in a task of its own ([`HistoryTask::spawn`]), off the path from a change
/// to the proxies: the reconcile loop hands over each plan and goes on at once. A plan not yet
/// started on is merged with the next one (its creates are kept, the newer deletes replace
/// the older), so no deployment is lost and the newest pruning wins. A failed write is planned
/// again by the next compile. The task ends when the handle is dropped.
#[derive(Debug)]
pub struct HistoryTask {
    next: Arc<(Mutex<Option<Plan>>, Notify)>,
    task: tokio::task::AbortHandle,
}

impl HistoryTask {
    /// Starts the task; its writes are announced to `own`.
    pub fn spawn(client: Client, own: Arc<OwnWrites>) -> Self {
        let next: Arc<(Mutex<Option<Plan>>, Notify)> = Arc::default();
        let shared = Arc::clone(&next);
        let task = tokio::spawn(async move {
            loop {
                shared.1.notified().await;
                let plan = shared
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                let Some(plan) = plan else { continue };
                let started = std::time::Instant::now();
                if let Err(e) = apply(&client, &plan, &own).await {
                    tracing::warn!("{e}");
                }
                tracing::debug!(
                    created = plan.create.len(),
                    deleted = plan.delete.len(),
                    history_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "history written"
                );
            }
        });
        Self {
            next,
            task: task.abort_handle(),
        }
    }

    /// Hands over a plan (an empty one is dropped).
    pub fn submit(&self, plan: Plan) {
        if plan.create.is_empty() && plan.delete.is_empty() {
            return;
        }
        let mut next = self
            .next
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *next = Some(match next.take() {
            None => plan,
            Some(older) => merge(older, plan),
        });
        drop(next);
        self.next.1.notify_one();
    }
}

impl Drop for HistoryTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plan not yet applied followed by a newer one: every create of both (the newer first),
/// the newer deletes.
fn merge(older: Plan, newer: Plan) -> Plan {
    let mut create = newer.create;
    for cm in older.create {
        let same = |c: &ConfigMap| c.namespace() == cm.namespace() && c.name_any() == cm.name_any();
        if !create.iter().any(same) {
            create.push(cm);
        }
    }
    Plan {
        create,
        delete: newer.delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(name: &str) -> Api {
        let mut api = Api::new(
            name,
            serde_json::from_value(serde_json::json!({})).expect("spec"),
        );
        api.metadata.namespace = Some("default".into());
        api.metadata.uid = Some("uid-1".into());
        api
    }

    fn record(id: &str) -> DeploymentRecord {
        DeploymentRecord {
            id: id.into(),
            api: "default/pets".into(),
            definition: std::sync::Arc::new(serde_json::json!({"routes": [id]})),
        }
    }

    #[test]
    fn a_new_deployment_becomes_an_immutable_config_map_owned_by_its_api() {
        let plan = plan(
            &[record("aaaa")],
            &[api("pets")],
            &[],
            &[],
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(plan.create.len(), 1);
        let cm = &plan.create[0];
        assert_eq!(cm.name_any(), "causeway-deploy-pets-aaaa");
        assert_eq!(cm.immutable, Some(true));
        assert_eq!(cm.owner_references()[0].uid, "uid-1");
        let back = record_from_config_map(cm).expect("readable");
        assert_eq!(back, record("aaaa"));
    }

    #[test]
    fn records_are_parsed_once_per_config_map_version() {
        let pets = api("pets");
        let stored = |id: &str, rv: &str| {
            let mut cm = config_map_for(&record(id), &pets, "2026-01-01T00:00:00Z");
            cm.metadata.resource_version = Some(rv.into());
            Arc::new(cm)
        };
        let mut cache = RecordCache::default();
        let first = cache.records(&[stored("a", "1"), stored("b", "2")]);
        assert_eq!(first, vec![record("a"), record("b")]);
        // The next pass: the same ConfigMaps (new Arcs from a relist) share the parsed records.
        let again = cache.records(&[stored("a", "1"), stored("b", "2")]);
        assert_eq!(again, first);
        for (x, y) in again.iter().zip(&first) {
            assert!(
                Arc::ptr_eq(&x.definition, &y.definition),
                "{} parsed again",
                x.id
            );
        }
        // A ConfigMap replaced (new resourceVersion) is read again; one gone is forgotten.
        let mut replaced = config_map_for(&record("a"), &pets, "2026-01-01T00:00:00Z");
        replaced.metadata.resource_version = Some("3".into());
        replaced.data = Some(BTreeMap::from([(
            DEFINITION_KEY.to_string(),
            r#"{"routes": ["edited"]}"#.to_string(),
        )]));
        let after = cache.records(&[Arc::new(replaced)]);
        assert_eq!(after.len(), 1);
        assert_eq!(
            *after[0].definition,
            serde_json::json!({"routes": ["edited"]})
        );
        assert_eq!(cache.parsed.len(), 1);
        // Unreadable ones are left out (and not parsed again either).
        let mut broken = config_map_for(&record("c"), &pets, "2026-01-01T00:00:00Z");
        broken.metadata.resource_version = Some("4".into());
        broken.data = None;
        assert!(cache.records(&[Arc::new(broken)]).is_empty());
    }

    #[test]
    fn a_config_map_this_controller_wrote_is_not_parsed_when_it_comes_back() {
        let pets = api("pets");
        let mut cache = RecordCache::default();
        let written = record("mine");
        cache.writing("default", "causeway-deploy-pets-mine", written.clone());
        // As the API server stores it; the data is made unreadable to show it is not parsed.
        let mut cm = config_map_for(&written, &pets, "2026-01-01T00:00:00Z");
        cm.metadata.resource_version = Some("7".into());
        cm.data = Some(BTreeMap::from([(
            DEFINITION_KEY.to_string(),
            "{".to_string(),
        )]));
        let records = cache.records(&[Arc::new(cm.clone())]);
        assert_eq!(records.len(), 1);
        assert!(Arc::ptr_eq(&records[0].definition, &written.definition));
        // What a plan creates is announced with the record it was made from.
        let mut planned = RecordCache::default();
        let p = plan(
            &[record("new")],
            &[api("pets")],
            &[],
            &[],
            "2026-01-02T00:00:00Z",
        );
        planned.writing_plan(&p, &[record("other"), record("new")]);
        assert_eq!(
            planned.writing.get(&(
                "default".to_string(),
                "causeway-deploy-pets-new".to_string()
            )),
            Some(&record("new"))
        );
        // Another ConfigMap at that name (another id) is read from its data.
        cache.writing("default", "causeway-deploy-pets-mine", record("other"));
        cm.metadata.resource_version = Some("8".into());
        assert!(cache.records(&[Arc::new(cm)]).is_empty(), "unreadable data");
    }

    #[test]
    fn history_is_bounded_but_pinned_deployments_are_kept() {
        let pets = api("pets");
        let cms: Vec<Arc<ConfigMap>> = (0..HISTORY_PER_API + 2)
            .map(|i| {
                Arc::new(config_map_for(
                    &record(&format!("d{i:02}")),
                    &pets,
                    &format!("2026-01-01T00:00:{i:02}Z"),
                ))
            })
            .collect();
        let mut stage = Stage::new(
            "prod",
            serde_json::from_value(serde_json::json!({"apiRef": {"name": "pets"}, "stageName": "prod", "deploymentId": "d00"}))
                .expect("stage spec"),
        );
        stage.metadata.namespace = Some("default".into());
        let p = plan(
            &[record("new")],
            &[pets],
            &[stage],
            &cms,
            "2026-01-02T00:00:00Z",
        );
        assert_eq!(p.create.len(), 1);
        let deleted: Vec<&str> = p.delete.iter().map(|(_, n)| n.as_str()).collect();
        // 22 old + 1 new, keep 20: the 3 oldest go, except d00 which a stage pins.
        assert_eq!(
            deleted,
            vec!["causeway-deploy-pets-d02", "causeway-deploy-pets-d01"]
        );
    }

    #[test]
    fn summaries_list_the_newest_deployment_first() {
        let pets = api("pets");
        let cms = vec![
            Arc::new(config_map_for(
                &record("old"),
                &pets,
                "2026-01-01T00:00:00Z",
            )),
            Arc::new(config_map_for(
                &record("new"),
                &pets,
                "2026-01-02T00:00:00Z",
            )),
        ];
        let s = summaries(&cms);
        let ids: Vec<&str> = s["default/pets"].iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["new", "old"]);
    }

    #[test]
    fn records_made_in_the_same_second_keep_their_order() {
        let pets = api("pets");
        // "a" sorts first by id, but was made later in the same second; a record stamped to
        // the second (older controllers) sorts by its time too.
        let cms = vec![
            Arc::new(config_map_for(
                &record("z-first"),
                &pets,
                "2026-01-02T10:00:05.100000Z",
            )),
            Arc::new(config_map_for(
                &record("a-second"),
                &pets,
                "2026-01-02T10:00:05.900000Z",
            )),
            Arc::new(config_map_for(
                &record("m-before"),
                &pets,
                "2026-01-02T10:00:04Z",
            )),
        ];
        let s = summaries(&cms);
        let ids: Vec<&str> = s["default/pets"].iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["a-second", "z-first", "m-before"]);
        assert!(
            crate::now_precise()
                .parse::<k8s_openapi::jiff::Timestamp>()
                .is_ok(),
            "records are stamped with a time that parses"
        );
    }

    #[test]
    fn the_echo_of_an_own_write_wakes_no_compile_and_others_do() {
        let pets = api("pets");
        let own = OwnWrites::default();
        let mine = config_map_for(&record("mine"), &pets, "2026-01-01T00:00:00Z");
        let theirs = config_map_for(&record("theirs"), &pets, "2026-01-01T00:00:00Z");
        own.sending("default", "causeway-deploy-pets-mine");
        assert!(!own.wakes(&watcher::Event::Apply(mine.clone())));
        // Only once: a later change of the same ConfigMap is someone else's.
        assert!(own.wakes(&watcher::Event::Apply(mine.clone())));
        assert!(own.wakes(&watcher::Event::Apply(theirs.clone())));
        own.sending("default", "causeway-deploy-pets-mine");
        assert!(!own.wakes(&watcher::Event::Delete(mine.clone())));
        // A write that failed leaves nothing expected.
        own.sending("default", "causeway-deploy-pets-theirs");
        own.not_sent("default", "causeway-deploy-pets-theirs");
        assert!(own.wakes(&watcher::Event::Delete(theirs)));
        assert!(!own.wakes(&watcher::Event::<ConfigMap>::Init));
        assert!(own.wakes(&watcher::Event::<ConfigMap>::InitDone));
    }

    #[test]
    fn a_plan_not_yet_applied_keeps_its_creates_when_a_newer_one_comes() {
        let pets = api("pets");
        let cm = |id: &str| config_map_for(&record(id), &pets, "2026-01-01T00:00:00Z");
        let older = Plan {
            create: vec![cm("a")],
            delete: vec![("default".into(), "causeway-deploy-pets-old1".into())],
        };
        let newer = Plan {
            create: vec![cm("b"), cm("a")],
            delete: vec![("default".into(), "causeway-deploy-pets-old2".into())],
        };
        let merged = merge(older, newer);
        let names: Vec<String> = merged.create.iter().map(|c| c.name_any()).collect();
        assert_eq!(
            names,
            vec!["causeway-deploy-pets-b", "causeway-deploy-pets-a"]
        );
        assert_eq!(
            merged.delete,
            vec![(
                "default".to_string(),
                "causeway-deploy-pets-old2".to_string()
            )]
        );
    }
}
