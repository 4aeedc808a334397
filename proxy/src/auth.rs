//! Authorization at the edge: the resource policy (pipeline step 3) and, per route, the
//! authorizer and the API key (step 5).
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
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use causeway_snapshot::{AuthorizerSettings, GatewayResponseKind, Snapshot};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::access_log::AccessRecord;
use crate::body::{BoxError, ProxyBody, full};
use crate::gateway_response::{Classified, Fault, substitute_context};
use crate::runtime::{BackendRuntime, DeploymentRuntime, RouteRuntime, Runtime, StageRuntime};

/// The request header that carries an API key.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Why authorization refused a request, or could not decide (then it refuses too).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The resource policy refused the client address.
    #[error("client address {0} is refused by the resource policy")]
    PolicyDenied(std::net::IpAddr),
    /// The route requires an API key and none was sent.
    #[error("the route requires an API key and the request has no x-api-key")]
    MissingApiKey,
    /// The key is unknown on this stage, or disabled.
    #[error("the API key is not valid for this stage")]
    InvalidApiKey,
    /// No credentials where the authorizer reads them.
    #[error("the request carries no {0}")]
    MissingIdentity(String),
    /// The credentials are not valid (bad token, bad signature, refused by a TOKEN regex...).
    #[error("credentials refused: {0}")]
    Unauthorized(String),
    /// The caller is known but may not call this route (missing scope, explicit deny).
    #[error("access denied: {0}")]
    Denied(String),
    /// The SigV4 signature does not match.
    #[error("signature refused: {0}")]
    InvalidSignature(String),
    /// The SigV4 timestamp is outside the window.
    #[error("signature timestamp is outside the allowed window")]
    SignatureExpired,
    /// No SigV4 Authorization header.
    #[error("the request is not signed")]
    Unsigned,
    /// The authorizer could not be asked (down, timed out, failed).
    #[error("authorizer {authorizer} failed: {reason}")]
    AuthorizerFailed {
        /// Authorizer id.
        authorizer: String,
        /// What happened.
        reason: String,
    },
    /// The authorizer answered something that is not a decision.
    #[error("authorizer {authorizer} answered badly: {reason}")]
    BadAnswer {
        /// Authorizer id.
        authorizer: String,
        /// What was wrong.
        reason: String,
    },
    /// The route names an authorizer the snapshot does not hold.
    #[error("route names unknown authorizer {0}")]
    UnknownAuthorizer(String),
    /// A SigV4 request body is larger than the limit.
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(u64),
    /// Reading a SigV4 request body failed.
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
}

impl AuthError {
    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::AuthorizerFailed { .. } | Self::BadAnswer { .. } => Fault::Upstream,
            Self::UnknownAuthorizer(_) => Fault::Internal,
            _ => Fault::Client,
        }
    }

    /// The gateway response for it (API Gateway's kinds, codes and messages).
    pub fn classify(&self) -> Classified {
        use GatewayResponseKind as K;
        let (kind, status, message) = match self {
            Self::PolicyDenied(_) => (
                K::WafFiltered,
                StatusCode::FORBIDDEN,
                "User: anonymous is not authorized to perform: execute-api:Invoke",
            ),
            Self::MissingApiKey | Self::InvalidApiKey => {
                (K::InvalidApiKey, StatusCode::FORBIDDEN, "Forbidden")
            }
            Self::MissingIdentity(_) | Self::Unauthorized(_) => {
                (K::Unauthorized, StatusCode::UNAUTHORIZED, "Unauthorized")
            }
            Self::Denied(_) => (K::AccessDenied, StatusCode::FORBIDDEN, "Forbidden"),
            Self::InvalidSignature(_) => (
                K::InvalidSignature,
                StatusCode::FORBIDDEN,
                "The request signature we calculated does not match the signature you provided.",
            ),
            Self::SignatureExpired => (K::ExpiredToken, StatusCode::FORBIDDEN, "Signature expired"),
            Self::Unsigned => (
                K::MissingAuthenticationToken,
                StatusCode::FORBIDDEN,
                "Missing Authentication Token",
            ),
            Self::AuthorizerFailed { .. } => (
                K::AuthorizerFailure,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ),
            Self::BadAnswer { .. } | Self::UnknownAuthorizer(_) => (
                K::AuthorizerConfigurationError,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ),
            Self::BodyTooLarge(_) => (
                K::RequestTooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large",
            ),
            Self::BodyRead(_) => (K::Default4xx, StatusCode::BAD_REQUEST, "Bad Request"),
        };
        Classified {
            kind,
            default_status: status,
            forced_status: None,
            message,
        }
    }
}

