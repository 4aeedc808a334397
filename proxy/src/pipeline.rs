//! The request lifecycle, in order. [`handle`] is the only entry; each step below says when it
//! runs and what it may do. A step either answers the request ([`Flow::Respond`]) or hands the
//! next step what it found ([`Flow::Continue`]).
//!
//! 1. [`begin`]: request id, timers, the runtime tables (loaded once: a request finishes on the
//!    tables it started with, whatever `apply` does meanwhile).
//! 2. [`sanitize`]: request-target length (414), `Host` (400), the one path normalization
//!    (`hygiene`; 400 when refused). The normalized path replaces the request's, so every later
//!    step and the backend see the same path.
//! 3. [`find_stage`]: host and base path → stage; unknown → 404. Fail closed before any snapshot.
//! 4. [`cors`]: a CORS preflight is answered by the gateway here (no route, auth or backend).
//! 5. Resource policy (`auth::check_policy`, design §4 step 3): the client address against the
//!    Api's allow/deny CIDRs; 403 before any route is looked at.
//! 6. [`choose_deployment`]: main or canary (percent, or sticky by header/cookie hash).
//! 7. [`match_route`]: method + path → route, else `$default`, else
//!    MISSING_AUTHENTICATION_TOKEN; never a backend call for an unknown route.
//! 8. [`check_body_limit`]: 413 from `Content-Length` before reading; streamed bodies are capped.
//! 9. `auth::authorize` (design §4 step 5): the route's authorizer, then its API key; 401/403/500
//!    fail closed, and the authorizer's forwarded headers replace client copies.
//! 10. [`throttle`] (design §4 step 6): gateway, stage, route and usage-plan buckets, then the
//!     key's quota; 429 with `Retry-After`.
//! 11. [`validate`] (design §4 step 7): required parameters and the body's model; 400 without a
//!     backend call.
//! 12. [`cache_lookup`] (step 8): a stage cache hit answers here; a miss remembers where to store.
//! 13. [`integrate`]: MOCK answers from the gateway; HTTP_PROXY forwards (streaming both ways,
//!     with parameter mapping); LAMBDA_PROXY invokes the function with a proxy event.
//! 14. [`finish`]: response headers (`x-request-id`, canary marker, CORS); metrics and the
//!     access-log line are written when the response body ends.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use causeway_snapshot::{ApiConfig, Sticky};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::Shared;
use crate::access_log::AccessRecord;
use crate::body::{ObservedBody, ProxyBody, full};
use crate::cors::CorsRuntime;
use crate::gateway_response::{Fault, RequestError, ResponseContext, classify, fixed_json, render};
use crate::hygiene;
use crate::metrics::{ByteLabels, NONE_LABEL, RequestLabels, RouteMetrics, status_class};
use crate::request_body::{BodyIdleTimeout, IdleTimeoutBody, caused_by};
use crate::runtime::{DeploymentRuntime, IntegrationRuntime, RouteRuntime, Runtime, StageRuntime};
use crate::tls::TlsInfo;
use crate::upstream::{Forwarding, X_REQUEST_ID};

/// Marks responses served by a stage's canary deployment.
pub const X_CAUSEWAY_CANARY: HeaderName = HeaderName::from_static("x-causeway-canary");
/// Body of every response before the first snapshot.
pub const NO_CONFIGURATION_BODY: &str = r#"{"message":"no configuration yet"}"#;
/// Longest `x-request-id` accepted from a client; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 200;

/// Either the request has been answered, or the next step gets what this one found.
pub(crate) enum Flow<T> {
    /// Answer now; no later step runs.
    Respond(Response<ProxyBody>),
    /// Go on with this.
    Continue(T),
}

/// What the pipeline learns about one request, for the response, metrics and access log.
pub(crate) struct Exchange {
    started: Instant,
    record: AccessRecord,
    request_id: HeaderValue,
    log_enabled: bool,
    log_format: Option<String>,
    integration_latency: Option<std::time::Duration>,
    /// CORS headers to add to the response (the request's origin is allowed).
    cors: Option<(Arc<CorsRuntime>, HeaderValue)>,
    /// The matched route's metric handles.
    route_metrics: Option<Arc<RouteMetrics>>,
    /// `RateLimit-Limit`, `-Remaining`, `-Reset` (IETF draft) for the caller's key, if its
    /// plan asks for them.
    rate_limit: Option<(u64, u64, u64)>,
}

