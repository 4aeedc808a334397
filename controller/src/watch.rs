//! Watches: one reflector per kind (per namespace when the scope is a list of namespaces), each
//! feeding a store and waking the reconciler. Written once, generically.
//!
//! The six Causeway kinds wake the reconciler only when an object comes, goes, or changes other
//! than in its status ([`Wakes::UnlessStatusOnly`]): the controller's own status writes (and
//! anyone's) leave `generation`, labels and annotations as they are, so they never cause a
//! compile. The deployment-history ConfigMaps wake it except for the echoes of the controller's
//! own history writes ([`Wakes::UnlessOwn`]). Every event of the other kinds wakes it.
//!
//! What is read: the six Causeway kinds, Services, EndpointSlices (v1 or v1beta1, chosen by
//! discovery), Secrets labelled [`SECRET_LABEL`]`=true` (the controller never lists every
//! Secret), ConfigMaps labelled [`DEFINITION_LABEL`]`=true` (OpenAPI documents of
//! `Api.spec.definition`), and the deployment-history ConfigMaps (labelled [`crate::history::API_LABEL`]).

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use causeway_compile::{DeploymentRecord, Inventory};
use causeway_crds::{Api, Authorizer, Route, Stage, UsagePlan, VpcLink};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::history;

/// Secrets carrying this label with value `true` are read (API keys, TLS, HMAC keys).
pub const SECRET_LABEL: &str = "causeway.dev/secret";
/// ConfigMaps carrying this label with value `true` are read (OpenAPI documents named by
/// `Api.spec.definition`).
pub const DEFINITION_LABEL: &str = "causeway.dev/definition";

/// Which namespaces are watched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Namespaces to watch; empty means all namespaces.
    pub namespaces: Vec<String>,
}

/// The EndpointSlice API the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceVersion {
    /// `discovery.k8s.io/v1` (Kubernetes 1.21+).
    V1,
    /// `discovery.k8s.io/v1beta1` (Kubernetes 1.17–1.24).
    V1beta1,
}

impl SliceVersion {
    /// Asks the server which version it serves (v1 preferred).
    pub async fn discover(client: &Client) -> Result<Self, kube::Error> {
        match client.list_api_group_resources("discovery.k8s.io/v1").await {
            Ok(list) if list.resources.iter().any(|r| r.kind == "EndpointSlice") => Ok(Self::V1),
            Ok(_) => Ok(Self::V1beta1),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(Self::V1beta1),
            Err(e) => Err(e),
        }
    }

    fn api_resource(self) -> ApiResource {
        let version = match self {
            Self::V1 => "v1",
            Self::V1beta1 => "v1beta1",
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("discovery.k8s.io", version, "EndpointSlice"),
            "endpointslices",
        )
    }
}

/// Which events of a kind wake the reconciler.
#[derive(Debug, Clone)]
pub enum Wakes {
    /// Every event.
    Every,
    /// Every event except an update that changed nothing but the status (and other fields the
    /// API server keeps outside `generation`, such as `resourceVersion` and `managedFields`):
    /// for kinds with a status subresource, whose `generation` moves with every spec change.
    UnlessStatusOnly,
    /// Every event except the echo of the controller's own write
    /// ([`history::OwnWrites::wakes`]): the deployment-history ConfigMaps.
    UnlessOwn(Arc<history::OwnWrites>),
}

/// What of an object, for [`Wakes::UnlessStatusOnly`], is worth a compile when it changes:
/// `generation`, labels, annotations and whether it is being deleted.
pub fn spec_fingerprint(meta: &kube::api::ObjectMeta) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.labels.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    h.finish()
}

/// Decides, event by event, whether a watch event wakes the reconciler
/// ([`Wakes::UnlessStatusOnly`]). Pure.
#[derive(Debug, Default)]
pub struct WakeFilter {
    known: Fingerprints,
    relisting: Option<Fingerprints>,
}

/// [`spec_fingerprint`]s by `(namespace, name)`.
type Fingerprints = std::collections::HashMap<(Option<String>, Option<String>), u64>;

impl WakeFilter {
    /// Whether `event` is worth a compile; remembers what it saw.
    pub fn wakes<K: Resource>(&mut self, event: &watcher::Event<K>) -> bool {
        let key = |o: &K| (o.meta().namespace.clone(), o.meta().name.clone());
        match event {
            watcher::Event::Apply(o) => {
                let fp = spec_fingerprint(o.meta());
                self.known.insert(key(o), fp) != Some(fp)
            }
            watcher::Event::Delete(o) => {
                self.known.remove(&key(o));
                true
            }
            watcher::Event::Init => {
                self.relisting = Some(Default::default());
                false
            }
            watcher::Event::InitApply(o) => {
                self.relisting
                    .get_or_insert_with(Default::default)
                    .insert(key(o), spec_fingerprint(o.meta()));
                false
            }
            watcher::Event::InitDone => {
                self.known = self.relisting.take().unwrap_or_default();
                true
            }
        }
    }
}

