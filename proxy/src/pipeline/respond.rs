//! The cache lookup, the gateway's own answers ([`fail`], used by every step), and the last
//! touches of every response with metrics and the access log.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::{Exchange, Flow};
use crate::body::{ObservedBody, ProxyBody, full};
use crate::context::RequestContext;
use crate::error::{Fault, RequestError, classify};
use crate::gateway_response::render;
use crate::state::Shared;
use crate::tables::{LiveRoute, LiveStage};
use crate::telemetry::metrics::{ByteLabels, NONE_LABEL, RequestLabels, status_class};
use crate::telemetry::trace::ChildKind;
use crate::upstream::X_REQUEST_ID;

/// Marks responses served by a stage's canary deployment.
pub const X_CAUSEWAY_CANARY: HeaderName = HeaderName::from_static("x-causeway-canary");
/// Body of every response before the first snapshot.
pub const NO_CONFIGURATION_BODY: &str = r#"{"message":"no configuration yet"}"#;
/// Longest `x-request-id` accepted from a trusted hop; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 200;

/// The request id: the `x-request-id` a trusted hop (a load balancer in front) sent, when it is
/// a safe token (letters, digits, `-`, `_`, `.`, `:`; at most 200 bytes); else a new UUID. A
/// client that is not a trusted hop cannot choose its id (it would forge log correlation).
pub(super) fn request_id(headers: &HeaderMap, trusted_hop: bool) -> HeaderValue {
    if trusted_hop
        && let Some(v) = headers.get(&X_REQUEST_ID)
        && !v.is_empty()
        && v.len() <= MAX_REQUEST_ID_LEN
        && v.as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return v.clone();
    }
    new_request_id()
}