/// Runs the whole lifecycle for one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    peer: SocketAddr,
    proto: &'static str,
) -> Response<ProxyBody> {
    let (mut exchange, runtime) = begin(&shared, &request, peer);
    let response = match runtime.as_deref() {
        None => no_configuration(),
        Some(runtime) => serve(&shared, runtime, request, peer, proto, &mut exchange).await,
    };
    finish(&shared, exchange, response)
}

/// Steps 2 to 7, on one runtime.
async fn serve(
    shared: &Shared,
    runtime: &Runtime,
    mut request: Request<Incoming>,
    peer: SocketAddr,
    proto: &'static str,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    if let Flow::Respond(r) = sanitize(shared, &mut request, ex) {
        return r;
    }
    let (stage, stage_path) = match find_stage(shared, runtime, &request, proto, ex) {
        Flow::Respond(r) => return r,
        Flow::Continue(found) => found,
    };
    if let Flow::Respond(r) = cors(stage, &request, ex) {
        return r;
    }
    if let Err(error) = crate::auth::check_policy(runtime, stage, peer) {
        return fail(Some(&stage.api), error.into(), ex);
    }
    let deployment = choose_deployment(stage, request.headers(), ex);
    let (route, params) = match match_route(stage, deployment, &request, &stage_path, ex) {
        Flow::Respond(r) => return r,
        Flow::Continue(found) => found,
    };
    let limit = match check_body_limit(shared, &stage.api, &request, ex) {
        Flow::Respond(r) => return r,
        Flow::Continue(limit) => limit,
    };
    let auth_target = crate::auth::AuthTarget {
        runtime,
        stage,
        deployment,
        route,
        params: &params,
        stage_path: &stage_path,
        peer,
        limit,
        request_id: &ex.record.request_id.clone(),
    };
    let request =
        match crate::auth::authorize(&shared.auth, auth_target, request, &mut ex.record).await {
            Ok(request) => request,
            Err(error) => return fail(Some(&stage.api), error.into(), ex),
        };
    if let Flow::Respond(r) = throttle(shared, runtime, stage, route, ex).await {
        return r;
    }
    let request = request.map(|body| {
        // Buffered reads (validation, Lambda events) get the same idle timeout as forwarding.
        let idle = shared.config.body_idle_timeout;
        Limited::new(
            IdleTimeoutBody::new(body, idle, None),
            usize::try_from(limit).unwrap_or(usize::MAX),
        )
        .boxed_unsync()
    });
    let request = match validate(
        stage,
        route,
        request,
        limit,
        shared.config.body_idle_timeout,
        ex,
    )
    .await
    {
        Flow::Respond(r) => return r,
        Flow::Continue(request) => request,
    };
    let host = request_host(&request).unwrap_or_default();
    let pending = match cache_lookup(stage, route, &request, &host, &stage_path, ex) {
        Flow::Respond(r) => return r,
        Flow::Continue(pending) => pending,
    };
    let target = Target {
        stage,
        deployment,
        route,
        params: &params,
        stage_path: &stage_path,
        limit,
        host: &host,
    };
    let response = integrate(shared, target, request, peer, proto, ex).await;
    crate::cache::store(pending, response)
}

/// Step 1. Runs first, for every request: assigns the request id (the client's `x-request-id`
/// when sane, else a new one) and loads the current runtime tables once.
fn begin(
    shared: &Shared,
    request: &Request<Incoming>,
    peer: SocketAddr,
) -> (Exchange, Option<Arc<Runtime>>) {
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(new_request_id);
    let record = AccessRecord {
        request_id: request_id.to_str().unwrap_or_default().to_string(),
        peer: Some(peer),
        request_time: Some(SystemTime::now()),
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        protocol: version_name(request.version()).to_string(),
        client_cert: request
            .extensions()
            .get::<TlsInfo>()
            .and_then(|t| t.client_cert.clone()),
        ..AccessRecord::default()
    };
    let exchange = Exchange {
        started: Instant::now(),
        record,
        request_id,
        log_enabled: true,
        log_format: None,
        integration_latency: None,
        cors: None,
        route_metrics: None,
        rate_limit: None,
    };
    (exchange, shared.runtime.load_full())
}

