//! The request's life, in order. [`handle`] is the only entry; the table below is the only
//! place that numbers the steps, and [`serve`] runs them in that order. A step either answers
//! the request ([`Flow::Respond`]) or hands the next step what it found ([`Flow::Continue`]).
//! Step bodies live in `pipeline/`; each says when it runs and what it may do.
//!
//! | # | step | may answer |
//! |---|------|------------|
//! | 1 | [`begin`]: the request context (request id, client address through trusted hops, trace context and the server span when tracing), the tables (loaded once: a request finishes on the tables it started with) | 503 before any snapshot |
//! | 2 | `head::sanitize`: request-target length, `Host`, the one path normalization (the path routed is the path forwarded) | 414, 400 |
//! | 3 | `head::find_stage`: host and base path → stage; mutual-TLS hosts only over a verified connection | 404, 421, 308 |
//! | 4 | `head::cors`: a CORS preflight is answered here | 204 |
//! | 5 | `admit::policy`: the Api's resource policy on the client address | 403 |
//! | 6 | `route::choose_deployment`: main or canary | — |
//! | 7 | `route::match_route`: method + path → route, else `$default`; never a backend call for an unknown route | 403 / 404 |
//! | 8 | `admit::body_limit`: a declared `Content-Length` over the limit, before anything is read | 413 |
//! | 9 | `admit::throttle`: gateway, stage and route buckets — before any authorizer is called | 429 |
//! | 10 | `admit::client_headers`: the one client-controlled removal (hop-by-hop and `Connection`-named headers, every header name the gateway sets on the Api, `_` names) before any gateway header is added; then `auth::authorize`: the route's authorizer, then its API key; forwarded headers set from the principal | 400, 401, 403, 500 |
//! | 11 | `admit::usage_plan`: the key's buckets and quota | 429, 503 |
//! | 12 | `admit::validate`: required parameters and the body's model (bounded, idle-timed read) | 400 |
//! | 13 | `respond::cache_lookup`: a fresh cached answer | 200 (hit) |
//! | 14 | `integrate::integrate`: MOCK, HTTP_PROXY (streamed, mapped) or LAMBDA_PROXY | 502, 504 |
//! | 5½ | on a WebSocket Api's stage, `websocket::serve` instead of 6 to 14: the upgrade through `$connect` (auth, throttles, integration), or an `@connections` call | 101, 4xx, 410, 503 |
//! | 15 | `respond::finish`: `x-request-id`, canary marker, CORS, rate-limit headers; metrics and the access-log line when the body ends | — |

mod admit;
mod head;
mod integrate;
mod respond;
mod route;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::ProxyBody;
use crate::context::{RequestContext, TlsInfo, TraceContext};
use crate::state::Shared;
use crate::tables::Tables;
use crate::upstream::Upstream;

pub use respond::{NO_CONFIGURATION_BODY, X_CAUSEWAY_CANARY};

/// Either the request has been answered, or the next step gets what this one found.
pub(crate) enum Flow<T> {
    /// Answer now; no later step runs.
    Respond(Response<ProxyBody>),
    /// Go on with this.
    Continue(T),
}

/// Answers with `$r` when a step says so, else gives what it found.
macro_rules! step {
    ($flow:expr) => {
        match $flow {
            Flow::Respond(response) => return response,
            Flow::Continue(found) => found,
        }
    };
}

/// What the response step needs besides the context.
pub(crate) struct Exchange {
    pub ctx: RequestContext,
    pub started: std::time::Instant,
    pub request_id: http::HeaderValue,
    /// The stage's access-log settings (on, and its format) once a stage was found.
    pub log_enabled: bool,
    pub log_format: Option<String>,
    /// CORS headers to add to the response (the request's origin is allowed).
    pub cors: Option<(Arc<crate::cors::LiveCors>, http::HeaderValue)>,
    /// The matched route's metric handles.
    pub route_metrics: Option<Arc<crate::telemetry::metrics::RouteMetrics>>,
    /// `RateLimit-Limit`, `-Remaining`, `-Reset` for the caller's key, if its plan asks.
    pub rate_limit: Option<(u64, u64, u64)>,
    /// The request's server span (`None` when tracing is off); ends with the response body.
    pub span: Option<crate::telemetry::trace::Span>,
}

