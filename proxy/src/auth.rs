//! Authorization at the edge: the resource policy and, per route, the authorizer and the API
//! key (where they run: the step table in `pipeline.rs`).
//!
//! Everything here fails closed: an authorizer that cannot be reached, a JWKS that cannot be
//! fetched, an answer that cannot be read, a route naming an authorizer the snapshot lacks —
//! each refuses the request; nothing is forwarded without a positive decision.
//!
//! Split by kind: [`policy`] (source CIDRs), [`api_key`] (hashed keys per stage), [`jwt`] (JWKS
//! cache and token checks), [`function`] (REQUEST/TOKEN calls and the decision cache), [`sigv4`]
//! (AWS Signature Version 4), [`service_account`] (Kubernetes service-account tokens), [`mtls`]
//! (names of the client certificate verified in the handshake). Tables built from a snapshot live in [`AuthTables`] (swapped with
//! the runtime); caches that must survive swaps (JWKS, decisions, fetch rate limits) live in
//! [`AuthState`] (one per proxy).

pub(crate) mod api_key;
pub(crate) mod function;
pub(crate) mod jwt;
pub(crate) mod mtls;
pub(crate) mod policy;
pub(crate) mod service_account;
pub(crate) mod sigv4;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use causeway_snapshot::{AuthorizerSettings, RouteAuthorization, Snapshot};
use http::Request;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use serde_json::{Map, Value};

use crate::body::{ProxyBody, full};
use crate::clock::Clock;
use crate::context::{Principal, RequestContext, TraceContext};
use crate::error::{AuthApplyError, AuthError};
use crate::upstream::LiveBackend;

/// The request header that carries an API key.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// One authorizer of the snapshot, ready to use.
pub(crate) struct LiveAuthorizer {
    pub id: String,
    pub identity_source: Vec<String>,
    /// `(header, template)`: sent to the integration; client copies are removed on every route
    /// of the Api (`upstream::forwarded::ReservedHeaders`).
    pub forward_headers: Vec<(HeaderName, String)>,
    pub kind: AuthorizerKind,
}

/// The type-specific part.
pub(crate) enum AuthorizerKind {
    Jwt(jwt::JwtAuthorizer),
    Function(function::FunctionAuthorizer),
    Sigv4(sigv4::Sigv4Authorizer),
    ServiceAccount(service_account::ServiceAccountAuthorizer),
    Mtls(mtls::MtlsAuthorizer),
}

/// The authorization tables of one snapshot.
#[derive(Default)]
pub(crate) struct AuthTables {
    policies: HashMap<String, policy::Policy>,
    keys: api_key::KeyTable,
    authorizers: HashMap<String, Arc<LiveAuthorizer>>,
}

/// What [`AuthTables::build`] left out: pieces that cannot be used, by owner. The tables
/// built without them fail closed (an unknown key is refused); the runtime drops every stage
/// that would need a broken policy or authorizer.
#[derive(Debug, Default)]
pub(crate) struct Unusable {
    /// Api id → why its resource policy cannot be built.
    pub policies: HashMap<String, AuthApplyError>,
    /// Authorizer id → why it cannot be built.
    pub authorizers: BTreeMap<String, AuthApplyError>,
    /// `plan/key` → why the key cannot be used (the rest of its plan serves).
    pub keys: Vec<(String, AuthApplyError)>,
}

impl AuthTables {
    /// Builds the tables. A policy, authorizer or key that cannot be used is left out and
    /// listed in [`Unusable`], so one tenant's object never freezes the others.
    pub fn build(
        snapshot: &Snapshot,
        backends: &HashMap<String, Arc<LiveBackend>>,
    ) -> (Self, Unusable) {
        let mut unusable = Unusable::default();
        let mut policies = HashMap::new();
        for api in &snapshot.apis {
            if let Some(p) = &api.policy {
                match policy::Policy::build(&api.id, p) {
                    Ok(policy) => {
                        policies.insert(api.id.clone(), policy);
                    }
                    Err(error) => {
                        unusable.policies.insert(api.id.clone(), error);
                    }
                }
            }
        }
        let (keys, bad_keys) = api_key::KeyTable::build(&snapshot.usage_plans);
        unusable.keys = bad_keys;
        let mut authorizers = HashMap::new();
        for (id, config) in &snapshot.authorizers {
            match authorizer(id, config, backends) {
                Ok(live) => {
                    authorizers.insert(id.clone(), Arc::new(live));
                }
                Err(error) => {
                    unusable.authorizers.insert(id.clone(), error);
                }
            }
        }
        let tables = Self {
            policies,
            keys,
            authorizers,
        };
        (tables, unusable)
    }
}