/// The stores of everything watched.
#[derive(Clone)]
pub struct Stores {
    apis: Vec<Store<Api>>,
    routes: Vec<Store<Route>>,
    stages: Vec<Store<Stage>>,
    usage_plans: Vec<Store<UsagePlan>>,
    authorizers: Vec<Store<Authorizer>>,
    vpc_links: Vec<Store<VpcLink>>,
    services: Vec<Store<Service>>,
    slices: Vec<Store<DynamicObject>>,
    slice_version: SliceVersion,
    secrets: Vec<Store<Secret>>,
    definitions: Vec<Store<ConfigMap>>,
    deployments: Vec<Store<ConfigMap>>,
    /// The deployment records, parsed once per ConfigMap version (shared by the clones).
    records: Arc<std::sync::Mutex<history::RecordCache>>,
}

impl Stores {
    /// Starts every watch on `tasks`; each event that is worth a compile calls
    /// `wake.notify_one()` (not status-only updates of the Causeway kinds, not the echoes of
    /// the history writes announced to `own`).
    pub fn start(
        client: &Client,
        scope: &Scope,
        slice_version: SliceVersion,
        wake: &Arc<Notify>,
        own: &Arc<history::OwnWrites>,
        tasks: &mut JoinSet<()>,
    ) -> Self {
        let all = watcher::Config::default();
        let secrets = watcher::Config::default().labels(&format!("{SECRET_LABEL}=true"));
        let deployments = watcher::Config::default().labels(history::API_LABEL);
        let definitions = watcher::Config::default().labels(&format!("{DEFINITION_LABEL}=true"));
        let mut w = Spawner {
            client,
            scope,
            wake,
            tasks,
        };
        let slice_ar = slice_version.api_resource();
        Self {
            apis: w.typed_with(&all, Wakes::UnlessStatusOnly),
            routes: w.typed_with(&all, Wakes::UnlessStatusOnly),
            stages: w.typed_with(&all, Wakes::UnlessStatusOnly),
            usage_plans: w.typed_with(&all, Wakes::UnlessStatusOnly),
            authorizers: w.typed_with(&all, Wakes::UnlessStatusOnly),
            vpc_links: w.typed_with(&all, Wakes::UnlessStatusOnly),
            services: w.typed(&all),
            slices: w.spawn(&all, Wakes::Every, slice_ar.clone(), |c, ns| match ns {
                Some(ns) => kube::Api::namespaced_with(c, ns, &slice_ar),
                None => kube::Api::all_with(c, &slice_ar),
            }),
            slice_version,
            secrets: w.typed(&secrets),
            definitions: w.typed(&definitions),
            deployments: w.typed_with(&deployments, Wakes::UnlessOwn(Arc::clone(own))),
            records: Arc::default(),
        }
    }

    /// Waits until every store has its first full list.
    pub async fn ready(&self) {
        macro_rules! wait {
            ($($field:ident),*) => {$(
                for store in &self.$field {
                    let _ = store.wait_until_ready().await;
                }
            )*};
        }
        wait!(
            apis,
            routes,
            stages,
            usage_plans,
            authorizers,
            vpc_links,
            services,
            slices,
            secrets,
            definitions,
            deployments
        );
    }

    /// The deployment-history ConfigMaps.
    pub fn deployment_config_maps(&self) -> Vec<Arc<ConfigMap>> {
        self.deployments.iter().flat_map(Store::state).collect()
    }

    /// Everything, as the input of `compile`.
    pub fn inventory(&self) -> Inventory {
        Inventory {
            apis: collect(&self.apis),
            routes: collect(&self.routes),
            stages: collect(&self.stages),
            usage_plans: collect(&self.usage_plans),
            authorizers: collect(&self.authorizers),
            vpc_links: collect(&self.vpc_links),
            services: collect(&self.services),
            endpoint_slices: self
                .slices
                .iter()
                .flat_map(Store::state)
                .filter_map(|o| typed_slice(&o, self.slice_version))
                .collect(),
            secrets: collect(&self.secrets),
            config_maps: collect(&self.definitions),
            deployments: self.deployment_records(),
        }
    }

    /// The cache of the deployment records (shared with the reconciler, which announces the
    /// records it has written: [`history::RecordCache::writing`]).
    pub fn records(&self) -> Arc<std::sync::Mutex<history::RecordCache>> {
        Arc::clone(&self.records)
    }

    /// The deployment records of the history ConfigMaps, each parsed only when it is new.
    fn deployment_records(&self) -> Vec<DeploymentRecord> {
        let config_maps = self.deployment_config_maps();
        let mut cache = match self.records.lock() {
            Ok(cache) => cache,
            // A panic mid-pass leaves at worst an entry too many or too few: still correct.
            Err(poisoned) => poisoned.into_inner(),
        };
        cache.records(&config_maps)
    }
}

fn collect<K>(stores: &[Store<K>]) -> Vec<K>
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    stores
        .iter()
        .flat_map(Store::state)
        .map(|o| (*o).clone())
        .collect()
}

