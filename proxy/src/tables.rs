//! Runtime tables built from a [`Snapshot`] by [`Tables::build`]: everything a request needs,
//! pre-parsed (header names and values, methods, status codes, route trees), so that the
//! request path does no interpretation and cannot fail on configuration. A `Runtime` is
//! immutable; the proxy swaps whole runtimes.

pub(crate) mod certs;
pub(crate) mod kept;
pub(crate) mod router;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use causeway_snapshot::{
    AccessLog, ApiConfig, Backend, DeploymentConfig, Integration, RouteCache, Snapshot, Sticky,
    UpstreamScheme,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use causeway_snapshot::RouteTable;
use causeway_snapshot::push::DroppedPart;

use crate::cache::{CacheLabels, Caches, StageStore};
use crate::error::ApplyError;
use crate::integration::lambda::{LiveLambda, LiveLambdaMapped};
use crate::integration::mapping::LiveMapping;
use crate::integration::templates::LiveTemplates;
use crate::integration::{LiveHttpProxy, LiveIntegration, LiveMock};
use crate::limits::{Limiters, StageThrottles};
use crate::telemetry::metrics::RouteMetrics;
use crate::upstream::balancer::{Balancer, Endpoint};
use crate::upstream::forwarded::ReservedHeaders;
use crate::upstream::origination::{H2cEndpoint, TlsOrigin};
use crate::upstream::{HttpTarget, LiveBackend};
use crate::validation::{RouteValidator, SchemaCache};
use router::{Glob, HostRoutes, HostTable, Rule};

/// The tables of one applied snapshot.
pub(crate) struct Tables {
    /// The snapshot itself, for `/config_dump` (its keys compacted once the tables have them).
    pub snapshot: Arc<kept::KeptSnapshot>,
    pub hosts: HostTable<usize>,
    pub stages: Vec<LiveStage>,
    /// Resource policies, API keys and authorizers.
    pub auth: crate::auth::AuthTables,
    /// Usage plans' throttles and quotas per key.
    pub plans: crate::limits::PlanLimits,
    /// TLS certificates by SNI name.
    pub certificates: certs::CertTable,
    /// Backends by id (their endpoint state carries over to the next runtime).
    pub backends: HashMap<String, Arc<LiveBackend>>,
    /// The parts of the snapshot left out because they could not be built.
    pub dropped: Vec<DroppedPart>,
}

/// One stage.
pub(crate) struct LiveStage {
    /// `namespace/api/stage`.
    pub id: String,
    pub api: Arc<ApiConfig>,
    pub api_name: String,
    pub name: String,
    pub main: LiveDeployment,
    pub canary: Option<CanaryRuntime>,
    pub access_log: AccessLog,
    /// The stage's and its routes' token buckets (kept across swaps when unchanged).
    pub throttles: StageThrottles,
    /// The stage's response cache (kept across swaps when its settings are unchanged).
    pub cache: Option<Arc<StageStore>>,
    /// The Api's CORS settings, pre-built.
    pub cors: Option<Arc<crate::cors::LiveCors>>,
    /// Header names the gateway sets on some route of the Api; removed from every client
    /// request to it.
    pub reserved_headers: Arc<ReservedHeaders>,
}

/// The canary of a stage.
pub(crate) struct CanaryRuntime {
    pub percent: f64,
    pub sticky: Option<Sticky>,
    pub deployment: LiveDeployment,
    /// Canary requests share the stage's cache entries.
    pub use_stage_cache: bool,
}

/// A deployment's route table.
pub(crate) struct LiveDeployment {
    pub id: String,
    /// Stage variables in effect (authorizer and Lambda events, `$stageVariables` in mappings).
    pub variables: Arc<BTreeMap<String, String>>,
    pub routes: RouteTable<LiveRoute>,
}

/// One route, ready to answer.
pub(crate) struct LiveRoute {
    pub key: String,
    pub api_key_required: bool,
    pub authorization: Option<causeway_snapshot::RouteAuthorization>,
    /// Cached metric handles of this route (labels fixed: api, stage, key, main|canary).
    pub metrics: Arc<RouteMetrics>,
    pub integration: LiveIntegration,
    /// Request validation, when the route has any.
    pub validation: Option<RouteValidator>,
    /// Response caching, when the stage caches this route.
    pub cache: Option<RouteCache>,
    /// A two-way WebSocket route: its integration's answer goes back to the client.
    pub two_way: bool,
}

impl Tables {
    /// Builds every table. A backend, authorizer, API key, certificate, stage or host rule that
    /// cannot be built is left out and listed in [`Tables::dropped`] (a stage that needs a
    /// dropped backend, authorizer or resource policy goes too: it fails closed); the rest
    /// serves, so one object never freezes every tenant.
    ///
    /// Endpoint state (in-flight counts, outlier ejections) of `previous` carries over for the
    /// same backend and address; token buckets come from `limiters`, so unchanged throttles
    /// keep their counts; stage caches come from `caches`, so unchanged cache settings keep
    /// their entries.
    pub fn build(
        snapshot: Snapshot,
        previous: Option<&Tables>,
        limiters: &Limiters,
        caches: &Caches,
    ) -> Self {
        let mut dropped = Vec::new();
        let mut schemas = SchemaCache::default();
        let mut backends: HashMap<String, Arc<LiveBackend>> = HashMap::new();
        for (id, b) in &snapshot.backends {
            let old = previous.and_then(|p| p.backends.get(id));
            match backend(id, b, old.map(|o| &**o)) {
                Ok(live) => {
                    backends.insert(id.clone(), Arc::new(live));
                }
                Err(error) => dropped.push(part("backend", id, &error)),
            }
        }
        let apis: HashMap<&str, Arc<ApiConfig>> = snapshot
            .apis
            .iter()
            .map(|a| (a.id.as_str(), Arc::new(a.clone())))
            .collect();
        let (auth, unusable) = crate::auth::AuthTables::build(&snapshot, &backends);
        for (id, error) in &unusable.authorizers {
            dropped.push(part("authorizer", id, error));
        }
        for (id, error) in &unusable.keys {
            dropped.push(part("key", id, error));
        }
        let reserved = reserved_headers(&snapshot);
        let mut stages = Vec::with_capacity(snapshot.stages.len());
        let mut stage_index = HashMap::new();
        let mut dropped_stages = std::collections::HashSet::new();
        for stage in &snapshot.stages {
            let built = needs_unusable(stage, &apis, &unusable).map_or_else(
                || {
                    live_stage(
                        stage,
                        &apis,
                        &backends,
                        &reserved,
                        limiters,
                        caches,
                        &mut schemas,
                    )
                },
                Err,
            );
            match built {
                Ok(live) => {
                    stage_index.insert(stage.id.as_str(), stages.len());
                    stages.push(live);
                }
                Err(error) => {
                    dropped_stages.insert(stage.id.as_str());
                    dropped.push(part("stage", &stage.id, &error));
                }
            }
        }
        // A rule or mapping of a dropped stage goes with it (already reported); one naming a
        // stage the snapshot never had, or with a bad header name, is reported for its host.
        let lookup_stage = |host: &str, stage: &str| match stage_index.get(stage) {
            Some(i) => Ok(Some(*i)),
            None if dropped_stages.contains(stage) => Ok(None),
            None => Err(ApplyError::UnknownStage {
                host: host.to_string(),
                stage: stage.to_string(),
            }),
        };
        let mut hosts = Vec::with_capacity(snapshot.hosts.len());
        let mut host_errors = Vec::new();
        for host in &snapshot.hosts {
            let mut rules = host.rules.clone();
            rules.sort_by_key(|r| r.priority);
            let mut live_rules = Vec::with_capacity(rules.len());
            for r in &rules {
                let built = r
                    .headers
                    .iter()
                    .map(|(name, glob)| Ok((header_name(name, &host.hostname)?, Glob::parse(glob))))
                    .collect::<Result<Vec<_>, ApplyError>>()
                    .and_then(|headers| Ok((headers, lookup_stage(&host.hostname, &r.stage)?)));
                match built {
                    Ok((headers, Some(stage))) => live_rules.push(Rule {
                        headers,
                        base_paths: r
                            .base_paths
                            .iter()
                            .map(|b| b.trim_matches('/').to_string())
                            .collect(),
                        strip_base_path: r.strip_base_path,
                        stage,
                    }),
                    Ok((_, None)) => {}
                    Err(error) => host_errors.push((host.hostname.clone(), error)),
                }
            }
            let mut mappings = Vec::with_capacity(host.mappings.len());
            for m in &host.mappings {
                match lookup_stage(&host.hostname, &m.stage) {
                    Ok(Some(stage)) => {
                        mappings.push((m.base_path.trim_matches('/').to_string(), stage))
                    }
                    Ok(None) => {}
                    Err(error) => host_errors.push((host.hostname.clone(), error)),
                }
            }
            hosts.push((
                host.hostname.clone(),
                HostRoutes {
                    rules: live_rules,
                    mappings,
                    redirect_to_https: host.redirect_to_https,
                },
            ));
        }
        for (host, error) in &host_errors {
            dropped.push(part("host", host, error));
        }
        let plans = crate::limits::PlanLimits::build(
            &snapshot.usage_plans,
            limiters,
            previous.map(|p| &p.plans),
        );
        let (certificates, bad_certificates) = certs::CertTable::build(&snapshot.certificates);
        for (names, error) in &bad_certificates {
            dropped.push(part("certificate", names, error));
        }
        Self {
            auth,
            plans,
            snapshot: Arc::new(kept::KeptSnapshot::new(snapshot)),
            hosts: HostTable::new(hosts),
            stages,
            certificates,
            backends,
            dropped,
        }
    }
}

/// Why a stage cannot serve because a piece it needs was left out: its Api's resource policy
/// or an authorizer of one of its routes (main or canary) or of its `@connections` API.
fn needs_unusable(
    stage: &causeway_snapshot::StageConfig,
    apis: &HashMap<&str, Arc<ApiConfig>>,
    unusable: &crate::auth::Unusable,
) -> Option<ApplyError> {
    let needs = |what, id: &str, error: &crate::error::AuthApplyError| ApplyError::NeedsUnusable {
        what,
        id: id.to_string(),
        reason: error.to_string(),
    };
    if let Some(error) = unusable.policies.get(&stage.api) {
        return Some(needs("the resource policy of Api", &stage.api, error));
    }
    let connections = apis
        .get(stage.api.as_str())
        .and_then(|api| api.websocket.as_ref())
        .and_then(|ws| ws.connections_authorization.as_ref());
    let deployments =
        std::iter::once(&stage.main).chain(stage.canary.iter().map(|c| &c.deployment));
    deployments
        .flat_map(|d| &d.routes)
        .filter_map(|route| route.authorization.as_ref())
        .chain(connections)
        .find_map(|a| {
            let error = unusable.authorizers.get(&a.authorizer)?;
            Some(needs("authorizer", &a.authorizer, error))
        })
}

fn part(kind: &str, id: &str, error: &impl std::fmt::Display) -> DroppedPart {
    DroppedPart {
        kind: kind.to_string(),
        id: id.to_string(),
        reason: error.to_string(),
    }
}

/// One stage's tables: its Api, its main and canary deployments, throttles, cache and CORS.
fn live_stage(
    stage: &causeway_snapshot::StageConfig,
    apis: &HashMap<&str, Arc<ApiConfig>>,
    backends: &HashMap<String, Arc<LiveBackend>>,
    reserved: &HashMap<String, Arc<ReservedHeaders>>,
    limiters: &Limiters,
    caches: &Caches,
    schemas: &mut SchemaCache,
) -> Result<LiveStage, ApplyError> {
    let api = apis
        .get(stage.api.as_str())
        .cloned()
        .ok_or_else(|| ApplyError::UnknownApi {
            stage: stage.id.clone(),
            api: stage.api.clone(),
        })?;
    let labels = |deployment| MetricLabels {
        api: &stage.api_name,
        stage: &stage.name,
        deployment,
    };
    let main = deployment(&stage.id, &stage.main, backends, &labels("main"), schemas)?;
    let canary = match &stage.canary {
        Some(c) => Some(CanaryRuntime {
            percent: c.percent.clamp(0.0, 100.0),
            sticky: c.sticky.clone(),
            deployment: deployment(
                &stage.id,
                &c.deployment,
                backends,
                &labels("canary"),
                schemas,
            )?,
            use_stage_cache: c.use_stage_cache,
        }),
        None => None,
    };
    let cors = api
        .cors
        .as_ref()
        .map(|c| Arc::new(crate::cors::LiveCors::new(c)));
    Ok(LiveStage {
        id: stage.id.clone(),
        cors,
        reserved_headers: reserved
            .get(stage.api.as_str())
            .cloned()
            .unwrap_or_default(),
        api,
        api_name: stage.api_name.clone(),
        name: stage.name.clone(),
        main,
        canary,
        access_log: stage.access_log.clone(),
        throttles: StageThrottles::build(stage, limiters),
        cache: stage.cache.as_ref().map(|settings| {
            let labels = CacheLabels {
                api: stage.api_name.clone(),
                stage: stage.name.clone(),
            };
            caches.store(&stage.id, settings, labels)
        }),
    })
}

/// Per Api, every header name the gateway sets on some route of it, in any deployment of any
/// stage: its authorizers' `forwardHeaders`, request mappings that overwrite or append a
/// header, and integration headers. A client's copy is removed on every route of the Api
/// (`upstream::forwarded`), so no route lets a client imitate what another route's gateway
/// sets.
fn reserved_headers(snapshot: &Snapshot) -> HashMap<String, Arc<ReservedHeaders>> {
    use causeway_snapshot::mapping::{MappingAction, MappingTarget};
    let mut by_api: HashMap<&str, ReservedHeaders> = HashMap::new();
    for authorizer in snapshot.authorizers.values() {
        let set = by_api.entry(authorizer.api.as_str()).or_default();
        for name in authorizer.forward_headers.keys() {
            set.insert(name);
        }
    }
    for stage in &snapshot.stages {
        let set = by_api.entry(stage.api.as_str()).or_default();
        let deployments =
            std::iter::once(&stage.main).chain(stage.canary.iter().map(|c| &c.deployment));
        for route in deployments.flat_map(|d| &d.routes) {
            if let Some(authorizer) = route
                .authorization
                .as_ref()
                .and_then(|a| snapshot.authorizers.get(&a.authorizer))
            {
                for name in authorizer.forward_headers.keys() {
                    set.insert(name);
                }
            }
            if let Integration::HttpProxy(h) = &route.integration {
                for name in h.request_headers.keys() {
                    set.insert(name);
                }
                for m in &h.request_parameters {
                    if let MappingTarget::Header(name) = &m.target
                        && m.action != MappingAction::Remove
                    {
                        set.insert(name);
                    }
                }
            }
        }
    }
    by_api
        .into_iter()
        .map(|(api, set)| (api.to_string(), Arc::new(set)))
        .collect()
}

fn backend(
    id: &str,
    b: &Backend,
    previous: Option<&LiveBackend>,
) -> Result<LiveBackend, ApplyError> {
    let authority = HeaderValue::from_str(&b.authority).map_err(|_| ApplyError::Invalid {
        what: "authority",
        value: b.authority.clone(),
        context: format!("backend {id}"),
    })?;
    let endpoints = b
        .endpoints
        .iter()
        .map(|address| {
            let state = previous
                .and_then(|p| p.balancer.endpoints.iter().find(|e| &e.address == address))
                .map(|e| Arc::clone(&e.state))
                .unwrap_or_default();
            Endpoint {
                address: address.clone(),
                state,
            }
        })
        .collect();
    let tls = match b.scheme {
        UpstreamScheme::Http => None,
        UpstreamScheme::Https => {
            let settings = b.tls.clone().unwrap_or_default();
            let reused = previous
                .and_then(|p| p.tls.as_ref())
                .filter(|t| t.settings == settings && p_authority(previous) == b.authority)
                .cloned();
            match reused {
                Some(t) => Some(t),
                None => Some(Arc::new(TlsOrigin::new(&b.authority, &settings).map_err(
                    |e| ApplyError::Invalid {
                        what: "tls settings",
                        value: e.to_string(),
                        context: format!("backend {id}"),
                    },
                )?)),
            }
        }
    };
    let h2c = match (b.scheme, b.http2) {
        (UpstreamScheme::Http, true) => Some(
            b.endpoints
                .iter()
                .map(|address| {
                    let reused = previous
                        .and_then(|p| p.h2c.as_ref())
                        .and_then(|c| c.iter().find(|e| &e.address == address).cloned());
                    match reused {
                        Some(e) => Ok(e),
                        None => H2cEndpoint::new(address).map(Arc::new).map_err(|e| {
                            ApplyError::Invalid {
                                what: "endpoint",
                                value: format!("{address}: {e}"),
                                context: format!("backend {id}"),
                            }
                        }),
                    }
                })
                .collect::<Result<Vec<_>, ApplyError>>()?,
        ),
        _ => None,
    };
    Ok(LiveBackend {
        id: id.to_string(),
        scheme: b.scheme,
        authority,
        balancer: Balancer::new(endpoints, b.load_balancing),
        tls,
        h2c,
    })
}

fn p_authority(previous: Option<&LiveBackend>) -> &str {
    previous
        .and_then(|p| p.authority.to_str().ok())
        .unwrap_or_default()
}

/// A route's mapping templates, parsed (compile parsed the same text, so this fails only on a
/// snapshot compile did not make).
fn live_templates(
    mapping: Option<&causeway_snapshot::IntegrationMapping>,
    route: &str,
) -> Result<Option<LiveTemplates>, ApplyError> {
    mapping
        .map(|m| {
            LiveTemplates::build(m).map_err(|value| ApplyError::Invalid {
                what: "mapping template",
                value,
                context: format!("route {route}"),
            })
        })
        .transpose()
}

/// Metric labels of a deployment's routes.
struct MetricLabels<'a> {
    api: &'a str,
    stage: &'a str,
    deployment: &'static str,
}