/// Before any snapshot: fail closed with a fixed body.
fn no_configuration() -> Response<ProxyBody> {
    let mut r = Response::new(full(NO_CONFIGURATION_BODY));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Step 3. Finds the stage by host (port ignored) and base path or routing rule, and returns
/// the path with the base path removed. May answer 404 (no Api is known yet, so the body is
/// fixed).
fn find_stage<'r>(
    shared: &Shared,
    runtime: &'r Runtime,
    request: &Request<Incoming>,
    proto: &'static str,
    ex: &mut Exchange,
) -> Flow<(&'r StageRuntime, String)> {
    let host = request_host(request);
    let found = host.as_deref().and_then(|host| {
        runtime
            .hosts
            .find(host, request.uri().path(), request.headers())
    });
    if proto == "http"
        && let (Some(hit), Some(host)) = (&found, &host)
        && hit.redirect_to_https
    {
        return Flow::Respond(https_redirect(shared, host, request));
    }
    let Some(stage) = found.and_then(|hit| runtime.stages.get(hit.stage).map(|s| (s, hit.path)))
    else {
        ex.record.error_message = Some("Not Found".to_string());
        return Flow::Respond(fixed_json(StatusCode::NOT_FOUND, "Not Found"));
    };
    if let Some(host) = &host
        && !mutual_tls_satisfied(runtime, host, request)
    {
        // A mutual-TLS host reached over plain HTTP, or over a TLS connection whose handshake
        // was for another name (SNI) and so checked no client certificate from this host's CA.
        ex.record.error_message = Some("Misdirected Request".to_string());
        return Flow::Respond(fixed_json(
            StatusCode::MISDIRECTED_REQUEST,
            "Misdirected Request",
        ));
    }
    ex.record.domain_name = host;
    ex.record.api = Some(stage.0.api_name.clone());
    ex.record.stage = Some(stage.0.name.clone());
    ex.log_enabled = stage.0.access_log.enabled;
    ex.log_format = stage.0.access_log.format.clone();
    Flow::Continue(stage)
}

/// Whether a request for `host` may be served on its connection: hosts without mutual TLS
/// always; a mutual-TLS host only on a connection whose handshake verified a client
/// certificate against the same CA bundle (the bundle may have changed since: then the client
/// reconnects).
fn mutual_tls_satisfied(runtime: &Runtime, host: &str, request: &Request<Incoming>) -> bool {
    let Some(required) = runtime
        .certificates
        .find(host)
        .and_then(|e| e.client_ca.as_ref())
    else {
        return true;
    };
    request
        .extensions()
        .get::<TlsInfo>()
        .and_then(|t| t.client_ca.as_ref())
        .is_some_and(|verified| verified == required)
}