/// A watched EndpointSlice as the typed v1 object `compile` reads.
fn typed_slice(object: &DynamicObject, version: SliceVersion) -> Option<EndpointSlice> {
    let mut value = serde_json::to_value(object).ok()?;
    value["kind"] = "EndpointSlice".into();
    value["apiVersion"] = "discovery.k8s.io/v1".into();
    if version == SliceVersion::V1beta1 {
        value = causeway_compile::load::endpoint_slice_v1beta1_to_v1(value);
    }
    match serde_json::from_value(value) {
        Ok(slice) => Some(slice),
        Err(e) => {
            warn!(
                slice = object.metadata.name.as_deref().unwrap_or(""),
                "ignoring an EndpointSlice that does not parse: {e}"
            );
            None
        }
    }
}

struct Spawner<'a> {
    client: &'a Client,
    scope: &'a Scope,
    wake: &'a Arc<Notify>,
    tasks: &'a mut JoinSet<()>,
}

impl Spawner<'_> {
    fn typed<K>(&mut self, config: &watcher::Config) -> Vec<Store<K>>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
    {
        self.typed_with(config, Wakes::Every)
    }

    fn typed_with<K>(&mut self, config: &watcher::Config, wakes: Wakes) -> Vec<Store<K>>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
    {
        self.spawn(config, wakes, (), |c, ns| match ns {
            Some(ns) => kube::Api::namespaced(c, ns),
            None => kube::Api::all(c),
        })
    }

    fn spawn<K>(
        &mut self,
        config: &watcher::Config,
        wakes: Wakes,
        dyntype: K::DynamicType,
        make: impl Fn(Client, Option<&str>) -> kube::Api<K>,
    ) -> Vec<Store<K>>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Clone + Eq + Hash + Send + Sync,
    {
        let namespaces: Vec<Option<&str>> = if self.scope.namespaces.is_empty() {
            vec![None]
        } else {
            self.scope
                .namespaces
                .iter()
                .map(|n| Some(n.as_str()))
                .collect()
        };
        let mut stores = Vec::new();
        for ns in namespaces {
            let api = make(self.client.clone(), ns);
            let writer = reflector::store::Writer::new(dyntype.clone());
            stores.push(writer.as_reader());
            // managedFields are never read here and are often the larger part of an object's
            // metadata: dropped before the store, so that each pass clones less.
            let stream = reflector(
                writer,
                watcher(api, config.clone())
                    .default_backoff()
                    .modify(|o: &mut K| o.meta_mut().managed_fields = None),
            );
            let wake = Arc::clone(self.wake);
            let wakes = wakes.clone();
            let kind = K::kind(&dyntype).to_string();
            self.tasks.spawn(async move {
                let mut stream = std::pin::pin!(stream);
                let mut filter = WakeFilter::default();
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(event) => {
                            let wake_up = match &wakes {
                                Wakes::Every => true,
                                Wakes::UnlessStatusOnly => filter.wakes(&event),
                                Wakes::UnlessOwn(own) => own.wakes(&event),
                            };
                            if wake_up {
                                if let watcher::Event::Apply(o) | watcher::Event::Delete(o) = &event {
                                    debug!(%kind, name = o.meta().name.as_deref().unwrap_or(""), "change");
                                }
                                wake.notify_one();
                            }
                        }
                        Err(e) => warn!(%kind, "watch failed, retrying: {e}"),
                    }
                }
            });
        }
        stores
    }
}

use reflector::reflector;

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_crds::Route;
    use kube::api::ObjectMeta;

    fn route(generation: i64, resource_version: &str, status: bool) -> Route {
        let mut route: Route = serde_json::from_value(serde_json::json!({
            "apiVersion": "causeway.dev/v1alpha1",
            "kind": "Route",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {"apiRef": {"name": "pets"}, "routeKey": "GET /r",
                     "integration": {"type": "MOCK"}},
        }))
        .expect("a Route");
        route.metadata = ObjectMeta {
            generation: Some(generation),
            resource_version: Some(resource_version.into()),
            ..route.metadata
        };
        if status {
            route.status = Some(Default::default());
        }
        route
    }

    #[test]
    fn a_status_only_update_does_not_wake_and_a_spec_change_or_deletion_does() {
        let mut filter = WakeFilter::default();
        assert!(!filter.wakes(&watcher::Event::<Route>::Init));
        assert!(!filter.wakes(&watcher::Event::InitApply(route(1, "10", false))));
        assert!(filter.wakes(&watcher::Event::<Route>::InitDone));
        // The controller's own status write: new resourceVersion, same generation.
        assert!(!filter.wakes(&watcher::Event::Apply(route(1, "11", true))));
        // A spec change.
        assert!(filter.wakes(&watcher::Event::Apply(route(2, "12", true))));
        let mut labelled = route(2, "13", true);
        labelled.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        assert!(filter.wakes(&watcher::Event::Apply(labelled)));
        assert!(filter.wakes(&watcher::Event::Delete(route(2, "14", true))));
        // Created again: new to the filter.
        assert!(filter.wakes(&watcher::Event::Apply(route(1, "15", false))));
    }
}
