//! Api objects: settings that apply to every stage (gateway responses, CORS, resource policy,
//! binary media types, body limit).
//!
//! Gateway responses are complete in the snapshot: every [`GatewayResponseKind`] gets a status,
//! a content type and a body. The default bodies are literal JSON with API Gateway's messages
//! (`{"message":"Missing Authentication Token"}`), so the proxy needs no template support to
//! send them. Overrides follow API Gateway: a `DEFAULT_4XX` (`DEFAULT_5XX`) override changes the
//! headers, body and content type of every 4xx (5xx) kind that has no override of its own, but
//! not their status codes; a kind's own override replaces what it sets.

use std::collections::{BTreeMap, BTreeSet};

use causeway_crds::Api;
use causeway_crds::api::{
    ApiKeySource, ApiProtocol, ApiType, GatewayResponseSpec, GatewayResponseType,
};
use causeway_snapshot::{
    ApiConfig, Cors, GatewayResponse, GatewayResponseKind, SourcePolicy, WebSocketConfig,
};
use ipnet::IpNet;

use super::Input;
use super::{Apis, ObjKey, Problem, Verdict, cel, obj_key};
use crate::DeploymentRecord;
use crate::reasons;
use crate::status::{Kind, ObjectStatus, StatusDetail};

/// One Api as compiled.
#[derive(Debug)]
pub(crate) struct ApiEntry {
    /// The Api object.
    pub object: Api,
    /// Its settings, or why it is refused.
    pub compiled: Result<CompiledApi, Problem>,
}

/// The accepted settings of an Api.
#[derive(Debug, Clone)]
pub(crate) struct CompiledApi {
    /// What the snapshot carries.
    pub config: ApiConfig,
    /// Whether the default endpoint is served.
    pub execute_api_endpoint: bool,
}

/// Compiles every Api (no status yet: that needs the deployment).
pub(crate) fn compile_apis(inventory: &Input<'_>) -> Apis {
    inventory
        .apis
        .iter()
        .map(|api| {
            let key = obj_key(&api.metadata);
            let compiled = compile_api(api, &key);
            (
                key,
                ApiEntry {
                    object: api.clone(),
                    compiled,
                },
            )
        })
        .collect()
}

fn compile_api(api: &Api, (namespace, name): &ObjKey) -> Result<CompiledApi, Problem> {
    cel::check(Kind::Api, api)?;
    let spec = &api.spec;
    let websocket = websocket_config(spec)?;
    if spec.api_key_source == Some(ApiKeySource::Authorizer) {
        // Keys from an authorizer's usageIdentifierKey are not read yet; serving such an Api
        // with x-api-key instead would silently change who may call it.
        return Err(Problem::invalid(
            reasons::UNSUPPORTED_FEATURE,
            "spec.apiKeySource: AUTHORIZER is not built yet (use HEADER, the default)",
        ));
    }
    let policy = match &spec.policy {
        None => None,
        Some(p) if p.allow_cidrs.is_empty() && p.deny_cidrs.is_empty() => None,
        Some(p) => Some(SourcePolicy {
            allow: cidrs("spec.policy.allowCidrs", &p.allow_cidrs)?,
            deny: cidrs("spec.policy.denyCidrs", &p.deny_cidrs)?,
        }),
    };
    let cors = match &spec.cors {
        None => None,
        Some(c) => {
            let allow_credentials = c.allow_credentials.unwrap_or(false);
            if allow_credentials && c.allow_origins.iter().any(|o| o == "*") {
                return Err(Problem::invalid(
                    reasons::INVALID,
                    "spec.cors: allowCredentials is not allowed with allowOrigins '*'",
                ));
            }
            if c.max_age_seconds.is_some_and(|s| s > 86_400) {
                return Err(Problem::invalid(
                    reasons::INVALID,
                    "spec.cors.maxAgeSeconds must be at most 86400",
                ));
            }
            Some(Cors {
                allow_origins: c.allow_origins.clone(),
                allow_methods: c
                    .allow_methods
                    .iter()
                    .map(|m| m.to_ascii_uppercase())
                    .collect(),
                allow_headers: c
                    .allow_headers
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
                expose_headers: c
                    .expose_headers
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
                max_age_seconds: c.max_age_seconds,
                allow_credentials,
            })
        }
    };
    super::validation::check_models(&spec.models)?;
    let execute_api_endpoint = match (spec.disable_execute_api_endpoint, spec.execute_api_endpoint)
    {
        (Some(disable), Some(enable)) if disable == enable => {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!(
                    "spec.disableExecuteApiEndpoint: {disable} contradicts spec.executeApiEndpoint: {enable} (set only disableExecuteApiEndpoint)"
                ),
            ));
        }
        (Some(disable), _) => !disable,
        (None, enable) => enable.unwrap_or(true),
    };
    let mut binary_media_types = spec.binary_media_types.clone();
    binary_media_types.sort();
    binary_media_types.dedup();
    Ok(CompiledApi {
        config: ApiConfig {
            id: format!("{namespace}/{name}"),
            gateway_responses: gateway_responses(&spec.gateway_responses, spec.api_type)?,
            max_body_bytes: spec.max_body_bytes,
            cors,
            policy,
            binary_media_types,
            websocket,
        },
        execute_api_endpoint,
    })
}