/// 308 to the same path and query over HTTPS (on the configured HTTPS port).
fn https_redirect(shared: &Shared, host: &str, request: &Request<Incoming>) -> Response<ProxyBody> {
    let pq = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = match shared.config.https_port {
        443 => format!("https://{host}{pq}"),
        port => format!("https://{host}:{port}{pq}"),
    };
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// The request's host, lowercase, without port: `:authority` (HTTP/2, absolute-form) or `Host`.
fn request_host<B>(request: &Request<B>) -> Option<String> {
    let host = match request.uri().host() {
        Some(host) => host.to_string(),
        None => {
            let value = request.headers().get(header::HOST)?.to_str().ok()?;
            value
                .parse::<http::uri::Authority>()
                .ok()?
                .host()
                .to_string()
        }
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Step 2. Refuses an over-long request target (414) and a duplicated or conflicting `Host`
/// (400), then normalizes the path (`hygiene::normalize_path`) and writes it back into the
/// request, or refuses it (400). Runs before the Api is known, so answers use the default
/// gateway responses.
fn sanitize(shared: &Shared, request: &mut Request<Incoming>, ex: &mut Exchange) -> Flow<()> {
    let target_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    let limit = shared.config.max_uri_bytes;
    if target_len > limit {
        let error = RequestError::UriTooLong {
            len: target_len,
            limit,
        };
        return Flow::Respond(fail(None, error, ex));
    }
    if let Err(rejection) = hygiene::check_host(request) {
        return Flow::Respond(fail(None, rejection.into(), ex));
    }
    let trusted = &shared.config.trusted_hops;
    if let Some(peer) = ex.record.peer
        && !trusted.is_empty()
        && hygiene::is_trusted(trusted, peer.ip())
    {
        let client = hygiene::client_ip(request.headers(), trusted, peer.ip());
        ex.record.peer = Some(SocketAddr::new(client, peer.port()));
    }
    let normalized = match hygiene::normalize_path(request.uri().path()) {
        Ok(Cow::Borrowed(_)) => return Flow::Continue(()),
        Ok(Cow::Owned(path)) => path,
        Err(reason) => {
            let path = request.uri().path().to_string();
            return Flow::Respond(fail(None, RequestError::BadPath { path, reason }, ex));
        }
    };
    if let Err(e) = hygiene::set_path(request, &normalized) {
        let error = RequestError::BuildRequest(format!("normalized path: {e}"));
        return Flow::Respond(fail(None, error, ex));
    }
    ex.record.path = normalized;
    Flow::Continue(())
}

/// Step 3b. With CORS configured on the Api: answers a preflight here (whatever the routes),
/// and notes the allowed origin so that [`finish`] adds the CORS headers to any response,
/// gateway errors included.
fn cors(stage: &StageRuntime, request: &Request<Incoming>, ex: &mut Exchange) -> Flow<()> {
    let Some(cors) = &stage.cors else {
        return Flow::Continue(());
    };
    if CorsRuntime::is_preflight(request) {
        ex.record.route_key = Some("$cors-preflight".to_string());
        return Flow::Respond(cors.preflight(request));
    }
    if let Some(allow) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| cors.allow_origin(o))
    {
        ex.cors = Some((Arc::clone(cors), allow));
    }
    Flow::Continue(())
}

/// Step 4. Chooses the canary deployment for `percent` of requests (by a hash of the sticky
/// header or cookie when set and present, else at random), or the main deployment.
fn choose_deployment<'s>(
    stage: &'s StageRuntime,
    headers: &HeaderMap,
    ex: &mut Exchange,
) -> &'s DeploymentRuntime {
    let chosen = match &stage.canary {
        None => &stage.main,
        Some(canary) => {
            let sticky_value = match &canary.sticky {
                Some(Sticky::Header(name)) => headers.get(name.as_str()).map(|v| v.as_bytes()),
                Some(Sticky::Cookie(name)) => cookie(headers, name),
                None => None,
            };
            let roll = match sticky_value {
                Some(value) => hash_percent(value),
                None => rand::random::<f64>() * 100.0,
            };
            if roll < canary.percent {
                ex.record.canary = true;
                &canary.deployment
            } else {
                &stage.main
            }
        }
    };
    ex.record.deployment_id = Some(chosen.id.clone());
    chosen
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v.as_bytes())
        })
}

/// A stable number in `[0, 100)` for a sticky value (the same on every replica).
fn hash_percent(value: &[u8]) -> f64 {
    let digest = Sha256::digest(value);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 10_000) as f64 / 100.0
}

/// Step 5. Matches the route in the deployment's table for the request method.
fn match_route<'d>(
    stage: &StageRuntime,
    deployment: &'d DeploymentRuntime,
    request: &Request<Incoming>,
    stage_path: &str,
    ex: &mut Exchange,
) -> Flow<(&'d RouteRuntime, Vec<(String, String)>)> {
    match deployment
        .routes
        .lookup(request.method().as_str(), stage_path)
    {
        Some(hit) => {
            ex.record.route_key = Some(hit.value.key.clone());
            ex.route_metrics = Some(Arc::clone(&hit.value.metrics));
            Flow::Continue((hit.value, hit.params))
        }
        None => {
            let error = RequestError::NoRoute {
                method: request.method().to_string(),
                path: stage_path.to_string(),
            };
            Flow::Respond(fail(Some(&stage.api), error, ex))
        }
    }
}

