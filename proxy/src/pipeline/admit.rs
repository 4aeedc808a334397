//! Whether the request may go on — the resource policy, the body limit,
//! throttles (before any authorizer is asked), authorization, the caller's usage plan, and
//! request validation.

use std::time::Instant;

use causeway_snapshot::ApiConfig;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::{Exchange, Flow, respond};
use crate::body::{IdleTimeoutBody, ProxyBody};
use crate::error::RequestError;
use crate::limits::quota::QuotaDecision;
use crate::state::Shared;
use crate::tables::{LiveRoute, LiveStage, Tables};
use crate::telemetry::trace::ChildKind;

/// The Api's resource policy on the client address (resolved through trusted hops when
/// the request began); 403 before any route is looked at.
pub(super) fn policy(tables: &Tables, stage: &LiveStage, ex: &mut Exchange) -> Flow<()> {
    match tables.auth.check_policy(&stage.api.id, ex.ctx.source_ip) {
        Ok(()) => Flow::Continue(()),
        Err(error) => Flow::Respond(respond::fail(Some(&stage.api), error.into(), ex)),
    }
}

/// Refuses a declared body larger than the Api's (or the proxy's) limit before reading
/// it; returns the limit that caps a streamed body.
pub(super) fn body_limit(
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
        let error = RequestError::BodyTooLarge { limit };
        return Flow::Respond(respond::fail(Some(api), error, ex));
    }
    Flow::Continue(limit)
}

/// The gateway, stage and route buckets, from the widest to the narrowest, before any
/// authorizer is called (so a flood of bad credentials cannot reach the authorizer faster than
/// the stage admits). A refusal gives back the tokens already taken and answers 429 with
/// `Retry-After`.
pub(super) fn throttle(
    shared: &Shared,
    stage: &LiveStage,
    route: &LiveRoute,
    ex: &mut Exchange,
) -> Flow<()> {
    let gateway = shared.gateway_throttle.as_deref();
    match crate::limits::admit(gateway, &stage.throttles, &route.key, Instant::now()) {
        Ok(()) => Flow::Continue(()),
        Err(wait) => {
            let (api, name) = (&stage.api_name, &stage.name);
            shared.metrics.throttled(api, name, "throttle");
            Flow::Respond(refuse(stage, throttled(wait), ex))
        }
    }
}

/// The client-controlled removal (`upstream::forwarded`) on the headers as the
/// client sent them — hop-by-hop and `Connection`-named headers, every name the gateway sets
/// on some route of the Api, names with `_` — before any step adds a header of its own. The
/// upgrade the client asked for is kept in the request's extensions. 400 when the proxy
/// refuses `_` in header names.
pub(super) fn client_headers(
    shared: &Shared,
    stage: &LiveStage,
    request: &mut Request<Incoming>,
    ex: &mut Exchange,
) -> Flow<()> {
    let stripped = crate::upstream::forwarded::strip_client_headers(
        request.headers_mut(),
        &stage.reserved_headers,
        shared.config.headers_with_underscores,
    );
    match stripped {
        Ok(upgrade) => {
            if let Some(upgrade) = upgrade {
                request.extensions_mut().insert(upgrade);
            }
            Flow::Continue(())
        }
        Err(error) => Flow::Respond(respond::fail(Some(&stage.api), error, ex)),
    }
}

/// The route's authorizer, then its API key (`auth::authorize`); who the caller is
/// goes into the context.
pub(super) async fn authorize(
    shared: &Shared,
    tables: &Tables,
    stage: &LiveStage,
    route: &LiveRoute,
    limit: u64,
    request: Request<Incoming>,
    ex: &mut Exchange,
) -> Flow<Request<ProxyBody>> {
    let wants = crate::auth::RouteAuth {
        api_key_required: route.api_key_required,
        authorization: route.authorization.as_ref(),
    };
    // A route with an authorizer gets a child span for it (a client span when it calls a
    // function, which gets that span as its parent).
    let span = route
        .authorization
        .as_ref()
        .zip(ex.span.as_ref())
        .map(|(authorization, server)| {
            let kind = if tables.auth.calls_out(&authorization.authorizer) {
                ChildKind::Client
            } else {
                ChildKind::Internal
            };
            server.child("authorizer", kind)
        });
    if let Some(span) = &span {
        ex.ctx.trace = Some(span.context.clone());
    }
    let authorized = crate::auth::authorize(
        &shared.auth,
        &tables.auth,
        wants,
        limit,
        request,
        &mut ex.ctx,
    )
    .await;
    if let Some(span) = span {
        ex.ctx.trace = ex.span.as_ref().map(|s| s.context.clone());
        shared.tracer.end(span, |r| {
            let id = route.authorization.as_ref().map(|a| a.authorizer.as_str());
            r.text_opt("causeway.authorizer", id);
            if let Err(error) = &authorized {
                r.error = Some(error.to_string());
            }
        });
    }
    match authorized {
        Ok(request) => Flow::Continue(request),
        Err(error) => {
            // The stage's tokens were spent on a request that goes no further.
            Flow::Respond(respond::fail(Some(&stage.api), error.into(), ex))
        }
    }
}