/// The default route selection expression of a WebSocket Api (AWS's usual choice).
pub(crate) const DEFAULT_ROUTE_SELECTION: &str = "$request.body.action";
/// The only API key selection expression served.
const API_KEY_HEADER_SELECTION: &str = "$request.header.x-api-key";

/// A WebSocket Api's settings; `None` on an HTTP Api, which may not set WebSocket fields.
/// What is not built is refused here, by name, rather than served differently.
fn websocket_config(
    spec: &causeway_crds::api::ApiSpec,
) -> Result<Option<WebSocketConfig>, Problem> {
    if spec.protocol != Some(ApiProtocol::Websocket) {
        let ws_only = [
            (
                spec.route_selection_expression.is_some(),
                "routeSelectionExpression",
            ),
            (
                spec.api_key_selection_expression.is_some(),
                "apiKeySelectionExpression",
            ),
            (
                spec.connections_authorizer_ref.is_some(),
                "connectionsAuthorizerRef",
            ),
        ];
        if let Some((_, field)) = ws_only.iter().find(|(set, _)| *set) {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!("spec.{field} is for WebSocket Apis only (spec.protocol: WEBSOCKET)"),
            ));
        }
        return Ok(None);
    }
    let unsupported = |m: &str| Problem::invalid(reasons::UNSUPPORTED_FEATURE, m.to_string());
    if spec.cors.is_some() {
        return Err(Problem::invalid(
            reasons::INVALID,
            "spec.cors: WebSocket Apis have no CORS (a browser does not preflight an upgrade)",
        ));
    }
    if spec.definition.is_some() {
        return Err(unsupported(
            "spec.definition: importing an OpenAPI document into a WebSocket Api is not built",
        ));
    }
    if !spec.models.is_empty() {
        return Err(unsupported(
            "spec.models: request validation of WebSocket messages is not built",
        ));
    }
    if !spec.binary_media_types.is_empty() {
        return Err(unsupported(
            "spec.binaryMediaTypes: WebSocket binary frames are passed as they are; the setting is not built",
        ));
    }
    let expression = spec
        .route_selection_expression
        .as_deref()
        .unwrap_or(DEFAULT_ROUTE_SELECTION);
    let route_selection = route_selection_path(expression).map_err(|e| {
        Problem::invalid(
            reasons::INVALID,
            format!("spec.routeSelectionExpression {expression:?}: {e}"),
        )
    })?;
    match spec.api_key_selection_expression.as_deref() {
        None | Some(API_KEY_HEADER_SELECTION) => {}
        Some("$context.authorizer.usageIdentifierKey") => {
            return Err(unsupported(
                "spec.apiKeySelectionExpression: $context.authorizer.usageIdentifierKey is not built yet (use $request.header.x-api-key, the default)",
            ));
        }
        Some(other) => {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!(
                    "spec.apiKeySelectionExpression {other:?} must be $request.header.x-api-key or $context.authorizer.usageIdentifierKey"
                ),
            ));
        }
    }
    Ok(Some(WebSocketConfig {
        route_selection,
        // Resolved once the Api's authorizers are compiled (`resolve_connections_authorizers`).
        connections_authorization: None,
    }))
}