/// Design §4 step 6, after authorization. Throttles from the widest level to the narrowest —
/// gateway, stage, route, then the caller's usage plan (the key's bucket, the key's bucket for
/// this route) — then the key's quota, counted only for requests every throttle admitted. Any
/// refusal gives back the tokens already taken, answers 429 with `Retry-After` (THROTTLED or
/// QUOTA_EXCEEDED), and the backend never sees the request. Keyed requests are counted in the
/// usage report either way.
async fn throttle(
    shared: &Shared,
    runtime: &Runtime,
    stage: &StageRuntime,
    route: &RouteRuntime,
    ex: &mut Exchange,
) -> Flow<()> {
    let now = Instant::now();
    let gateway = shared.gateway_throttle.as_deref();
    let key = match (&ex.record.usage_plan_id, &ex.record.api_key_id) {
        (Some(plan), Some(key)) => runtime.plans.key(plan, key),
        _ => None,
    };
    let mut refusal = match crate::limits::admit(gateway, &stage.throttles, &route.key, now) {
        Err(wait) => Some(throttled(wait)),
        Ok(()) => match key {
            Some((limits, _)) => match limits.admit(&stage.id, &route.key, now) {
                Ok(()) => None,
                Err(wait) => {
                    crate::limits::refund(gateway, &stage.throttles, &route.key);
                    Some(throttled(wait))
                }
            },
            None => None,
        },
    };
    if refusal.is_none()
        && let Some((limits, fail_closed)) = key
        && let Some(rule) = limits.quota
    {
        use crate::limits::quota::QuotaDecision;
        let verdict = shared
            .quotas
            .admit(&limits.scope, rule, !fail_closed, SystemTime::now())
            .await;
        let error = match verdict {
            QuotaDecision::Admitted => None,
            QuotaDecision::Exceeded { retry_after } => Some(RequestError::QuotaExceeded {
                retry_after_secs: crate::limits::retry_after_seconds(retry_after),
            }),
            QuotaDecision::Unavailable => Some(RequestError::QuotaUnavailable),
        };
        if error.is_some() {
            crate::limits::refund(gateway, &stage.throttles, &route.key);
            limits.refund(&stage.id, &route.key);
        }
        refusal = error;
    }
    if let Some((limits, _)) = key {
        let day = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() / 86_400)
            .unwrap_or(0);
        shared
            .usage
            .record(&limits.plan, &limits.key, day, refusal.is_none());
        ex.rate_limit = limits.rate_limit(Instant::now());
    }
    let Some(error) = refusal else {
        return Flow::Continue(());
    };
    let retry_after = match &error {
        RequestError::Throttled { retry_after_secs }
        | RequestError::QuotaExceeded { retry_after_secs } => Some(*retry_after_secs),
        _ => None,
    };
    let mut response = fail(Some(&stage.api), error, ex);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Flow::Respond(response)
}

fn throttled(wait: std::time::Duration) -> RequestError {
    RequestError::Throttled {
        retry_after_secs: crate::limits::retry_after_seconds(wait),
    }
}

/// Step 6. Refuses a declared body larger than the Api's (or the proxy's) limit before reading
/// it; returns the limit that caps a streamed body.
fn check_body_limit(
    shared: &Shared,
    api: &ApiConfig,
    request: &Request<Incoming>,
    ex: &mut Exchange,
) -> Flow<u64> {
    let limit = api.max_body_bytes.unwrap_or(shared.config.max_body_bytes);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Flow::Respond(fail(Some(api), RequestError::BodyTooLarge { limit }, ex));
    }
    Flow::Continue(limit)
}

/// Step 7 (design §4 step 7). Checks required query strings and headers and the body against
/// its model; only routes that validate a body buffer it. A refusal is 400 BAD_REQUEST_* and the
/// backend never sees the request.
async fn validate(
    stage: &StageRuntime,
    route: &RouteRuntime,
    request: Request<ProxyBody>,
    limit: u64,
    idle: std::time::Duration,
    ex: &mut Exchange,
) -> Flow<Request<ProxyBody>> {
    let Some(validator) = &route.validation else {
        return Flow::Continue(request);
    };
    match validator.check(request).await {
        Ok(request) => Flow::Continue(request),
        Err(error) => Flow::Respond(fail(Some(&stage.api), body_error(error, limit, idle), ex)),
    }
}

