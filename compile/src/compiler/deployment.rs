//! Deployments: the definition of an Api as its Routes made it, before any stage resolves it.
//!
//! A definition holds the defaulted Api settings and the accepted routes sorted by key, with
//! stage variables still written `${stageVariables.x}` and backends named (Service and port, or
//! URL origin), never resolved to endpoints, so endpoint churn does not change it. Its id is the
//! first 10 hex digits of SHA-256 over its canonical JSON (object keys sorted, no whitespace).
//! A record holds everything needed to serve it again: a stage pinned to an older id is
//! materialized from the record in `Inventory::deployments`.

use std::collections::BTreeMap;
use std::sync::Arc;

use causeway_crds::common::ObjectRef;
use causeway_snapshot::{
    ApiConfig, Backend, DeploymentConfig, HttpProxyIntegration, Integration, IntegrationMapping,
    LambdaIntegration, LambdaProxyIntegration, MockIntegration, ParameterMapping, PayloadFormat,
    RequestValidation, RouteAuthorization, RouteConfig, Template, Throttle, UpstreamScheme,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::api::ApiEntry;
use super::backend::Cluster;
use super::text::{parse_origin, parse_route_key, substitute};
use super::{ObjKey, Problem};
use crate::{DeploymentRecord, reasons};

/// The version of the definition's shape; part of the hash.
const FORMAT: u32 = 1;

/// An Api as deployed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Definition {
    /// Shape version.
    pub format: u32,
    /// The Api's settings, defaults applied.
    pub api: ApiConfig,
    /// The Api's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Accepted routes, sorted by key.
    pub routes: Vec<DefRoute>,
}

/// One route of a definition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DefRoute {
    /// The route key as written.
    pub key: String,
    /// What answers it.
    pub integration: DefIntegration,
    /// Require an API key.
    #[serde(default)]
    pub api_key_required: bool,
    /// Request validation, models resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<RequestValidation>,
    /// The authorizer that must allow requests (absent: none, and the deployment id of a
    /// route without one is what it was before authorizers existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<RouteAuthorization>,
    /// A route of a WebSocket Api (its key is matched as it is, not as `METHOD /path`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub websocket: bool,
    /// A two-way WebSocket route: the integration's answer goes back to the client.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub two_way: bool,
}

/// An integration with stage variables unresolved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "type")]
pub(crate) enum DefIntegration {
    /// Forward upstream.
    #[serde(rename_all = "camelCase")]
    HttpProxy {
        /// Where to.
        target: DefTarget,
        /// Upstream path template (`{param}`, `${stageVariables.x}`), or the request's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Upstream method, or the request's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// Headers added (lowercase names).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        request_headers: BTreeMap<String, String>,
        /// Timeout, ms.
        timeout_ms: u32,
        /// Request parameter mapping (values may hold `${stageVariables.x}`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        request_parameters: Vec<ParameterMapping>,
        /// Response parameter mapping.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        response_parameters: Vec<ParameterMapping>,
        /// `HTTP` (non-proxy): templates and integration responses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mapping: Option<IntegrationMapping>,
    },
    /// POST a Lambda proxy event.
    #[serde(rename_all = "camelCase")]
    LambdaProxy {
        /// Where to.
        target: DefTarget,
        /// Invoke path (may hold `${stageVariables.x}`).
        path: String,
        /// Payload format.
        payload_format: PayloadFormat,
        /// Timeout, ms.
        timeout_ms: u32,
    },
    /// Lambda non-proxy: POST the mapped payload, select the integration response by the
    /// function's error message.
    #[serde(rename_all = "camelCase")]
    Lambda {
        /// Where to.
        target: DefTarget,
        /// Invoke path (may hold `${stageVariables.x}`).
        path: String,
        /// Timeout, ms.
        timeout_ms: u32,
        /// Templates and integration responses.
        mapping: IntegrationMapping,
    },
    /// Answer from the gateway.
    #[serde(rename_all = "camelCase")]
    Mock {
        /// Status code.
        status: u16,
        /// Headers.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        /// Body template.
        body: String,
        /// Templates and integration responses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mapping: Option<IntegrationMapping>,
    },
}

