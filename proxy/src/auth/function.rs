//! REQUEST and TOKEN authorizers: the gateway POSTs an API Gateway-shaped authorizer event to a
//! Service (or URL) and reads a decision — the simple `{"isAuthorized": bool, "context": {}}` or
//! an IAM policy (`principalId`, `policyDocument`, `context`).
//!
//! Decision cache (per proxy, outliving snapshots, bounded): keyed by the authorizer id and the
//! identity-source values, hashed with SHA-256 (raw tokens are not kept as keys). Two entries
//! per decision:
//! - `(identity, stage, route key)` → the decision; it answers later requests to the same route,
//!   an IAM policy being evaluated again on each request's ARN;
//! - `(identity)` → an IAM policy; it answers a request to another route only when the policy
//!   explicitly allows or denies that route's ARN, so a token allowed on route A is not reused
//!   for route B unless the policy allowed B.
//!
//! Entries live `ttl` (default 300 s; 0 disables caching). Failures are never cached. A TOKEN
//! authorizer's `identityValidationExpression` is checked before any call; a missing identity
//! source is 401 without a call. Timeouts and errors fail closed (500 AUTHORIZER_FAILURE); an
//! answer of 401/403 from the function is 401 (Lambda's `Unauthorized`); a deny is 403.
//!
//! An `https` function is called with its backend's TLS client from `origination` (the
//! VpcLink's CA and server name, else the system roots); a certificate that does not verify
//! fails closed like any other failed call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use causeway_snapshot::{FunctionSettings, ResponseFormat, UpstreamScheme};
use http::header::{self, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use regex::Regex;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{
    AuthError, AuthState, LiveAuthorizer, context_map, event_headers, identity_values, route_arn,
};
use crate::clock::Clock;
use crate::context::{Principal, RequestContext, query_pairs};
use crate::upstream::LiveBackend;

/// Decisions kept at most (oldest-expiring entries are dropped first when full).
pub const DECISION_CACHE_CAPACITY: usize = 10_000;
/// Largest authorizer answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Connect timeout of the authorizer client (the call timeout still bounds everything).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an HTTP exchange of the auth client failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// No complete answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

/// Where the system trust store is read from (for `https://` JWKS and discovery URLs).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The HTTP/1.1 client for authorizer calls and JWKS fetches: pooled plain HTTP, and a
/// connection per fetch over TLS (JWKS fetches are rare: at most one per 30 s per JWKS).
pub(crate) struct AuthClient {
    client: Client<HttpConnector, Full<Bytes>>,
    roots: std::sync::OnceLock<Arc<rustls::RootCertStore>>,
}

impl AuthClient {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            roots: std::sync::OnceLock::new(),
        }
    }

    /// An `https` client trusting these roots instead of the system's (tests).
    #[cfg(test)]
    fn with_roots(roots: rustls::RootCertStore) -> Self {
        let client = Self::new();
        let _ = client.roots.set(Arc::new(roots));
        client
    }

    /// The system roots, read once (empty, with a warning, when unreadable: https fetches
    /// then fail closed).
    fn roots(&self) -> Arc<rustls::RootCertStore> {
        Arc::clone(self.roots.get_or_init(|| {
            use rustls_pki_types::CertificateDer;
            use rustls_pki_types::pem::PemObject;
            let mut store = rustls::RootCertStore::empty();
            match std::fs::read(SYSTEM_ROOTS) {
                Ok(pem) => {
                    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                        let _ = store.add(cert);
                    }
                }
                Err(error) => {
                    tracing::warn!(path = SYSTEM_ROOTS, %error, "cannot read the system trust store; https JWKS fetches will fail");
                }
            }
            Arc::new(store)
        }))
    }

    /// One GET over TLS on a fresh connection, all within `timeout`.
    async fn https_get(
        &self,
        uri: &Uri,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<(StatusCode, Bytes), ExchangeError> {
        let failed = |m: String| ExchangeError::Failed(m);
        let host = uri
            .host()
            .ok_or_else(|| failed("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let roots = self.roots();
        let work = async move {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| failed(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|_| failed(format!("{host:?} is not a TLS server name")))?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| failed(format!("connect: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| failed(format!("tls: {e}")))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .map_err(|e| failed(format!("handshake: {e}")))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let authority = uri
                .authority()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default();
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            let request = Request::get(path)
                .header(header::HOST, authority)
                .header(header::ACCEPT, "application/json")
                .body(Full::new(Bytes::new()))
                .map_err(|e| failed(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| failed(format!("request failed: {e}")))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), max_bytes)
                .collect()
                .await
                .map_err(|e| failed(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| ExchangeError::Timeout(timeout))?
    }

    /// Sends a request and reads the whole answer, all within `timeout`.
    pub async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<(StatusCode, Bytes), ExchangeError> {
        read_answer(self.client.request(request), timeout, max_bytes).await
    }

    /// GETs a JSON document (a JWKS or an OIDC discovery document).
    pub async fn get_json(
        &self,
        url: &str,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Value, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let (status, body) = match uri.scheme_str() {
            Some("https") => self.https_get(&uri, timeout, max_bytes).await,
            Some("http") => {
                let request = Request::get(uri)
                    .header(header::ACCEPT, "application/json")
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| e.to_string())?;
                self.exchange(request, timeout, max_bytes).await
            }
            _ => return Err(format!("{url}: not an http(s) URL")),
        }
        .map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }
}

/// Awaits a pooled client's response and reads the whole answer, all within `timeout`.
async fn read_answer(
    sending: hyper_util::client::legacy::ResponseFuture,
    timeout: Duration,
    max_bytes: usize,
) -> Result<(StatusCode, Bytes), ExchangeError> {
    let work = async {
        let response = sending.await.map_err(|e| {
            // The source says why (a refused connection, an untrusted certificate).
            let cause = std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
            ExchangeError::Failed(format!("request failed: {e}{cause}"))
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| ExchangeError::Failed(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ExchangeError::Timeout(timeout))?
}

/// One IAM policy statement.
#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    resources: Vec<String>,
}

/// What an authorizer decided.
#[derive(Debug, Clone)]
enum Outcome {
    /// `isAuthorized`.
    Simple(bool),
    /// A policy, evaluated per ARN.
    Policy(Vec<Statement>),
}

/// A decision with its principal and context.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    outcome: Outcome,
    principal_id: Option<String>,
    context: Map<String, Value>,
}

impl Decision {
    /// `Some(allowed)` when the decision speaks about `arn`: an explicit Deny wins, then an
    /// Allow; `None` when a policy does not mention it.
    fn verdict(&self, arn: &str) -> Option<bool> {
        match &self.outcome {
            Outcome::Simple(allowed) => Some(*allowed),
            Outcome::Policy(statements) => {
                let matching = |allow: bool| {
                    statements
                        .iter()
                        .filter(|s| s.allow == allow)
                        .any(|s| s.resources.iter().any(|r| arn_matches(r, arn)))
                };
                if matching(false) {
                    Some(false)
                } else if matching(true) {
                    Some(true)
                } else {
                    None
                }
            }
        }
    }
}

/// `*` matches any run of characters (also `/`), `?` one character, as in IAM.
fn arn_matches(pattern: &str, arn: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), arn.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Reads an authorizer's answer.
fn parse_answer(format: ResponseFormat, answer: &Value) -> Result<Decision, String> {
    let context = context_map(answer.get("context"));
    let principal_id = answer
        .get("principalId")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(flag) = answer.get("isAuthorized") {
        if format == ResponseFormat::Iam {
            return Err("a simple answer, but the authorizer is set to IAM".into());
        }
        let allowed = flag.as_bool().ok_or("isAuthorized is not a boolean")?;
        return Ok(Decision {
            outcome: Outcome::Simple(allowed),
            principal_id,
            context,
        });
    }
    let Some(document) = answer.get("policyDocument") else {
        return Err("the answer has neither isAuthorized nor policyDocument".into());
    };
    if format == ResponseFormat::Simple {
        return Err("an IAM policy, but the authorizer is set to SIMPLE".into());
    }
    let statements = match document.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return Err("policyDocument has no Statement".into()),
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => vec![],
        }
    };
    let mut out = Vec::new();
    for statement in &statements {
        let allow = match statement.get("Effect").and_then(Value::as_str) {
            Some(e) if e.eq_ignore_ascii_case("allow") => true,
            Some(e) if e.eq_ignore_ascii_case("deny") => false,
            _ => return Err("a statement's Effect is neither Allow nor Deny".into()),
        };
        let actions = strings(statement.get("Action"));
        let invokes = actions.is_empty()
            || actions.iter().any(|a| {
                a == "*" || a == "execute-api:*" || a.eq_ignore_ascii_case("execute-api:Invoke")
            });
        if !invokes {
            continue;
        }
        out.push(Statement {
            allow,
            resources: strings(statement.get("Resource")),
        });
    }
    Ok(Decision {
        outcome: Outcome::Policy(out),
        principal_id,
        context,
    })
}

/// A cached decision and when it expires, by the hash of its cache key.
type Entries = HashMap<[u8; 32], (Instant, Arc<Decision>)>;

/// Bounded cache of decisions with per-entry expiry.
pub(crate) struct DecisionCache {
    entries: Mutex<Entries>,
    capacity: usize,
    clock: Clock,
}

impl DecisionCache {
    pub fn new(capacity: usize, clock: Clock) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            clock,
        }
    }

    fn get(&self, key: &[u8; 32]) -> Option<Arc<Decision>> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((expires, d)) if *expires > self.clock.now() => Some(Arc::clone(d)),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&self, key: [u8; 32], ttl: Duration, decision: Arc<Decision>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let now = self.clock.now();
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.capacity {
                // Still full: drop the eighth that expires soonest.
                let mut by_expiry: Vec<([u8; 32], Instant)> =
                    entries.iter().map(|(k, (e, _))| (*k, *e)).collect();
                by_expiry.sort_by_key(|(_, e)| *e);
                for (k, _) in by_expiry.iter().take(self.capacity / 8 + 1) {
                    entries.remove(k);
                }
            }
        }
        // `checked_add`: a TTL from a hand-built snapshot must not panic the proxy.
        let now = self.clock.now();
        entries.insert(key, (now.checked_add(ttl).unwrap_or(now), decision));
    }

    /// Entries held (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }
}