/// Step 8 (design §4 step 8). Serves a GET/HEAD from the stage's cache when the route is cached
/// and the entry is fresh; otherwise says where to keep the response. May refuse a cache
/// invalidation with 403 when the route says `FAIL_WITH_403`.
fn cache_lookup(
    stage: &StageRuntime,
    route: &RouteRuntime,
    request: &Request<ProxyBody>,
    host: &str,
    stage_path: &str,
    ex: &mut Exchange,
) -> Flow<Option<crate::cache::Pending>> {
    let place = crate::cache::Place {
        stage_id: &stage.id,
        separate_canary: ex.record.canary
            && !stage.canary.as_ref().is_some_and(|c| c.use_stage_cache),
        host,
        stage_path,
    };
    match crate::cache::lookup(stage.cache.as_ref(), route.cache.as_ref(), &place, request) {
        Ok(crate::cache::Lookup::Hit(response)) => Flow::Respond(response),
        Ok(crate::cache::Lookup::Miss(pending)) => Flow::Continue(pending),
        Err(error) => Flow::Respond(fail(Some(&stage.api), error, ex)),
    }
}

/// What step 9 works on.
struct Target<'a> {
    stage: &'a StageRuntime,
    deployment: &'a DeploymentRuntime,
    route: &'a RouteRuntime,
    params: &'a [(String, String)],
    stage_path: &'a str,
    limit: u64,
    host: &'a str,
}

