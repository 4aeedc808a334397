//! The route's integration — MOCK answers from the gateway, HTTP_PROXY forwards
//! (streaming both ways, with parameter mapping), LAMBDA_PROXY invokes the function with a
//! proxy event, LAMBDA invokes it with the mapped payload. MOCK, HTTP with mapping templates and
//! LAMBDA buffer the request and the answer, and map both (`integration::templates`).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};

use super::{Exchange, respond};
use crate::body::{IdleTimeoutBody, ProxyBody};
use crate::error::RequestError;
use crate::integration::lambda::LiveLambdaMapped;
use crate::integration::templates::{LiveTemplates, MappedRequest, RequestFacts};
use crate::integration::{LiveHttpProxy, LiveIntegration};
use crate::state::Shared;
use crate::tables::{LiveRoute, LiveStage};
use crate::telemetry::metrics::ByteLabels;
use crate::telemetry::trace::ChildKind;
use crate::upstream::{Forwarding, Upstream};

/// What the integration step works on.
pub(super) struct Target<'a> {
    pub stage: &'a LiveStage,
    pub route: &'a LiveRoute,
    /// The request body's limit.
    pub limit: u64,
}

/// Answers a MOCK route, forwards an HTTP_PROXY route within its timeout (mapping its
/// parameters), or invokes a LAMBDA_PROXY route's function. When tracing, in a child span
/// whose context the backend (`traceparent`, `tracestate`) or the Lambda event's headers
/// carry; it ends when the answer's head is in.
pub(super) async fn integrate(
    shared: &Shared,
    upstream: &Upstream,
    target: Target<'_>,
    mut request: Request<ProxyBody>,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    let Some(server) = &ex.span else {
        return call(shared, upstream, target, request, ex).await;
    };
    let span = server.child("integration", ChildKind::Client);
    span.context.inject(request.headers_mut());
    ex.ctx.trace = Some(span.context.clone());
    let method = request.method().clone();
    let route = target.route;
    let response = call(shared, upstream, target, request, ex).await;
    ex.ctx.trace = ex.span.as_ref().map(|s| s.context.clone());
    let ctx = &ex.ctx;
    shared.tracer.end(span, |r| {
        let (kind, backend) = match &route.integration {
            LiveIntegration::Mock(_) => ("MOCK", None),
            LiveIntegration::HttpProxy(http) => {
                let kind = if http.templates.is_some() {
                    "HTTP"
                } else {
                    "HTTP_PROXY"
                };
                (kind, Some(&http.target.backend))
            }
            LiveIntegration::LambdaProxy(lambda) => ("LAMBDA_PROXY", Some(&lambda.backend)),
            LiveIntegration::Lambda(lambda) => ("LAMBDA", Some(&lambda.backend)),
        };
        r.text("causeway.integration", kind);
        if let Some(backend) = backend {
            r.text("causeway.backend", backend.id.as_str());
            r.text_opt("server.address", backend.authority.to_str().ok());
            r.text("http.request.method", method.as_str());
        }
        if let Some(status) = ctx.integration_status {
            r.int("http.response.status_code", i64::from(status));
        }
        if let Some(error) = &ctx.integration_error {
            r.error = Some(error.clone());
        } else if ctx.integration_status.is_some_and(|s| s >= 500) {
            r.error = Some(String::new());
        }
    });
    response
}

/// The integration itself (see [`integrate`]). Only plain `HTTP_PROXY` and MOCK run inline;
/// the larger futures of mapped, Lambda and templated integrations are boxed, so the common
/// request's future (moved whole into hyper's dispatcher) stays small.
async fn call(
    shared: &Shared,
    upstream: &Upstream,
    target: Target<'_>,
    request: Request<ProxyBody>,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    match &target.route.integration {
        LiveIntegration::Mock(mock) => match &mock.templates {
            None => mock.respond(&ex.ctx.params),
            Some(templates) => {
                let (parts, body) = match Box::pin(read_body(shared, &target, request)).await {
                    Ok(read) => read,
                    Err(error) => return respond::fail(Some(&target.stage.api), error, ex),
                };
                let facts = RequestFacts::new(&parts.headers, parts.uri.query(), &body);
                match templates.mock(&facts, &ex.ctx) {
                    Ok(response) => response,
                    Err(error) => respond::fail(Some(&target.stage.api), error, ex),
                }
            }
        },
        LiveIntegration::HttpProxy(http) => match &http.templates {
            None => forward(shared, upstream, &target, http, request, ex).await,
            Some(templates) => {
                Box::pin(forward_mapped(
                    shared, upstream, &target, http, templates, request, ex,
                ))
                .await
            }
        },
        LiveIntegration::Lambda(lambda) => {
            Box::pin(invoke_mapped(
                shared, upstream, &target, lambda, request, ex,
            ))
            .await
        }
        LiveIntegration::LambdaProxy(lambda) => {
            let invoked = Box::pin(crate::integration::lambda::invoke(
                upstream,
                lambda,
                request,
                &ex.ctx,
                &target.stage.api.binary_media_types,
            ))
            .await;
            ex.ctx.integration_latency = invoked.sent_at.map(|t| t.elapsed());
            ex.ctx.integration_status = invoked.status;
            match invoked.response {
                Ok(response) => response,
                Err(error) => {
                    let idle = shared.config.body_idle_timeout;
                    let error = error.body_failure(target.limit, idle);
                    respond::fail(Some(&target.stage.api), error, ex)
                }
            }
        }
    }
}