/// One authorizer of the snapshot, built.
fn authorizer(
    id: &str,
    config: &causeway_snapshot::AuthorizerConfig,
    backends: &HashMap<String, Arc<LiveBackend>>,
) -> Result<LiveAuthorizer, AuthApplyError> {
    let err = |reason: String| AuthApplyError::Authorizer {
        authorizer: id.to_string(),
        reason,
    };
    let forward_headers = config
        .forward_headers
        .iter()
        .map(|(name, template)| {
            HeaderName::from_bytes(name.as_bytes())
                .map(|n| (n, template.clone()))
                .map_err(|_| err(format!("forward header {name:?} is not a header name")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let kind = match &config.settings {
        AuthorizerSettings::Jwt(s) => {
            AuthorizerKind::Jwt(jwt::JwtAuthorizer::build(id, s).map_err(err)?)
        }
        AuthorizerSettings::Request(s) | AuthorizerSettings::Token(s) => {
            let token = matches!(config.settings, AuthorizerSettings::Token(_));
            let backend = backends
                .get(&s.backend)
                .cloned()
                .ok_or_else(|| err(format!("unknown or unusable backend {}", s.backend)))?;
            AuthorizerKind::Function(
                function::FunctionAuthorizer::build(s, token, backend).map_err(err)?,
            )
        }
        AuthorizerSettings::Sigv4(s) => AuthorizerKind::Sigv4(sigv4::Sigv4Authorizer::build(s)),
        AuthorizerSettings::ServiceAccount(s) => AuthorizerKind::ServiceAccount(
            service_account::ServiceAccountAuthorizer::build(id, s).map_err(err)?,
        ),
        AuthorizerSettings::Mtls(s) => AuthorizerKind::Mtls(mtls::MtlsAuthorizer::build(s)),
    };
    Ok(LiveAuthorizer {
        id: id.to_string(),
        identity_source: config.identity_source.clone(),
        forward_headers,
        kind,
    })
}

/// State that outlives snapshots: JWKS caches (with their fetch rate limits) and the decision
/// cache of function authorizers, plus the HTTP client they use.
pub(crate) struct AuthState {
    pub jwks: jwt::JwksCaches,
    pub decisions: function::DecisionCache,
    pub client: function::AuthClient,
}

impl AuthState {
    /// Fresh caches, reading the time from `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            jwks: jwt::JwksCaches::new(clock.clone()),
            decisions: function::DecisionCache::new(function::DECISION_CACHE_CAPACITY, clock),
            client: function::AuthClient::new(),
        }
    }
}

impl AuthTables {
    /// Whether the authorizer `id` calls out to a function (REQUEST/TOKEN), rather than
    /// deciding in the proxy (JWT, SigV4, mTLS, service accounts with their JWKS at hand).
    pub(crate) fn calls_out(&self, id: &str) -> bool {
        self.authorizers
            .get(id)
            .is_some_and(|a| matches!(a.kind, AuthorizerKind::Function(_)))
    }

    /// The resource policy of `api` on the client's address (resolved through trusted hops).
    pub(crate) fn check_policy(&self, api: &str, client: IpAddr) -> Result<(), AuthError> {
        match self.policies.get(api) {
            Some(policy) if !policy.admits(client) => Err(AuthError::PolicyDenied(client)),
            _ => Ok(()),
        }
    }
}

/// What a route asks of its callers.
#[derive(Clone, Copy)]
pub(crate) struct RouteAuth<'a> {
    pub api_key_required: bool,
    pub authorization: Option<&'a RouteAuthorization>,
}

/// The route's authorizer, then its API key. Returns the request to forward (for SigV4 routes
/// the body has been read, up to `limit`, to check its hash) and records who the caller is in
/// the context (`ctx.principal`, `ctx.usage_plan_id`); the key that was checked rides in the
/// request's extensions for the throttle and quota steps. Headers named by the authorizer's
/// `forwardHeaders` are set from the principal (client copies were removed before this runs).
pub(crate) async fn authorize(
    state: &AuthState,
    tables: &AuthTables,
    route: RouteAuth<'_>,
    limit: u64,
    request: Request<Incoming>,
    ctx: &mut RequestContext,
) -> Result<Request<ProxyBody>, AuthError> {
    let mut principal = Principal::default();
    let (mut parts, body) = request.into_parts();
    let mut body = crate::body::from_client(body);
    let mut authorizer = None;
    if let Some(authorization) = route.authorization {
        // Boxed: authorizer futures are large, and routes with only an API key (or nothing)
        // should not carry them.
        let found = tables
            .authorizers
            .get(&authorization.authorizer)
            .cloned()
            .ok_or_else(|| AuthError::UnknownAuthorizer(authorization.authorizer.clone()))?;
        let decided = Box::pin(run_authorizer(
            state,
            &found,
            authorization,
            limit,
            &mut parts,
            body,
            ctx,
        ))
        .await?;
        principal = decided.0;
        body = decided.1;
        authorizer = Some(found);
    }
    if route.api_key_required {
        let key = parts
            .headers
            .get(&X_API_KEY)
            .ok_or(AuthError::MissingApiKey)?;
        let stage = ctx.stage_id.as_deref().unwrap_or_default();
        let found = tables
            .keys
            .find(stage, key.as_bytes())
            .ok_or(AuthError::InvalidApiKey)?;
        principal.api_key_id = Some(found.id.to_string());
        ctx.usage_plan_id = Some(found.plan.to_string());
        // For the throttle and quota steps: which key of which plan is counted.
        parts.extensions.insert(found);
    }
    ctx.principal = principal;
    if let Some(authorizer) = authorizer {
        set_forward_headers(&mut parts.headers, &authorizer, ctx);
    }
    Ok(Request::from_parts(parts, body))
}

/// Runs one authorizer on the request head (and, for SigV4, its body, read up to `limit`):
/// the caller's principal, and the body to forward.
async fn run_authorizer(
    state: &AuthState,
    found: &LiveAuthorizer,
    authorization: &RouteAuthorization,
    limit: u64,
    parts: &mut http::request::Parts,
    body: ProxyBody,
    ctx: &RequestContext,
) -> Result<(Principal, ProxyBody), AuthError> {
    let principal = match &found.kind {
        AuthorizerKind::Jwt(jwt) => {
            jwt.authorize(
                state,
                found,
                &parts.headers,
                &parts.uri,
                &authorization.scopes,
            )
            .await?
        }
        AuthorizerKind::Function(function) => {
            // The function's event shows the trace context the call carries.
            if let Some(trace) = TraceContext::outgoing(ctx.trace.as_ref()) {
                trace.inject(&mut parts.headers);
            }
            function.authorize(state, found, ctx, parts).await?
        }
        AuthorizerKind::ServiceAccount(sa) => {
            sa.authorize(state, found, &parts.headers, &parts.uri)
                .await?
        }
        AuthorizerKind::Mtls(mtls) => mtls.authorize(ctx.client_cert.clone())?,
        AuthorizerKind::Sigv4(sigv4) => {
            let head = sigv4.check_head(parts, std::time::SystemTime::now())?;
            let bytes = read_body(body, limit).await?;
            let principal = head.verify_body(parts, &bytes)?;
            return Ok((principal, full(bytes)));
        }
    };
    Ok((principal, body))
}

/// Sets the authorizer's forwarded headers whose template resolves completely. Client copies
/// (in any spelling) were removed before authorization by
/// `upstream::forwarded::strip_client_headers`, so a header left unset here is absent.
fn set_forward_headers(headers: &mut HeaderMap, authorizer: &LiveAuthorizer, ctx: &RequestContext) {
    for (name, template) in &authorizer.forward_headers {
        let Some(value) = ctx.render_complete(template) else {
            continue;
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name.clone(), v);
        }
    }
}