/// A REQUEST or TOKEN authorizer, ready to call.
pub(crate) struct FunctionAuthorizer {
    token: bool,
    backend: Arc<LiveBackend>,
    path: String,
    timeout: Duration,
    ttl: Duration,
    identity_validation: Option<Regex>,
    format: ResponseFormat,
}

impl FunctionAuthorizer {
    pub fn build(
        settings: &FunctionSettings,
        token: bool,
        backend: Arc<LiveBackend>,
    ) -> Result<Self, String> {
        let identity_validation = settings
            .identity_validation
            .as_ref()
            .map(|e| Regex::new(&format!("^(?:{e})$")).map_err(|e| e.to_string()))
            .transpose()?;
        Ok(Self {
            token,
            backend,
            path: settings.path.clone(),
            timeout: Duration::from_millis(u64::from(settings.timeout_ms.max(1))),
            ttl: Duration::from_secs(u64::from(settings.ttl_seconds)),
            identity_validation,
            format: settings.response_format,
        })
    }

    /// Asks the function (or the cache) about this request.
    pub async fn authorize(
        &self,
        state: &AuthState,
        authorizer: &LiveAuthorizer,
        ctx: &RequestContext,
        parts: &http::request::Parts,
    ) -> Result<Principal, AuthError> {
        let values = identity_values(&authorizer.identity_source, &parts.headers, &parts.uri)?;
        if let (Some(re), Some(token)) = (&self.identity_validation, values.first())
            && !re.is_match(token)
        {
            return Err(AuthError::Unauthorized(
                "the token does not match the identity validation expression".into(),
            ));
        }
        let arn = route_arn(ctx, parts.method.as_str());
        let caching = !self.ttl.is_zero() && !values.is_empty();
        let identity = identity_hash(&authorizer.id, &values);
        let route_key = entry_key(
            &identity,
            &[
                ctx.stage_id.as_deref().unwrap_or_default(),
                ctx.route_key.as_deref().unwrap_or_default(),
            ],
        );
        let policy_key = entry_key(&identity, &["policy"]);
        if caching {
            if let Some(d) = state.decisions.get(&route_key) {
                return decide(&d, &arn);
            }
            if let Some(d) = state.decisions.get(&policy_key)
                && d.verdict(&arn).is_some()
            {
                return decide(&d, &arn);
            }
        }
        let event = if self.token {
            json!({
                "type": "TOKEN",
                "authorizationToken": values.first().cloned().unwrap_or_default(),
                "methodArn": arn,
            })
        } else {
            request_event(ctx, parts, &values, &arn)
        };
        let decision = Arc::new(self.call(state, &authorizer.id, ctx, &event).await?);
        if caching {
            state
                .decisions
                .insert(route_key, self.ttl, Arc::clone(&decision));
            if matches!(decision.outcome, Outcome::Policy(_)) {
                state
                    .decisions
                    .insert(policy_key, self.ttl, Arc::clone(&decision));
            }
        }
        decide(&decision, &arn)
    }