/// HTTP_PROXY: maps the request, forwards it with the route's timeout, maps the response.
async fn forward(
    shared: &Shared,
    upstream: &Upstream,
    target: &Target<'_>,
    integration: &LiveHttpProxy,
    request: Request<ProxyBody>,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    // Response mappings may read the request as the client sent it.
    let request_headers = if integration.mapping.maps_response() {
        request.headers().clone()
    } else {
        HeaderMap::new()
    };
    let request_query = request.uri().query().map(str::to_string);
    let (mut parts, body) = request.into_parts();
    let mapped_path =
        match integration
            .mapping
            .apply_request(&mut parts.headers, &mut parts.uri, &ex.ctx)
        {
            Ok(path) => path,
            Err(error) => return respond::fail(Some(&target.stage.api), error, ex),
        };
    let original_host = crate::upstream::forwarded::host_as_sent(&parts.uri, &parts.headers);
    let limit = usize::try_from(target.limit).unwrap_or(usize::MAX);
    let idle = shared.config.body_idle_timeout;
    let received = if http_body::Body::is_end_stream(&body) {
        None
    } else {
        let labels = ByteLabels {
            api: target.stage.api_name.clone(),
            stage: target.stage.name.clone(),
            route: target.route.key.clone(),
        };
        Some(shared.metrics.request_bytes.get_or_create(&labels).clone())
    };
    let body = Limited::new(IdleTimeoutBody::new(body, idle, received), limit).boxed_unsync();
    let request = Request::from_parts(parts, body);
    let fwd = Forwarding {
        peer: ex.ctx.peer,
        trusted_hop: ex.ctx.trusted_hop,
        proto: ex.ctx.scheme,
        original_host: original_host.as_deref(),
        stage_path: mapped_path.as_deref().unwrap_or(&ex.ctx.stage_path),
        params: &ex.ctx.params,
        request_id: &ex.request_id,
    };
    let mut sent_at = None;
    let result = upstream
        .forward(&integration.target, request, &fwd, &mut sent_at)
        .await;
    ex.ctx.integration_latency = sent_at.map(|t| t.elapsed());
    match result {
        Ok(answer) => {
            ex.ctx.integration_status = Some(answer.status);
            let mut response = answer.response;
            integration.mapping.apply_response(
                &mut response,
                &ex.ctx,
                &request_headers,
                request_query.as_deref(),
            );
            response
        }
        Err(error) => {
            let error = error.body_failure(target.limit, idle);
            respond::fail(Some(&target.stage.api), error, ex)
        }
    }
}

/// The largest backend answer a response template reads (API Gateway's payload limit).
const MAX_MAPPED_ANSWER_BYTES: usize = 10 * 1024 * 1024;

/// Reads the whole request body within the route's limit and the idle timeout.
async fn read_body(
    shared: &Shared,
    target: &Target<'_>,
    request: Request<ProxyBody>,
) -> Result<(http::request::Parts, Bytes), RequestError> {
    let idle = shared.config.body_idle_timeout;
    let limit = usize::try_from(target.limit).unwrap_or(usize::MAX);
    let (parts, body) = request.into_parts();
    // Boxed before collecting: a `Limited` held across the await makes the future's `Send`
    // proof need a higher-ranked `From` bound the compiler cannot show.
    match Limited::new(IdleTimeoutBody::new(body, idle, None), limit)
        .boxed_unsync()
        .collect()
        .await
    {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(e) => Err(RequestError::ReadBody(e).body_failure(target.limit, idle)),
    }
}