/// Why the authorization tables of a snapshot cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthApplyError {
    /// A CIDR of a resource policy does not parse.
    #[error("api {api}: policy CIDR {cidr:?} is not valid")]
    Cidr {
        /// Api id.
        api: String,
        /// The CIDR.
        cidr: String,
    },
    /// A key hash is not 64 hex digits.
    #[error("usage plan {plan}: key {key} has an invalid sha256")]
    KeyHash {
        /// Plan id.
        plan: String,
        /// Key id.
        key: String,
    },
    /// An authorizer's settings cannot be used.
    #[error("authorizer {authorizer}: {reason}")]
    Authorizer {
        /// Authorizer id.
        authorizer: String,
        /// What is wrong.
        reason: String,
    },
}

/// Who the caller is, once authorized: what mapping, forwarded headers and the access log see.
#[derive(Debug, Default, Clone)]
pub(crate) struct Principal {
    /// `$context.authorizer.principalId` (JWT `sub`, the function's `principalId`, the SigV4
    /// access key id).
    pub principal_id: Option<String>,
    /// `$context.authorizer.claims.*` (JWT).
    pub claims: Map<String, Value>,
    /// `$context.authorizer.*` (function context).
    pub context: Map<String, Value>,
    /// `$context.identity.apiKeyId`.
    pub api_key_id: Option<String>,
    /// `$context.identity.clientCert.*`.
    pub client_cert: Option<Arc<crate::tls::ClientCert>>,
}

impl Principal {
    /// The value of a `$context` variable, if it has one.
    fn lookup(&self, name: &str, peer: SocketAddr) -> Option<String> {
        if name.starts_with("identity.clientCert.") {
            return crate::tls::client_cert_context(self.client_cert.as_deref(), name);
        }
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match name {
            "authorizer.principalId" => self.principal_id.clone(),
            "identity.apiKeyId" => self.api_key_id.clone(),
            "identity.sourceIp" => Some(peer.ip().to_string()),
            _ => {
                if let Some(claim) = name.strip_prefix("authorizer.claims.") {
                    self.claims.get(claim).map(text)
                } else if let Some(key) = name.strip_prefix("authorizer.") {
                    self.context.get(key).map(text)
                } else {
                    None
                }
            }
        }
    }
}

/// One authorizer of the snapshot, ready to use.
pub(crate) struct AuthorizerRuntime {
    pub id: String,
    pub identity_source: Vec<String>,
    /// `(header, template)`: sent to the integration; client copies removed.
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
    authorizers: HashMap<String, Arc<AuthorizerRuntime>>,
}