/// Step 9. Answers a MOCK route, forwards an HTTP_PROXY route within its timeout (mapping its
/// parameters), or invokes a LAMBDA_PROXY route's function.
async fn integrate(
    shared: &Shared,
    target: Target<'_>,
    mut request: Request<ProxyBody>,
    peer: SocketAddr,
    proto: &'static str,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    let integration = match &target.route.integration {
        IntegrationRuntime::Mock(mock) => {
            let body = mock.body.render(|name| {
                target
                    .params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            });
            let mut response = Response::new(full(body));
            *response.status_mut() = mock.status;
            *response.headers_mut() = mock.headers.clone();
            return response;
        }
        IntegrationRuntime::HttpProxy(h) => h,
        IntegrationRuntime::LambdaProxy(lambda) => {
            let authorizer = request
                .extensions()
                .get::<crate::mapping::AuthorizerContext>()
                .cloned();
            let user_agent = user_agent(request.headers());
            let facts = facts(&target, ex, peer, &user_agent, authorizer.as_ref());
            let invoked = crate::lambda::invoke(
                &shared.upstream,
                lambda,
                request,
                &facts,
                &target.stage.api.binary_media_types,
            )
            .await;
            ex.integration_latency = invoked.sent_at.map(|t| t.elapsed());
            ex.record.integration_status = invoked.status;
            return match invoked.response {
                Ok(response) => response,
                Err(error) => {
                    let idle = shared.config.body_idle_timeout;
                    let error = body_error(error, target.limit, idle);
                    fail(Some(&target.stage.api), error, ex)
                }
            };
        }
    };
    let authorizer = request
        .extensions()
        .get::<crate::mapping::AuthorizerContext>()
        .cloned();
    let user_agent = user_agent(request.headers());
    // Response mappings may read the request as the client sent it.
    let request_headers = if integration.mapping.maps_response() {
        request.headers().clone()
    } else {
        HeaderMap::new()
    };
    let request_query = request.uri().query().map(str::to_string);
    let mapped_path = {
        let facts = facts(&target, ex, peer, &user_agent, authorizer.as_ref());
        let (parts, body) = request.into_parts();
        let mut parts = parts;
        let mapped = integration
            .mapping
            .apply_request(&mut parts.headers, &mut parts.uri, &facts);
        request = Request::from_parts(parts, body);
        match mapped {
            Ok(path) => path,
            Err(error) => return fail(Some(&target.stage.api), error, ex),
        }
    };
    let original_host = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    let limit = usize::try_from(target.limit).unwrap_or(usize::MAX);
    let idle = shared.config.body_idle_timeout;
    let received = if http_body::Body::is_end_stream(request.body()) {
        None
    } else {
        let labels = ByteLabels {
            api: target.stage.api_name.clone(),
            stage: target.stage.name.clone(),
            route: target.route.key.clone(),
        };
        Some(shared.metrics.request_bytes.get_or_create(&labels).clone())
    };
    let request = request
        .map(|body| Limited::new(IdleTimeoutBody::new(body, idle, received), limit).boxed_unsync());
    let fwd = Forwarding {
        peer,
        trusted_hop: hygiene::is_trusted(&shared.config.trusted_hops, peer.ip()),
        proto,
        original_host: original_host.as_deref(),
        stage_path: mapped_path.as_deref().unwrap_or(target.stage_path),
        params: target.params,
        request_id: &ex.request_id,
    };
    let mut sent_at = None;
    let worker_upstream = crate::workers::upstream();
    let upstream = worker_upstream.as_deref().unwrap_or(&shared.upstream);
    let result = upstream
        .forward(integration, request, &fwd, &mut sent_at)
        .await;
    ex.integration_latency = sent_at.map(|t| t.elapsed());
    match result {
        Ok(upstream) => {
            ex.record.integration_status = Some(upstream.status);
            let mut response = upstream.response;
            let facts = facts(&target, ex, peer, &user_agent, authorizer.as_ref());
            integration.mapping.apply_response(
                &mut response,
                &facts,
                &request_headers,
                request_query.as_deref(),
            );
            response
        }
        Err(RequestError::UpstreamFailed { source, .. })
            if caused_by::<LengthLimitError>(source.as_ref()) =>
        {
            let error = RequestError::BodyTooLarge {
                limit: target.limit,
            };
            fail(Some(&target.stage.api), error, ex)
        }
        Err(RequestError::UpstreamFailed { source, .. })
            if caused_by::<BodyIdleTimeout>(source.as_ref()) =>
        {
            let error = RequestError::BodyTimeout(BodyIdleTimeout(idle));
            fail(Some(&target.stage.api), error, ex)
        }
        Err(error) => fail(Some(&target.stage.api), error, ex),
    }
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// What integrations may read about the request (`$context`, Lambda events).
fn facts<'a>(
    target: &'a Target<'_>,
    ex: &'a Exchange,
    peer: SocketAddr,
    user_agent: &'a str,
    authorizer: Option<&'a crate::mapping::AuthorizerContext>,
) -> crate::mapping::RequestFacts<'a> {
    crate::mapping::RequestFacts {
        request_id: &ex.record.request_id,
        peer,
        user_agent,
        stage: &target.stage.name,
        api_id: &target.stage.api.id,
        domain_name: target.host,
        route_key: &target.route.key,
        stage_path: target.stage_path,
        params: target.params,
        variables: &target.deployment.variables,
        request_time: ex.record.request_time.unwrap_or_else(SystemTime::now),
        authorizer: authorizer.map(|a| &a.0),
        client_cert: ex.record.client_cert.as_deref(),
    }
}

/// A body read that failed because of the body limit or the idle timeout says so (413, 408).
fn body_error(error: RequestError, limit: u64, idle: std::time::Duration) -> RequestError {
    match error {
        RequestError::ReadBody(e) if caused_by::<LengthLimitError>(e.as_ref()) => {
            RequestError::BodyTooLarge { limit }
        }
        RequestError::ReadBody(e) if caused_by::<BodyIdleTimeout>(e.as_ref()) => {
            RequestError::BodyTimeout(BodyIdleTimeout(idle))
        }
        other => other,
    }
}