/// `$request.body.a.b` (or `${request.body.a.b}`) → `["a", "b"]`.
pub(crate) fn route_selection_path(expression: &str) -> Result<Vec<String>, String> {
    let inner = match expression
        .strip_prefix("${")
        .and_then(|e| e.strip_suffix('}'))
    {
        Some(inner) => inner,
        None => expression.strip_prefix('$').unwrap_or(""),
    };
    let Some(path) = inner.strip_prefix("request.body.") else {
        return Err(
            "only $request.body.NAME (or a nested $request.body.a.b) is served as a route selection expression"
                .into(),
        );
    };
    let segments: Vec<String> = path.split('.').map(str::to_string).collect();
    if segments.iter().any(|s| {
        s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) {
        return Err("each segment of the body path must be letters, digits, '_' or '-'".into());
    }
    Ok(segments)
}

/// Resolves each WebSocket Api's `connectionsAuthorizerRef` to its SIGV4 authorizer; an Api
/// whose reference does not resolve is refused, naming it.
pub(crate) fn resolve_connections_authorizers(
    apis: &mut Apis,
    authorizers: &super::authorizer::Authorizers,
) {
    for ((namespace, name), entry) in apis.iter_mut() {
        let Some(reference) = entry.object.spec.connections_authorizer_ref.clone() else {
            continue;
        };
        let Ok(compiled) = entry.compiled.as_mut() else {
            continue;
        };
        let resolved = super::authorizer::resolve(authorizers, namespace, name, &reference, &[])
            .and_then(|authorization| {
                if super::authorizer::is_sigv4(authorizers, &authorization.authorizer) {
                    Ok(authorization)
                } else {
                    Err(Problem::invalid(
                        reasons::INVALID,
                        format!(
                            "spec.connectionsAuthorizerRef: Authorizer {} is not of type SIGV4 (the @connections API is signed as on AWS)",
                            reference.name
                        ),
                    ))
                }
            });
        match resolved {
            Ok(authorization) => {
                if let Some(ws) = compiled.config.websocket.as_mut() {
                    ws.connections_authorization = Some(authorization);
                }
            }
            Err(problem) => entry.compiled = Err(problem),
        }
    }
}

/// Parses and normalizes CIDRs (a bare address is a /32 or /128), sorted and deduplicated.
fn cidrs(field: &str, items: &[String]) -> Result<Vec<String>, Problem> {
    let mut out = BTreeSet::new();
    for item in items {
        let net = item
            .parse::<IpNet>()
            .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                Problem::invalid(
                    reasons::INVALID,
                    format!("{field}: {item:?} is not a CIDR such as 10.0.0.0/8"),
                )
            })?;
        out.insert(net.trunc());
    }
    Ok(out.into_iter().map(|n| n.to_string()).collect())
}

/// Every kind, in a fixed order.
pub(crate) const ALL_KINDS: [GatewayResponseKind; 21] = [
    GatewayResponseKind::Default4xx,
    GatewayResponseKind::Default5xx,
    GatewayResponseKind::MissingAuthenticationToken,
    GatewayResponseKind::Unauthorized,
    GatewayResponseKind::AccessDenied,
    GatewayResponseKind::InvalidApiKey,
    GatewayResponseKind::InvalidSignature,
    GatewayResponseKind::ExpiredToken,
    GatewayResponseKind::WafFiltered,
    GatewayResponseKind::Throttled,
    GatewayResponseKind::QuotaExceeded,
    GatewayResponseKind::BadRequestBody,
    GatewayResponseKind::BadRequestParameters,
    GatewayResponseKind::RequestTooLarge,
    GatewayResponseKind::UnsupportedMediaType,
    GatewayResponseKind::AuthorizerFailure,
    GatewayResponseKind::AuthorizerConfigurationError,
    GatewayResponseKind::IntegrationTimeout,
    GatewayResponseKind::IntegrationFailure,
    GatewayResponseKind::ResourceNotFound,
    GatewayResponseKind::ApiConfigurationError,
];

/// API Gateway's default status and message for a kind.
pub(crate) fn default_response(kind: GatewayResponseKind) -> (u16, &'static str) {
    use GatewayResponseKind as K;
    match kind {
        K::Default4xx => (400, "Bad Request"),
        K::Default5xx => (500, "Internal Server Error"),
        K::MissingAuthenticationToken => (403, "Missing Authentication Token"),
        K::Unauthorized => (401, "Unauthorized"),
        K::AccessDenied => (403, "Forbidden"),
        K::InvalidApiKey => (403, "Forbidden"),
        K::InvalidSignature => (403, "Invalid request signature"),
        K::ExpiredToken => (403, "Signature expired"),
        K::WafFiltered => (
            403,
            "User: anonymous is not authorized to perform: execute-api:Invoke",
        ),
        K::Throttled => (429, "Too Many Requests"),
        K::QuotaExceeded => (429, "Limit Exceeded"),
        K::BadRequestBody => (400, "Invalid request body"),
        K::BadRequestParameters => (400, "Missing required request parameters"),
        K::RequestTooLarge => (413, "Request Too Long"),
        K::UnsupportedMediaType => (415, "Unsupported Media Type"),
        K::AuthorizerFailure => (500, "Internal Server Error"),
        K::AuthorizerConfigurationError => (500, "Internal Server Error"),
        K::IntegrationTimeout => (504, "Endpoint request timed out"),
        K::IntegrationFailure => (502, "Internal server error"),
        K::ResourceNotFound => (404, "Not Found"),
        K::ApiConfigurationError => (500, "Internal server error"),
    }
}