/// A backend by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub(crate) enum DefTarget {
    /// A Service port.
    #[serde(rename_all = "camelCase")]
    Service {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Service port.
        port: u16,
        /// Scheme.
        scheme: UpstreamScheme,
        /// The VpcLink named for a Service of another namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vpc_link: Option<ObjectRef>,
    },
    /// `scheme://host[:port]` of a URI (may hold stage variables).
    #[serde(rename_all = "camelCase")]
    Url {
        /// The origin as written.
        origin: String,
        /// The VpcLink named, if the host is a Service of another namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vpc_link: Option<ObjectRef>,
    },
}

/// The current definition and record of every accepted Api.
#[derive(Debug, Default)]
pub(crate) struct Deployments {
    /// By Api.
    pub current: BTreeMap<ObjKey, Arc<(Definition, DeploymentRecord)>>,
}

/// The current definition and record of an Api, if it is accepted; `routes` are its accepted
/// routes sorted by key.
pub(crate) fn current_of(
    key: &ObjKey,
    entry: &ApiEntry,
    routes: Vec<DefRoute>,
) -> Option<(Definition, DeploymentRecord)> {
    let compiled = entry.compiled.as_ref().ok()?;
    let definition = Definition {
        format: FORMAT,
        api: compiled.config.clone(),
        description: entry.object.spec.description.clone(),
        routes,
    };
    let value = serde_json::to_value(&definition).unwrap_or_default();
    let record = DeploymentRecord {
        id: deployment_id(&value),
        api: format!("{}/{}", key.0, key.1),
        definition: Arc::new(value),
    };
    Some((definition, record))
}

/// The content hash of a definition: 10 hex digits of SHA-256 over its canonical JSON.
pub(crate) fn deployment_id(definition: &Value) -> String {
    let mut bytes = Vec::new();
    if *MAPS_ARE_SORTED {
        // serde_json's map is a BTreeMap unless some crate turns on `preserve_order`: its
        // compact encoding is then already canonical.
        bytes = serde_json::to_vec(definition).unwrap_or_default();
    } else {
        canonical_json(definition, &mut bytes);
    }
    hex::encode(Sha256::digest(&bytes))[..10].to_string()
}

/// Whether `serde_json::Map` iterates in key order in this build (a constant of the build,
/// found once).
static MAPS_ARE_SORTED: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    let mut map = serde_json::Map::new();
    map.insert("b".into(), Value::Null);
    map.insert("a".into(), Value::Null);
    map.insert("c".into(), Value::Null);
    map.keys().map(String::as_str).eq(["a", "b", "c"])
});

/// JSON with object keys sorted at every level and no whitespace, whatever map type
/// `serde_json` was built with.
fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(k).unwrap_or_default());
                out.push(b':');
                canonical_json(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(v, out);
            }
            out.push(b']');
        }
        scalar => out.extend(serde_json::to_vec(scalar).unwrap_or_default()),
    }
}

/// Reads a recorded definition back.
pub(crate) fn load(record: &DeploymentRecord) -> Result<Definition, String> {
    let definition: Definition =
        Definition::deserialize(record.definition.as_ref()).map_err(|e| e.to_string())?;
    if definition.format != FORMAT {
        return Err(format!(
            "definition format {} is not {FORMAT}",
            definition.format
        ));
    }
    Ok(definition)
}

/// What a stage needs to materialize a definition.
#[derive(Debug)]
pub(crate) struct StageContext<'a> {
    /// The cluster to resolve backends in.
    pub cluster: &'a Cluster<'a>,
    /// The Api's namespace.
    pub namespace: &'a str,
    /// Route throttles by route key.
    pub route_throttles: &'a BTreeMap<String, Throttle>,
    /// The stage's response caching.
    pub cache: &'a super::cache::CachePlan,
}