impl AuthTables {
    /// Builds the tables; any unusable piece rejects the snapshot.
    pub fn build(
        snapshot: &Snapshot,
        backends: &HashMap<String, Arc<BackendRuntime>>,
    ) -> Result<Self, AuthApplyError> {
        let mut policies = HashMap::new();
        for api in &snapshot.apis {
            if let Some(p) = &api.policy {
                policies.insert(api.id.clone(), policy::Policy::build(&api.id, p)?);
            }
        }
        let keys = api_key::KeyTable::build(&snapshot.usage_plans)?;
        let mut authorizers = HashMap::new();
        for (id, config) in &snapshot.authorizers {
            let err = |reason: String| AuthApplyError::Authorizer {
                authorizer: id.clone(),
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
                        .ok_or_else(|| err(format!("unknown backend {}", s.backend)))?;
                    AuthorizerKind::Function(
                        function::FunctionAuthorizer::build(s, token, backend).map_err(err)?,
                    )
                }
                AuthorizerSettings::Sigv4(s) => {
                    AuthorizerKind::Sigv4(sigv4::Sigv4Authorizer::build(s))
                }
                AuthorizerSettings::ServiceAccount(s) => AuthorizerKind::ServiceAccount(
                    service_account::ServiceAccountAuthorizer::build(id, s).map_err(err)?,
                ),
                AuthorizerSettings::Mtls(s) => AuthorizerKind::Mtls(mtls::MtlsAuthorizer::build(s)),
            };
            authorizers.insert(
                id.clone(),
                Arc::new(AuthorizerRuntime {
                    id: id.clone(),
                    identity_source: config.identity_source.clone(),
                    forward_headers,
                    kind,
                }),
            );
        }
        Ok(Self {
            policies,
            keys,
            authorizers,
        })
    }
}

/// State that outlives snapshots: JWKS caches (with their fetch rate limits) and the decision
/// cache of function authorizers, plus the HTTP client they use.
pub(crate) struct AuthState {
    pub jwks: jwt::JwksCaches,
    pub decisions: function::DecisionCache,
    pub client: function::AuthClient,
}

impl AuthState {
    pub fn new() -> Self {
        Self {
            jwks: jwt::JwksCaches::default(),
            decisions: function::DecisionCache::new(function::DECISION_CACHE_CAPACITY),
            client: function::AuthClient::new(),
        }
    }
}

/// Step 3: the Api's resource policy on the client address (the TCP peer).
pub(crate) fn check_policy(
    runtime: &Runtime,
    stage: &StageRuntime,
    peer: SocketAddr,
) -> Result<(), AuthError> {
    match runtime.auth.policies.get(&stage.api.id) {
        Some(policy) if !policy.admits(peer.ip()) => Err(AuthError::PolicyDenied(peer.ip())),
        _ => Ok(()),
    }
}

/// What step 5 looks at.
pub(crate) struct AuthTarget<'a> {
    pub runtime: &'a Runtime,
    pub stage: &'a StageRuntime,
    pub deployment: &'a DeploymentRuntime,
    pub route: &'a RouteRuntime,
    pub params: &'a [(String, String)],
    pub stage_path: &'a str,
    pub peer: SocketAddr,
    pub limit: u64,
    pub request_id: &'a str,
}