/// Runs the whole life of one request. `upstream` is the connection's upstream client (a
/// worker thread's own one when serving thread-per-core).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    upstream: Arc<Upstream>,
    request: Request<Incoming>,
    peer: SocketAddr,
    scheme: &'static str,
) -> Response<ProxyBody> {
    let (mut ex, tables) = begin(&shared, &request, peer, scheme);
    let response = match &tables {
        None => respond::no_configuration(),
        Some(tables) => serve(&shared, &upstream, tables, request, &mut ex).await,
    };
    respond::finish(&shared, ex, response)
}

/// Steps 2 to 14, on one set of tables.
async fn serve(
    shared: &Arc<Shared>,
    upstream: &Arc<Upstream>,
    tables: &Arc<Tables>,
    mut request: Request<Incoming>,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    step!(head::sanitize(shared, &mut request, ex));
    let stage = step!(head::find_stage(shared, tables, &request, ex));
    step!(head::cors(stage, &request, ex));
    step!(admit::policy(tables, stage, ex));
    if stage.api.websocket.is_some() {
        // A WebSocket Api's stage: upgrades and `@connections` calls (`pipeline/websocket.rs`).
        // Boxed: its future is large and most requests never need it.
        return Box::pin(websocket::serve(
            shared, upstream, tables, stage, request, ex,
        ))
        .await;
    }
    let deployment = route::choose_deployment(stage, request.headers(), ex);
    let route = step!(route::match_route(stage, deployment, &request, ex));
    let limit = step!(admit::body_limit(shared, &stage.api, &request, ex));
    step!(admit::throttle(shared, stage, route, ex));
    step!(admit::client_headers(shared, stage, &mut request, ex));
    let request = step!(admit::authorize(shared, tables, stage, route, limit, request, ex).await);
    step!(admit::usage_plan(shared, tables, stage, route, ex).await);
    let request = admit::bounded_body(shared, request, limit);
    let request = step!(admit::validate(shared, stage, route, request, limit, ex).await);
    let pending = step!(respond::cache_lookup(shared, stage, route, &request, ex));
    let target = integrate::Target {
        stage,
        route,
        limit,
    };
    let response = integrate::integrate(shared, upstream, target, request, ex).await;
    crate::cache::store(pending, response)
}

/// Step 1. Runs first, for every request: builds the request context (the client address is
/// resolved here, once, through trusted hops; the request id is the client's only from a
/// trusted hop and only when it is a safe token) and loads the current tables once.
fn begin(
    shared: &Shared,
    request: &Request<Incoming>,
    peer: SocketAddr,
    scheme: &'static str,
) -> (Exchange, Option<Arc<Tables>>) {
    let mut ctx = RequestContext::new(request.headers(), peer, &shared.config.trusted_hops, scheme);
    let request_id = respond::request_id(request.headers(), ctx.trusted_hop);
    ctx.request_id = request_id.to_str().unwrap_or_default().to_string();
    ctx.method = request.method().to_string();
    ctx.path = request.uri().path().to_string();
    ctx.protocol = respond::version_name(request.version());
    ctx.client_cert = request
        .extensions()
        .get::<TlsInfo>()
        .and_then(|t| t.client_cert.clone());
    // The client's trace context is read here, once; when tracing is on, the gateway's server
    // span (its child, or a new trace's root) is what later steps pass on.
    let incoming = TraceContext::from_headers(request.headers());
    let span = shared.tracer.server_span(incoming.as_ref());
    ctx.trace = match &span {
        Some(span) => Some(span.context.clone()),
        None => incoming,
    };
    let ex = Exchange {
        ctx,
        started: std::time::Instant::now(),
        request_id,
        log_enabled: true,
        log_format: None,
        cors: None,
        route_metrics: None,
        rate_limit: None,
        span,
    };
    (ex, shared.tables.load_full())
}