/// The caller's usage plan: the key's bucket and its bucket for this route, then the
/// key's quota (counted only for requests every throttle admitted). A refusal gives back the
/// tokens of the gateway, stage and route buckets and of the key, and answers 429 (or 503 when the quota store is down and
/// the plan fails closed). Keyed requests are counted in the usage report either way.
pub(super) async fn usage_plan(
    shared: &Shared,
    tables: &Tables,
    stage: &LiveStage,
    route: &LiveRoute,
    ex: &mut Exchange,
) -> Flow<()> {
    let key = match (&ex.ctx.usage_plan_id, &ex.ctx.principal.api_key_id) {
        (Some(plan), Some(key)) => tables.plans.key(plan, key),
        _ => None,
    };
    let Some((limits, fail_closed)) = key else {
        return Flow::Continue(());
    };
    let gateway = shared.gateway_throttle.as_deref();
    let mut refusal = match limits.admit(&stage.id, &route.key, Instant::now()) {
        Ok(()) => None,
        Err(wait) => Some(throttled(wait)),
    };
    if refusal.is_none()
        && let Some(rule) = limits.quota
    {
        let verdict = shared
            .quotas
            .admit(
                limits.scope,
                rule,
                !fail_closed,
                shared.config.clock.system_time(),
            )
            .await;
        refusal = match verdict {
            QuotaDecision::Admitted => None,
            QuotaDecision::Exceeded { retry_after } => Some(RequestError::QuotaExceeded {
                retry_after_secs: crate::limits::retry_after_seconds(retry_after),
            }),
            QuotaDecision::Unavailable => Some(RequestError::QuotaUnavailable),
        };
        if refusal.is_some() {
            limits.refund(&stage.id, &route.key);
        }
    }
    let day = shared.config.clock.unix_day();
    shared
        .usage
        .record(limits.plan, limits.key, day, refusal.is_none());
    ex.rate_limit = limits.rate_limit(Instant::now());
    match refusal {
        None => Flow::Continue(()),
        Some(error) => {
            let reason = match &error {
                RequestError::QuotaExceeded { .. } => "quota",
                RequestError::QuotaUnavailable => "quota_unavailable",
                _ => "usage_plan",
            };
            shared
                .metrics
                .throttled(&stage.api_name, &stage.name, reason);
            crate::limits::refund(gateway, &stage.throttles, &route.key);
            Flow::Respond(refuse(stage, error, ex))
        }
    }
}

fn throttled(wait: std::time::Duration) -> RequestError {
    RequestError::Throttled {
        retry_after_secs: crate::limits::retry_after_seconds(wait),
    }
}

/// A 429 (or 503) with `Retry-After` when the error says when to come back.
fn refuse(stage: &LiveStage, error: RequestError, ex: &mut Exchange) -> Response<ProxyBody> {
    let retry_after = match &error {
        RequestError::Throttled { retry_after_secs }
        | RequestError::QuotaExceeded { retry_after_secs } => Some(*retry_after_secs),
        _ => None,
    };
    let mut response = respond::fail(Some(&stage.api), error, ex);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Caps the request body at `limit` bytes and at the idle timeout between its pieces, for
/// every later reader (validation, Lambda events, the cache, forwarding).
pub(super) fn bounded_body(
    shared: &Shared,
    request: Request<ProxyBody>,
    limit: u64,
) -> Request<ProxyBody> {
    let idle = shared.config.body_idle_timeout;
    request.map(|body| {
        Limited::new(
            IdleTimeoutBody::new(body, idle, None),
            usize::try_from(limit).unwrap_or(usize::MAX),
        )
        .boxed_unsync()
    })
}

/// Checks required query strings and headers and the body against its model; only
/// routes that validate a body buffer it. A refusal is 400 BAD_REQUEST_* and the backend
/// never sees the request.
pub(super) async fn validate(
    shared: &Shared,
    stage: &LiveStage,
    route: &LiveRoute,
    request: Request<ProxyBody>,
    limit: u64,
    ex: &mut Exchange,
) -> Flow<Request<ProxyBody>> {
    let Some(validator) = &route.validation else {
        return Flow::Continue(request);
    };
    match validator.check(request).await {
        Ok(request) => Flow::Continue(request),
        Err(error) => {
            let error = error.body_failure(limit, shared.config.body_idle_timeout);
            Flow::Respond(respond::fail(Some(&stage.api), error, ex))
        }
    }
}