/// Step 5: the route's authorizer, then its API key. Returns the request to forward (with the
/// authorizer's forwarded headers set and client copies of them removed; for SigV4 routes the
/// body has been read, up to the limit, to check its hash). The [`Principal`] and, when a key
/// was checked, its [`api_key::ApiKey`] (id and plan) ride in the request's extensions.
pub(crate) async fn authorize(
    state: &AuthState,
    target: AuthTarget<'_>,
    request: Request<Incoming>,
    record: &mut AccessRecord,
) -> Result<Request<ProxyBody>, AuthError> {
    let route = target.route;
    let mut principal = Principal {
        client_cert: record.client_cert.clone(),
        ..Principal::default()
    };
    let (mut parts, body) = request.into_parts();
    let mut body: ProxyBody = body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync();
    let mut authorizer = None;
    if let Some(authorization) = &route.authorization {
        let found = target
            .runtime
            .auth
            .authorizers
            .get(&authorization.authorizer)
            .cloned()
            .ok_or_else(|| AuthError::UnknownAuthorizer(authorization.authorizer.clone()))?;
        match &found.kind {
            AuthorizerKind::Jwt(jwt) => {
                principal = jwt
                    .authorize(
                        state,
                        &found,
                        &parts.headers,
                        &parts.uri,
                        &authorization.scopes,
                    )
                    .await?;
            }
            AuthorizerKind::Function(function) => {
                principal = function.authorize(state, &found, &target, &parts).await?;
            }
            AuthorizerKind::ServiceAccount(sa) => {
                principal = sa
                    .authorize(state, &found, &parts.headers, &parts.uri)
                    .await?;
            }
            AuthorizerKind::Mtls(mtls) => {
                principal = mtls.authorize(record.client_cert.clone())?;
            }
            AuthorizerKind::Sigv4(sigv4) => {
                let bytes = read_body(body, target.limit).await?;
                principal = sigv4.verify(&parts, &bytes, std::time::SystemTime::now())?;
                body = full(bytes);
            }
        }
        principal.client_cert = record.client_cert.clone();
        record.principal_id = principal.principal_id.clone();
        authorizer = Some(found);
    }
    if route.api_key_required {
        let key = parts
            .headers
            .get(&X_API_KEY)
            .ok_or(AuthError::MissingApiKey)?;
        let found = target
            .runtime
            .auth
            .keys
            .find(&target.stage.id, key.as_bytes())
            .ok_or(AuthError::InvalidApiKey)?;
        principal.api_key_id = Some(found.id.clone());
        record.api_key_id = Some(found.id.clone());
        // For the throttle and quota steps: which key of which plan is counted.
        parts.extensions.insert(found.clone());
        record.usage_plan_id = Some(found.plan.clone());
    }
    if let Some(authorizer) = authorizer {
        set_forward_headers(&mut parts.headers, &authorizer, &principal, target.peer);
        // For integrations: `$context.authorizer.*` in mappings, `requestContext.authorizer`
        // in Lambda events.
        let mut context = principal.context.clone();
        if let Some(id) = &principal.principal_id {
            context.insert("principalId".into(), Value::String(id.clone()));
        }
        if !principal.claims.is_empty() {
            context.insert("claims".into(), Value::Object(principal.claims.clone()));
        }
        parts
            .extensions
            .insert(crate::mapping::AuthorizerContext(context));
    }
    // Typed context for later steps (mapping `$context.authorizer.*`, usage plans).
    parts.extensions.insert(principal);
    Ok(Request::from_parts(parts, body))
}

/// Removes client-sent copies of the authorizer's forwarded headers, then sets those whose
/// template resolves completely.
fn set_forward_headers(
    headers: &mut HeaderMap,
    authorizer: &AuthorizerRuntime,
    principal: &Principal,
    peer: SocketAddr,
) {
    for (name, template) in &authorizer.forward_headers {
        headers.remove(name);
        let missing = std::cell::Cell::new(false);
        let value = substitute_context(template, &|n| {
            let v = principal.lookup(n, peer);
            if v.is_none() {
                missing.set(true);
            }
            v
        });
        if missing.get() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name.clone(), v);
        }
    }
}

/// Reads a whole body up to `limit` bytes (SigV4 routes only: the signature covers it).
async fn read_body(mut body: ProxyBody, limit: u64) -> Result<Bytes, AuthError> {
    let max = usize::try_from(limit).unwrap_or(usize::MAX);
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
    let query = query_pairs(uri.query().unwrap_or_default());
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

/// Percent-decoded query pairs, in order (`+` is a space, as browsers send it).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// The route ARN API Gateway would send: `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}`.
/// Causeway uses region `causeway`, the Api's namespace as account and its name as api id.
pub(crate) fn route_arn(stage: &StageRuntime, method: &str, stage_path: &str) -> String {
    let namespace = stage.api.id.split('/').next().unwrap_or_default();
    format!(
        "arn:aws:execute-api:causeway:{namespace}:{}/{}/{method}{stage_path}",
        stage.api_name, stage.name
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