/// Materializes a definition for a stage: stage variables substituted, backends resolved
/// (added to `backends`), route throttles applied.
pub(crate) fn materialize(
    definition: &Definition,
    deployment_id: &str,
    variables: &BTreeMap<String, String>,
    context: &StageContext<'_>,
    backends: &mut BTreeMap<String, Backend>,
) -> Result<DeploymentConfig, Problem> {
    let mut routes = Vec::with_capacity(definition.routes.len());
    for route in &definition.routes {
        let parsed = if route.websocket {
            super::websocket::parse_key(&route.key)
        } else {
            parse_route_key(&route.key)
        }
        .map_err(|e| {
            Problem::invalid(
                reasons::INVALID_ROUTE_KEY,
                format!("deployment {deployment_id}: route key {:?}: {e}", route.key),
            )
        })?;
        let integration = match &route.integration {
            DefIntegration::Mock {
                status,
                headers,
                body,
                mapping,
            } => Integration::Mock(MockIntegration {
                status: *status,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.clone(), substitute(v, variables)))
                    .collect(),
                body: Template::parse(&substitute(body, variables)),
                mapping: mapping.clone(),
            }),
            DefIntegration::HttpProxy {
                target,
                path,
                method,
                request_headers,
                timeout_ms,
                request_parameters,
                response_parameters,
                mapping,
            } => {
                let id = resolve_target(&route.key, target, variables, context, backends)?;
                let substituted = |mappings: &[ParameterMapping]| {
                    mappings
                        .iter()
                        .map(|m| ParameterMapping {
                            value: substitute(&m.value, variables),
                            ..m.clone()
                        })
                        .collect()
                };
                Integration::HttpProxy(HttpProxyIntegration {
                    backend: id,
                    path: path
                        .as_ref()
                        .map(|p| Template::parse(&substitute(p, variables))),
                    method: method.clone(),
                    request_headers: request_headers
                        .iter()
                        .map(|(k, v)| (k.clone(), substitute(v, variables)))
                        .collect(),
                    timeout_ms: *timeout_ms,
                    request_parameters: substituted(request_parameters),
                    response_parameters: substituted(response_parameters),
                    mapping: mapping.clone(),
                })
            }
            DefIntegration::LambdaProxy {
                target,
                path,
                payload_format,
                timeout_ms,
            } => {
                let id = resolve_target(&route.key, target, variables, context, backends)?;
                Integration::LambdaProxy(LambdaProxyIntegration {
                    backend: id,
                    path: substitute(path, variables),
                    payload_format: *payload_format,
                    timeout_ms: *timeout_ms,
                })
            }
            DefIntegration::Lambda {
                target,
                path,
                timeout_ms,
                mapping,
            } => {
                let id = resolve_target(&route.key, target, variables, context, backends)?;
                Integration::Lambda(LambdaIntegration {
                    backend: id,
                    path: substitute(path, variables),
                    timeout_ms: *timeout_ms,
                    mapping: mapping.clone(),
                })
            }
        };
        routes.push(RouteConfig {
            key: route.key.clone(),
            matcher: parsed.matcher,
            integration,
            api_key_required: route.api_key_required,
            throttle: context.route_throttles.get(&route.key).copied(),
            validation: route.validation.clone(),
            cache: context.cache.for_route(&route.key),
            authorization: route.authorization.clone(),
            two_way: route.two_way,
        });
    }
    routes.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(DeploymentConfig {
        deployment_id: deployment_id.to_string(),
        variables: variables.clone(),
        routes,
    })
}

/// Resolves a backend for a stage (adding it to `backends`) and returns its id.
fn resolve_target(
    route_key: &str,
    target: &DefTarget,
    variables: &BTreeMap<String, String>,
    context: &StageContext<'_>,
    backends: &mut BTreeMap<String, Backend>,
) -> Result<String, Problem> {
    let field = format!("route {route_key:?}");
    let (id, backend) = match target {
        DefTarget::Service {
            namespace,
            name,
            port,
            scheme,
            vpc_link,
        } => {
            context.cluster.permit(
                &field,
                context.namespace,
                namespace,
                name,
                vpc_link.as_ref(),
            )?;
            context
                .cluster
                .service_backend(namespace, name, *port, *scheme)
        }
        DefTarget::Url { origin, vpc_link } => {
            let rendered = substitute(origin, variables);
            let parsed = parse_origin(&rendered).map_err(|e| {
                Problem::invalid(
                    reasons::INVALID_TEMPLATE,
                    format!(
                        "{field}: the uri origin {origin:?} renders to {rendered:?} with this stage's variables: {e}"
                    ),
                )
            })?;
            context
                .cluster
                .origin_backend(&field, &parsed, context.namespace, vpc_link.as_ref())?
        }
    };
    backends.insert(id.clone(), backend);
    Ok(id)
}