/// HTTP (non-proxy): maps the request body with its template (or passes it through, or
/// refuses it with 415), applies the parameter mapping, forwards with the route's timeout,
/// then makes the answer from the integration response its status selects.
async fn forward_mapped(
    shared: &Shared,
    upstream: &Upstream,
    target: &Target<'_>,
    integration: &LiveHttpProxy,
    templates: &LiveTemplates,
    request: Request<ProxyBody>,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    let api = &target.stage.api;
    let (mut parts, body) = match read_body(shared, target, request).await {
        Ok(read) => read,
        Err(error) => return respond::fail(Some(api), error, ex),
    };
    let facts = RequestFacts::new(&parts.headers, parts.uri.query(), &body);
    let request_headers = parts.headers.clone();
    let request_query = parts.uri.query().map(str::to_string);
    let body = match templates.map_request(&facts, &ex.ctx) {
        Ok(MappedRequest::Passthrough) => {
            match crate::integration::templates::convert(templates.request_content_handling(), body)
            {
                Ok(body) => body,
                Err(error) => return respond::fail(Some(api), error, ex),
            }
        }
        Ok(MappedRequest::Mapped { body, media_type }) => {
            if let Ok(v) = HeaderValue::from_str(&media_type) {
                parts.headers.insert(header::CONTENT_TYPE, v);
            }
            Bytes::from(body)
        }
        Err(error) => return respond::fail(Some(api), error, ex),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    let mapped_path =
        match integration
            .mapping
            .apply_request(&mut parts.headers, &mut parts.uri, &ex.ctx)
        {
            Ok(path) => path,
            Err(error) => return respond::fail(Some(api), error, ex),
        };
    let original_host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    let request = Request::from_parts(parts, crate::body::full(body));
    let fwd = Forwarding {
        peer: ex.ctx.peer,
        trusted_hop: ex.ctx.trusted_hop,
        proto: ex.ctx.scheme,
        original_host: original_host.as_deref(),
        stage_path: mapped_path.as_deref().unwrap_or(&ex.ctx.stage_path),
        params: &ex.ctx.params,
        request_id: &ex.request_id,
    };
    let mut sent_at = None;
    let result = upstream
        .forward(&integration.target, request, &fwd, &mut sent_at)
        .await;
    ex.ctx.integration_latency = sent_at.map(|t| t.elapsed());
    let answer = match result {
        Ok(answer) => answer,
        Err(error) => return respond::fail(Some(api), error, ex),
    };
    ex.ctx.integration_status = Some(answer.status);
    let (answer_parts, answer_body) = answer.response.into_parts();
    let answer_bytes = match Limited::new(answer_body, MAX_MAPPED_ANSWER_BYTES)
        .boxed_unsync()
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(source) => {
            let error = RequestError::UpstreamFailed {
                backend: integration.target.backend.id.clone(),
                source,
            };
            return respond::fail(Some(api), error, ex);
        }
    };
    match templates.respond(
        answer.status,
        &answer_parts.headers,
        &answer_bytes,
        &facts,
        &ex.ctx,
    ) {
        Ok(mut response) => {
            integration.mapping.apply_response(
                &mut response,
                &ex.ctx,
                &request_headers,
                request_query.as_deref(),
            );
            response
        }
        Err(error) => respond::fail(Some(api), error, ex),
    }
}

/// LAMBDA (non-proxy): the request template renders the invocation payload (or the body passes
/// through, with `contentHandling`, or 415), the function is invoked within the route's
/// timeout, and its error message (none when it succeeded) selects the integration response
/// that makes the answer.
async fn invoke_mapped(
    shared: &Shared,
    upstream: &Upstream,
    target: &Target<'_>,
    lambda: &LiveLambdaMapped,
    request: Request<ProxyBody>,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    let api = &target.stage.api;
    let (parts, body) = match read_body(shared, target, request).await {
        Ok(read) => read,
        Err(error) => return respond::fail(Some(api), error, ex),
    };
    let facts = RequestFacts::new(&parts.headers, parts.uri.query(), &body);
    let templates = &lambda.templates;
    let payload = match templates.map_request(&facts, &ex.ctx) {
        Ok(MappedRequest::Passthrough) => {
            match crate::integration::templates::convert(templates.request_content_handling(), body)
            {
                Ok(body) => body,
                Err(error) => return respond::fail(Some(api), error, ex),
            }
        }
        Ok(MappedRequest::Mapped { body, .. }) => Bytes::from(body),
        Err(error) => return respond::fail(Some(api), error, ex),
    };
    let invoked = crate::integration::lambda::invoke_payload(upstream, lambda, payload).await;
    ex.ctx.integration_latency = invoked.sent_at.map(|t| t.elapsed());
    ex.ctx.integration_status = invoked.status;
    let answer = match invoked.answer {
        Ok(answer) => answer,
        Err(error) => {
            let idle = shared.config.body_idle_timeout;
            return respond::fail(Some(api), error.body_failure(target.limit, idle), ex);
        }
    };
    match templates.respond_to_function(
        answer.error.as_deref(),
        &answer.headers,
        &answer.body,
        &facts,
        &ex.ctx,
    ) {
        Ok(response) => response,
        Err(error) => respond::fail(Some(api), error, ex),
    }
}