fn deployment(
    stage: &str,
    d: &DeploymentConfig,
    backends: &HashMap<String, Arc<LiveBackend>>,
    labels: &MetricLabels<'_>,
    schemas: &mut SchemaCache,
) -> Result<LiveDeployment, ApplyError> {
    let find_backend = |route: &str, id: &str| {
        backends
            .get(id)
            .cloned()
            .ok_or_else(|| ApplyError::UnknownBackend {
                stage: stage.to_string(),
                route: route.to_string(),
                backend: id.to_string(),
            })
    };
    let mut routes = Vec::with_capacity(d.routes.len());
    for r in &d.routes {
        let integration = match &r.integration {
            Integration::HttpProxy(h) => {
                let backend = backends.get(&h.backend).cloned().ok_or_else(|| {
                    ApplyError::UnknownBackend {
                        stage: stage.to_string(),
                        route: r.key.clone(),
                        backend: h.backend.clone(),
                    }
                })?;
                let method =
                    match &h.method {
                        Some(m) => Some(Method::from_bytes(m.as_bytes()).map_err(|_| {
                            ApplyError::Invalid {
                                what: "method",
                                value: m.clone(),
                                context: format!("route {}", r.key),
                            }
                        })?),
                        None => None,
                    };
                LiveIntegration::HttpProxy(LiveHttpProxy {
                    target: HttpTarget {
                        backend,
                        path: h.path.clone(),
                        method,
                        request_headers: header_map(&h.request_headers, &r.key)?,
                        timeout: Duration::from_millis(u64::from(h.timeout_ms.max(1))),
                    },
                    mapping: LiveMapping::build(&h.request_parameters, &h.response_parameters)
                        .map_err(|source| ApplyError::Mapping {
                            stage: stage.to_string(),
                            route: r.key.clone(),
                            source,
                        })?,
                    templates: live_templates(h.mapping.as_ref(), &r.key)?,
                })
            }
            Integration::LambdaProxy(l) => LiveIntegration::LambdaProxy(LiveLambda {
                backend: find_backend(&r.key, &l.backend)?,
                path: if l.path.starts_with('/') {
                    l.path.clone()
                } else {
                    format!("/{}", l.path)
                },
                payload_format: l.payload_format,
                timeout: Duration::from_millis(u64::from(l.timeout_ms.max(1))),
            }),
            Integration::Lambda(l) => LiveIntegration::Lambda(LiveLambdaMapped {
                backend: find_backend(&r.key, &l.backend)?,
                path: if l.path.starts_with('/') {
                    l.path.clone()
                } else {
                    format!("/{}", l.path)
                },
                timeout: Duration::from_millis(u64::from(l.timeout_ms.max(1))),
                templates: LiveTemplates::build(&l.mapping).map_err(|value| {
                    ApplyError::Invalid {
                        what: "mapping template",
                        value,
                        context: format!("route {}", r.key),
                    }
                })?,
            }),
            Integration::Mock(m) => LiveIntegration::Mock(LiveMock {
                status: StatusCode::from_u16(m.status).map_err(|_| ApplyError::Invalid {
                    what: "status",
                    value: m.status.to_string(),
                    context: format!("route {}", r.key),
                })?,
                headers: header_map(&m.headers, &r.key)?,
                body: m.body.clone(),
                templates: live_templates(m.mapping.as_ref(), &r.key)?,
            }),
        };
        routes.push((
            r.key.clone(),
            r.matcher.clone(),
            LiveRoute {
                metrics: Arc::new(RouteMetrics::new(
                    labels.api,
                    labels.stage,
                    &r.key,
                    labels.deployment,
                )),
                key: r.key.clone(),
                api_key_required: r.api_key_required,
                authorization: r.authorization.clone(),
                integration,
                validation: r
                    .validation
                    .as_ref()
                    .map(|v| RouteValidator::build(v, schemas))
                    .transpose()
                    .map_err(|source| ApplyError::Schema {
                        stage: stage.to_string(),
                        route: r.key.clone(),
                        source,
                    })?,
                cache: r.cache.clone(),
                two_way: r.two_way,
            },
        ));
    }
    let routes = RouteTable::build(routes).map_err(|(key, source)| ApplyError::Route {
        stage: stage.to_string(),
        deployment: d.deployment_id.clone(),
        key,
        source,
    })?;
    Ok(LiveDeployment {
        id: d.deployment_id.clone(),
        variables: Arc::new(d.variables.clone()),
        routes,
    })
}

fn header_name(name: &str, context: &str) -> Result<HeaderName, ApplyError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| ApplyError::Invalid {
        what: "header name",
        value: name.to_string(),
        context: context.to_string(),
    })
}

fn header_map(
    headers: &std::collections::BTreeMap<String, String>,
    route: &str,
) -> Result<HeaderMap, ApplyError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let context = format!("route {route}");
        let n = header_name(name, &context)?;
        let v = HeaderValue::from_str(value).map_err(|_| ApplyError::Invalid {
            what: "header value",
            value: value.clone(),
            context,
        })?;
        map.append(n, v);
    }
    Ok(map)
}