fn kind_of(t: GatewayResponseType) -> GatewayResponseKind {
    use GatewayResponseKind as K;
    use GatewayResponseType as T;
    match t {
        T::Default4xx => K::Default4xx,
        T::Default5xx => K::Default5xx,
        T::MissingAuthenticationToken => K::MissingAuthenticationToken,
        T::Unauthorized => K::Unauthorized,
        T::AccessDenied => K::AccessDenied,
        T::InvalidApiKey => K::InvalidApiKey,
        T::InvalidSignature => K::InvalidSignature,
        T::ExpiredToken => K::ExpiredToken,
        T::WafFiltered => K::WafFiltered,
        T::Throttled => K::Throttled,
        T::QuotaExceeded => K::QuotaExceeded,
        T::BadRequestBody => K::BadRequestBody,
        T::BadRequestParameters => K::BadRequestParameters,
        T::RequestTooLarge => K::RequestTooLarge,
        T::UnsupportedMediaType => K::UnsupportedMediaType,
        T::AuthorizerFailure => K::AuthorizerFailure,
        T::AuthorizerConfigurationError => K::AuthorizerConfigurationError,
        T::IntegrationTimeout => K::IntegrationTimeout,
        T::IntegrationFailure => K::IntegrationFailure,
        T::ResourceNotFound => K::ResourceNotFound,
        T::ApiConfigurationError => K::ApiConfigurationError,
    }
}

/// The complete gateway response table: defaults (API Gateway's, for the Api's kind), then the `DEFAULT_4XX`/`DEFAULT_5XX`
/// overrides (not their status), then each kind's own override.
fn gateway_responses(
    overrides: &[GatewayResponseSpec],
    api_type: Option<ApiType>,
) -> Result<BTreeMap<GatewayResponseKind, GatewayResponse>, Problem> {
    let mut by_kind: BTreeMap<GatewayResponseKind, &GatewayResponseSpec> = BTreeMap::new();
    for (i, o) in overrides.iter().enumerate() {
        let kind = kind_of(o.type_);
        if by_kind.insert(kind, o).is_some() {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!(
                    "spec.gatewayResponses[{i}]: type {:?} is listed twice",
                    o.type_
                ),
            ));
        }
        if let Some(code) = o.status_code
            && !(100..=599).contains(&code)
        {
            return Err(Problem::invalid(
                reasons::INVALID,
                format!("spec.gatewayResponses[{i}].statusCode {code} is not in 100-599"),
            ));
        }
    }
    let apply = |r: &mut GatewayResponse, o: &GatewayResponseSpec, with_status: bool| {
        if with_status && let Some(code) = o.status_code {
            r.status = code;
        }
        r.headers.extend(
            o.headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
        );
        if let Some(body) = &o.body {
            r.body = body.clone();
        }
        if let Some(ct) = &o.content_type {
            r.content_type = ct.clone();
        }
    };
    let mut table = BTreeMap::new();
    for kind in ALL_KINDS {
        let (status, message) = match (kind, api_type) {
            // An HTTP API answers an unknown route with 404, a REST API with 403.
            (GatewayResponseKind::MissingAuthenticationToken, Some(ApiType::Http)) => {
                (404, "Not Found")
            }
            _ => default_response(kind),
        };
        let mut response = GatewayResponse {
            status,
            headers: BTreeMap::new(),
            body: serde_json::json!({ "message": message }).to_string(),
            content_type: "application/json".into(),
        };
        let family = if status < 500 {
            GatewayResponseKind::Default4xx
        } else {
            GatewayResponseKind::Default5xx
        };
        if family != kind
            && let Some(o) = by_kind.get(&family)
        {
            apply(&mut response, o, false);
        }
        if let Some(o) = by_kind.get(&kind) {
            apply(&mut response, o, true);
        }
        table.insert(kind, response);
    }
    Ok(table)
}

/// The statuses of every Api, with the deployment facts of accepted ones.
pub(crate) fn statuses(
    apis: &Apis,
    deployments: &BTreeMap<ObjKey, DeploymentRecord>,
    route_counts: &BTreeMap<ObjKey, u32>,
) -> Vec<ObjectStatus> {
    apis.iter()
        .map(|(key, entry)| {
            let mut verdict = Verdict::default();
            let mut detail = StatusDetail::None;
            match &entry.compiled {
                Err(p) => verdict.add(p.clone()),
                Ok(_) => {
                    if let Some(record) = deployments.get(key) {
                        detail = StatusDetail::Api {
                            latest_deployment_id: record.id.clone(),
                            route_count: route_counts.get(key).copied().unwrap_or(0),
                        };
                    }
                }
            }
            verdict.into_status(Kind::Api, &entry.object.metadata, detail)
        })
        .collect()
}