/// Before any snapshot: fail closed with a fixed body.
pub(super) fn no_configuration() -> Response<ProxyBody> {
    let mut r = Response::new(full(NO_CONFIGURATION_BODY));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Serves a GET/HEAD from the stage's cache when the route is cached and the entry is
/// fresh (for this caller, on routes with an authorizer or API key); otherwise says where to
/// keep the response. May refuse a cache invalidation with 403
/// when the route says `FAIL_WITH_403`.
pub(super) fn cache_lookup(
    shared: &Shared,
    stage: &LiveStage,
    route: &LiveRoute,
    request: &Request<ProxyBody>,
    ex: &mut Exchange,
) -> Flow<Option<crate::cache::Pending>> {
    // Uncached routes (the common case) build no key: no host string, no caller text.
    if stage.cache.is_none() || route.cache.is_none() {
        return Flow::Continue(None);
    }
    let host = crate::upstream::forwarded::host_as_sent(request.uri(), request.headers())
        .unwrap_or_default();
    let principal = &ex.ctx.principal;
    // Who the caller is, for the cache key: the principal id, else everything the authorizer
    // said about the caller (a simple-response authorizer names no principal, only context).
    let caller = principal.principal_id.clone().or_else(|| {
        let context = principal.authorizer_context();
        (!context.is_empty()).then(|| serde_json::Value::Object(context).to_string())
    });
    let place = crate::cache::Place {
        stage_id: &stage.id,
        separate_canary: ex.ctx.canary && !stage.canary.as_ref().is_some_and(|c| c.use_stage_cache),
        host: &host,
        stage_path: &ex.ctx.stage_path,
        protected: route.authorization.is_some() || route.api_key_required,
        principal_id: caller.as_deref(),
        api_key_id: principal.api_key_id.as_deref(),
    };
    let span = ex
        .span
        .as_ref()
        .map(|s| s.child("cache", ChildKind::Internal));
    let looked = crate::cache::lookup(stage.cache.as_ref(), route.cache.as_ref(), &place, request);
    if let Some(span) = span {
        shared.tracer.end(span, |r| {
            r.flag(
                "causeway.cache.hit",
                matches!(looked, Ok(crate::cache::Lookup::Hit(_))),
            );
        });
    }
    match looked {
        Ok(crate::cache::Lookup::Hit(response)) => Flow::Respond(response),
        Ok(crate::cache::Lookup::Miss(pending)) => Flow::Continue(pending),
        Err(error) => Flow::Respond(fail(Some(&stage.api), error, ex)),
    }
}

/// Renders the gateway response for an error (the Api's, when known) and notes it in the
/// context for the access log.
pub(super) fn fail(
    api: Option<&causeway_snapshot::ApiConfig>,
    error: RequestError,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    let classified = classify(&error);
    let request_id = &ex.ctx.request_id;
    match error.fault() {
        Fault::Client => tracing::debug!(%request_id, %error, "request refused"),
        Fault::Upstream => {
            tracing::debug!(%request_id, %error, "integration failed");
            ex.ctx.integration_error = Some(error.to_string());
        }
        Fault::Internal => tracing::warn!(%request_id, %error, "internal error"),
    }
    let message = error
        .detailed_message()
        .unwrap_or_else(|| classified.message.to_string());
    let validation_error = match error {
        RequestError::InvalidBody { detail } => Some(detail),
        _ => None,
    };
    render(api, &classified, message, validation_error, &mut ex.ctx)
}

/// A response header value that differs from one response to the next: HTTP/2's header
/// compression (HPACK) is told not to add it to the connection's table. Each such value would
/// otherwise be stored, never be used again, push out entries that are (`content-type`, the
/// rate limit), and make every later response compare its own value with all the stored
/// ones. On `bench/compare.sh`'s HTTP/2 job this took the proxy from 31–33 to 26–28 CPU µs
/// per request (same source otherwise, interleaved runs). HTTP/1.1 writes it as any other
/// value.
fn never_indexed(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

/// Runs last, for every response: adds `x-request-id`, the canary marker, CORS and
/// rate-limit headers, and arranges for metrics and the access-log line when the body has
/// been sent.
pub(super) fn finish(
    shared: &Arc<Shared>,
    ex: Exchange,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    parts
        .headers
        .insert(X_REQUEST_ID, never_indexed(ex.request_id.clone()));
    if let Some((cors, allow)) = &ex.cors {
        cors.decorate(allow.clone(), &mut parts.headers);
    }
    if ex.ctx.canary {
        parts
            .headers
            .insert(X_CAUSEWAY_CANARY, HeaderValue::from_static("true"));
    }
    if let Some((limit, remaining, reset)) = ex.rate_limit {
        parts.headers.insert(
            HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(limit),
        );
        for (name, value) in [
            ("ratelimit-remaining", remaining),
            ("ratelimit-reset", reset),
        ] {
            parts.headers.insert(
                HeaderName::from_static(name),
                never_indexed(HeaderValue::from(value)),
            );
        }
    }
    let status = parts.status.as_u16();
    let shared = Arc::clone(shared);
    let Exchange {
        started,
        mut ctx,
        log_enabled,
        log_format,
        route_metrics,
        span,
        ..
    } = ex;
    let on_done = Box::new(move |bytes: u64, _complete: bool| {
        let elapsed = started.elapsed();
        if let Some(span) = span {
            shared.tracer.end(span, |r| {
                crate::telemetry::trace::describe_server(r, &ctx, status)
            });
        }
        match &route_metrics {
            Some(route) => {
                shared.metrics.observe_route(
                    route,
                    status,
                    elapsed,
                    ctx.integration_latency,
                    bytes,
                );
            }
            None => observe_unrouted(&shared, &ctx, status, elapsed, bytes),
        }
        if log_enabled {
            ctx.status = status;
            ctx.response_length = Some(bytes);
            ctx.response_latency = elapsed;
            shared.access_log.write(&ctx, log_format.as_deref());
        }
    });
    Response::from_parts(parts, ObservedBody::new(body, on_done).boxed_unsync())
}

/// Metrics of a request that matched no route (labels built on the spot; rare).
fn observe_unrouted(
    shared: &Shared,
    ctx: &RequestContext,
    status: u16,
    elapsed: std::time::Duration,
    bytes: u64,
) {
    let label = |v: &Option<String>| v.clone().unwrap_or_else(|| NONE_LABEL.to_string());
    let labels = RequestLabels {
        api: label(&ctx.api_name),
        stage: label(&ctx.stage),
        route: label(&ctx.route_key),
        status_class: status_class(status),
        deployment: if ctx.canary { "canary" } else { "main" },
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

/// `HTTP/1.1`, `HTTP/2.0`, ... without allocating.
pub(super) fn version_name(version: http::Version) -> &'static str {
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
    fn values_that_change_per_response_are_kept_out_of_http2_header_compression() {
        let shared = Arc::new(Shared::new(crate::config::ProxyConfig::default()));
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        let ex = Exchange {
            ctx: RequestContext::new(&HeaderMap::new(), peer, &[], "http"),
            started: std::time::Instant::now(),
            request_id: new_request_id(),
            log_enabled: false,
            log_format: None,
            cors: None,
            route_metrics: None,
            rate_limit: Some((100, 99, 7)),
            span: None,
        };
        let response = finish(&shared, ex, Response::new(full("ok")));
        let headers = response.headers();
        for changing in ["x-request-id", "ratelimit-remaining", "ratelimit-reset"] {
            assert!(headers[changing].is_sensitive(), "{changing}");
        }
        assert!(
            !headers["ratelimit-limit"].is_sensitive(),
            "the same for every response"
        );
        assert_eq!(headers["ratelimit-remaining"], "99");
    }

    #[test]
    fn only_a_trusted_hop_chooses_the_request_id_and_only_a_safe_one() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("lb-123"));
        assert_eq!(request_id(&headers, true), "lb-123");
        assert_ne!(request_id(&headers, false), "lb-123");
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("a b\"<script>"));
        assert_ne!(request_id(&headers, true), "a b\"<script>");
    }
}