    async fn call(
        &self,
        state: &AuthState,
        id: &str,
        ctx: &RequestContext,
        event: &Value,
    ) -> Result<Decision, AuthError> {
        let failed = |reason: String| AuthError::AuthorizerFailed {
            authorizer: id.to_string(),
            reason,
        };
        // An `https` function is called with its backend's TLS client (CA and server name from
        // its VpcLink, else the system roots), the one `HTTP_PROXY` integrations use.
        let tls = match (self.backend.scheme, &self.backend.tls) {
            (UpstreamScheme::Http, _) => None,
            (UpstreamScheme::Https, Some(tls)) => Some(tls),
            (UpstreamScheme::Https, None) => {
                return Err(failed(format!(
                    "backend {} has no TLS client",
                    self.backend.id
                )));
            }
        };
        let endpoint = self.backend.next_endpoint().ok_or_else(|| {
            failed(format!(
                "backend {} has no ready endpoints",
                self.backend.id
            ))
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let uri: Uri = format!("{scheme}://{endpoint}{}", self.path)
            .parse()
            .map_err(|e| failed(format!("function uri: {e}")))?;
        let request = Request::post(uri)
            .header(header::HOST, self.backend.authority.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(
                crate::upstream::X_REQUEST_ID,
                HeaderValue::from_str(&ctx.request_id)
                    .unwrap_or_else(|_| HeaderValue::from_static("-")),
            )
            .body(Full::new(Bytes::from(event.to_string())))
            .map_err(|e| failed(e.to_string()))?;
        let mut request = request;
        if let Some(trace) = crate::context::TraceContext::outgoing(ctx.trace.as_ref()) {
            trace.inject(request.headers_mut());
        }
        let answered = match tls {
            Some(tls) => {
                let request = request.map(|b| b.map_err(|never| match never {}).boxed_unsync());
                read_answer(tls.client.request(request), self.timeout, MAX_ANSWER_BYTES).await
            }
            None => {
                state
                    .client
                    .exchange(request, self.timeout, MAX_ANSWER_BYTES)
                    .await
            }
        };
        let (status, body) = answered.map_err(|e| failed(e.to_string()))?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(AuthError::Unauthorized(format!(
                "authorizer {id} answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(failed(format!("answered {status}")));
        }
        let answer: Value = serde_json::from_slice(&body).map_err(|e| AuthError::BadAnswer {
            authorizer: id.to_string(),
            reason: format!("not JSON: {e}"),
        })?;
        parse_answer(self.format, &answer).map_err(|reason| AuthError::BadAnswer {
            authorizer: id.to_string(),
            reason,
        })
    }
}

/// Applies a decision to a request's ARN.
fn decide(decision: &Decision, arn: &str) -> Result<Principal, AuthError> {
    if decision.verdict(arn) != Some(true) {
        return Err(AuthError::Denied(format!(
            "the authorizer does not allow {arn}"
        )));
    }
    Ok(Principal {
        principal_id: decision.principal_id.clone(),
        context: decision.context.clone(),
        ..Principal::default()
    })
}

fn identity_hash(authorizer: &str, values: &[String]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(authorizer.as_bytes());
    for v in values {
        h.update([0u8]);
        h.update(v.len().to_be_bytes());
        h.update(v.as_bytes());
    }
    h.finalize().into()
}

fn entry_key(identity: &[u8; 32], parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(identity);
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// The API Gateway v2 REQUEST authorizer event.
fn request_event(
    ctx: &RequestContext,
    parts: &http::request::Parts,
    identity: &[String],
    arn: &str,
) -> Value {
    let headers = event_headers(&parts.headers);
    let raw_query = parts.uri.query().unwrap_or_default();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in query_pairs(Some(raw_query)) {
        query
            .entry(k)
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let path_parameters: BTreeMap<&str, &str> = ctx
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let now = ctx.request_time;
    let epoch_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let namespace = ctx
        .api_id
        .as_deref()
        .and_then(|a| a.split('/').next())
        .unwrap_or_default();
    let cookies: Vec<&str> = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": arn,
        "identitySource": identity,
        "routeKey": ctx.route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "cookies": cookies,
        "headers": headers,
        "queryStringParameters": query,
        "pathParameters": path_parameters,
        "stageVariables": ctx.stage_variables.as_ref(),
        "requestContext": {
            "accountId": namespace,
            "apiId": ctx.api_name,
            "domainName": headers.get("host").cloned().unwrap_or_default(),
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": format!("{:?}", parts.version),
                "sourceIp": ctx.source_ip.to_string(),
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": ctx.request_id,
            "routeKey": ctx.route_key,
            "stage": ctx.stage,
            "time": crate::context::clf_time(now),
            "timeEpoch": epoch_ms,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_wildcards_match_any_run_of_characters_including_slashes() {
        let arn = "arn:aws:execute-api:causeway:default:pets/prod/GET/pets/1";
        assert!(arn_matches("arn:aws:execute-api:*:*:pets/prod/GET/*", arn));
        assert!(arn_matches("*", arn));
        assert!(arn_matches(
            "arn:aws:execute-api:causeway:default:pets/prod/GET/pets/?",
            arn
        ));
        assert!(!arn_matches(
            "arn:aws:execute-api:*:*:pets/prod/POST/*",
            arn
        ));
        assert!(!arn_matches("arn:aws:execute-api:*:*:pets/beta/*", arn));
    }

    #[test]
    fn an_explicit_deny_wins_over_an_allow_and_an_unmentioned_arn_gets_no_verdict() {
        let answer = json!({
            "principalId": "u1",
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": ["arn:*/prod/GET/*"]},
                {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "arn:*/prod/GET/admin"}
            ]},
            "context": {"tier": "gold"}
        });
        let d = parse_answer(ResponseFormat::Any, &answer).expect("parses");
        assert_eq!(d.verdict("arn:x/prod/GET/pets"), Some(true));
        assert_eq!(d.verdict("arn:x/prod/GET/admin"), Some(false));
        assert_eq!(d.verdict("arn:x/prod/POST/pets"), None);
        assert_eq!(d.principal_id.as_deref(), Some("u1"));
    }

    #[test]
    fn an_answer_in_the_wrong_format_is_refused() {
        assert!(parse_answer(ResponseFormat::Iam, &json!({"isAuthorized": true})).is_err());
        assert!(
            parse_answer(
                ResponseFormat::Simple,
                &json!({"policyDocument": {"Statement": []}})
            )
            .is_err()
        );
        assert!(parse_answer(ResponseFormat::Any, &json!({"allowed": true})).is_err());
    }

    #[test]
    fn the_decision_cache_stays_within_its_capacity() {
        let cache = DecisionCache::new(16, Clock::system());
        let d = Arc::new(Decision {
            outcome: Outcome::Simple(true),
            principal_id: None,
            context: Map::new(),
        });
        for i in 0..100u8 {
            cache.insert([i; 32], Duration::from_secs(60), Arc::clone(&d));
            assert!(cache.len() <= 16);
        }
        assert!(cache.get(&[99; 32]).is_some());
    }

    /// A one-shot TLS server answering every GET with `body`, with a fresh self-signed cert.
    async fn tls_server(body: &'static str) -> (std::net::SocketAddr, rustls::RootCertStore) {
        let cert =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).expect("root");
        let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |_req| async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(body.as_bytes()),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (addr, roots)
    }

    #[tokio::test]
    async fn a_jwks_is_fetched_over_tls_from_a_trusted_server_only() {
        let (addr, roots) = tls_server(r#"{"keys":[]}"#).await;
        let url = format!("https://localhost:{}/jwks.json", addr.port());
        let trusting = AuthClient::with_roots(roots);
        let doc = trusting
            .get_json(&url, Duration::from_secs(5), 1024)
            .await
            .expect("fetched over tls");
        assert_eq!(doc, json!({"keys": []}));
        let untrusting = AuthClient::with_roots(rustls::RootCertStore::empty());
        let refused = untrusting
            .get_json(&url, Duration::from_secs(5), 1024)
            .await;
        assert!(refused.is_err_and(|e| e.contains("tls")));
    }
}