/// Reads a whole body up to `limit` bytes (SigV4 routes only: the signature covers it).
async fn read_body(mut body: ProxyBody, limit: u64) -> Result<Bytes, AuthError> {
    let max = usize::try_from(limit).unwrap_or(usize::MAX);
    // A declared length over the limit is refused before a byte is read.
    if body.size_hint().lower() > limit {
        return Err(AuthError::BodyTooLarge(limit));
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| AuthError::BodyRead(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > max {
                return Err(AuthError::BodyTooLarge(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// The values of the identity sources (`header.x`, `querystring.x`), in order; `Err` names the
/// first one missing.
pub(crate) fn identity_values(
    sources: &[String],
    headers: &HeaderMap,
    uri: &http::Uri,
) -> Result<Vec<String>, AuthError> {
    let query = crate::context::query_pairs(uri.query());
    sources
        .iter()
        .map(|source| {
            let value = if let Some(name) = source.strip_prefix("header.") {
                let values: Vec<&str> = headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                (!values.is_empty()).then(|| values.join(","))
            } else if let Some(name) = source.strip_prefix("querystring.") {
                let values: Vec<&str> = query
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .collect();
                (!values.is_empty()).then(|| values.join(","))
            } else {
                None
            };
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| AuthError::MissingIdentity(source.clone()))
        })
        .collect()
}

/// The route ARN API Gateway would send: `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}`.
/// Causeway uses region `causeway`, the Api's namespace as account and its name as api id.
pub(crate) fn route_arn(ctx: &RequestContext, method: &str) -> String {
    let api = ctx.api_id.as_deref().unwrap_or_default();
    let namespace = api.split('/').next().unwrap_or_default();
    format!(
        "arn:aws:execute-api:causeway:{namespace}:{}/{}/{method}{}",
        ctx.api_name.as_deref().unwrap_or_default(),
        ctx.stage.as_deref().unwrap_or_default(),
        ctx.stage_path
    )
}

/// Flattens a JSON object of context values to strings for `$context.authorizer.*`.
pub(crate) fn context_map(value: Option<&Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    }
}

/// Headers of a request as API Gateway's event shows them: lowercase names, repeated values
/// joined with `,`.
pub(crate) fn event_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        out.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.to_string());
    }
    out
}