/// Renders the gateway response for an error and notes it for the access log.
fn fail(api: Option<&ApiConfig>, error: RequestError, ex: &mut Exchange) -> Response<ProxyBody> {
    let classified = classify(&error);
    match error.fault() {
        Fault::Client => {
            tracing::debug!(request_id = %ex.record.request_id, %error, "request refused")
        }
        Fault::Upstream => {
            tracing::debug!(request_id = %ex.record.request_id, %error, "integration failed");
            ex.record.integration_error_message = Some(error.to_string());
        }
        Fault::Internal => {
            tracing::warn!(request_id = %ex.record.request_id, %error, "internal error");
        }
    }
    let message = error
        .detailed_message()
        .unwrap_or_else(|| classified.message.to_string());
    ex.record.error_message = Some(message.clone());
    let validation_error = match &error {
        RequestError::InvalidBody { detail } => Some(detail.as_str()),
        _ => None,
    };
    let ctx = ResponseContext {
        record: Some(&ex.record),
        request_id: &ex.record.request_id,
        message: &message,
        stage: ex.record.stage.as_deref(),
        api: api.map(|a| a.id.as_str()),
        validation_error,
    };
    render(api, &classified, &ctx)
}

/// Step 8. Runs last, for every response: adds `x-request-id` and the canary marker, and
/// arranges for metrics and the access-log line when the body has been sent.
fn finish(
    shared: &Arc<Shared>,
    ex: Exchange,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(X_REQUEST_ID, ex.request_id.clone());
    if let Some((cors, allow)) = &ex.cors {
        cors.decorate(allow.clone(), &mut parts.headers);
    }
    if ex.record.canary {
        parts
            .headers
            .insert(X_CAUSEWAY_CANARY, HeaderValue::from_static("true"));
    }
    if let Some((limit, remaining, reset)) = ex.rate_limit {
        for (name, value) in [
            ("ratelimit-limit", limit),
            ("ratelimit-remaining", remaining),
            ("ratelimit-reset", reset),
        ] {
            parts
                .headers
                .insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
    let status = parts.status.as_u16();
    let shared = Arc::clone(shared);
    let Exchange {
        started,
        mut record,
        log_enabled,
        log_format,
        integration_latency,
        route_metrics,
        ..
    } = ex;
    let on_done = Box::new(move |bytes: u64, _complete: bool| {
        let elapsed = started.elapsed();
        match &route_metrics {
            Some(route) => {
                shared
                    .metrics
                    .observe_route(route, status, elapsed, integration_latency, bytes);
            }
            None => observe_unrouted(&shared, &record, status, elapsed, bytes),
        }
        if log_enabled {
            record.status = status;
            record.response_length = Some(bytes);
            record.response_latency = elapsed;
            record.integration_latency = integration_latency;
            shared.access_log.write(&record, log_format.as_deref());
        }
    });
    Response::from_parts(parts, ObservedBody::new(body, on_done).boxed_unsync())
}

/// Metrics of a request that matched no route (labels built on the spot; rare).
fn observe_unrouted(
    shared: &Shared,
    record: &AccessRecord,
    status: u16,
    elapsed: std::time::Duration,
    bytes: u64,
) {
    let labels = RequestLabels {
        api: record.api.clone().unwrap_or_else(|| NONE_LABEL.to_string()),
        stage: record
            .stage
            .clone()
            .unwrap_or_else(|| NONE_LABEL.to_string()),
        route: record
            .route_key
            .clone()
            .unwrap_or_else(|| NONE_LABEL.to_string()),
        status_class: status_class(status),
        deployment: if record.canary { "canary" } else { "main" },
    };
    shared.metrics.observe_request(&labels, elapsed, None);
    if bytes > 0 {
        let byte_labels = ByteLabels {
            api: labels.api,
            stage: labels.stage,
            route: labels.route,
        };
        shared
            .metrics
            .response_bytes
            .get_or_create(&byte_labels)
            .inc_by(bytes);
    }
}

/// `HTTP/1.1`, `HTTP/2`, ... without allocating.
fn version_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// A new request id: 128 random bits in UUID v4 form (formatted on the stack).
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits: u128 = rand::random();
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let mut out = [0u8; 36];
    let mut nibble = 0;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *slot = b'-';
            continue;
        }
        let shift = 124 - 4 * nibble;
        *slot = HEX[((bits >> shift) & 0xf) as usize];
        nibble += 1;
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_look_like_uuid_v4() {
        let id = new_request_id();
        let id = id.to_str().unwrap_or_default();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn sticky_values_always_land_in_the_same_bucket() {
        assert_eq!(hash_percent(b"user-1"), hash_percent(b"user-1"));
        assert!((0.0..100.0).contains(&hash_percent(b"user-2")));
    }
}
