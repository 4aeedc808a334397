//! Step 14: the route's integration — MOCK answers from the gateway, HTTP_PROXY forwards
//! (streaming both ways, with parameter mapping), LAMBDA_PROXY invokes the function with a
//! proxy event.

use http::header::{self, HeaderMap};
use http::{Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{Exchange, respond};
use crate::body::{BodyIdleTimeout, IdleTimeoutBody, ProxyBody, caused_by};
use crate::error::RequestError;
use crate::integration::{LiveHttpProxy, LiveIntegration};
use crate::state::Shared;
use crate::tables::{LiveRoute, LiveStage};
use crate::telemetry::metrics::ByteLabels;
use crate::upstream::{Forwarding, Upstream};

/// What step 14 works on.
pub(super) struct Target<'a> {
    pub stage: &'a LiveStage,
    pub route: &'a LiveRoute,
    /// The request body's limit.
    pub limit: u64,
}

/// Step 14. Answers a MOCK route, forwards an HTTP_PROXY route within its timeout (mapping its
/// parameters), or invokes a LAMBDA_PROXY route's function.
pub(super) async fn integrate(
    shared: &Shared,
    upstream: &Upstream,
    target: Target<'_>,
    request: Request<ProxyBody>,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    match &target.route.integration {
        LiveIntegration::Mock(mock) => mock.respond(&ex.ctx.params),
        LiveIntegration::HttpProxy(http) => {
            forward(shared, upstream, &target, http, request, ex).await
        }
        LiveIntegration::LambdaProxy(lambda) => {
            let invoked = crate::integration::lambda::invoke(
                upstream,
                lambda,
                request,
                &ex.ctx,
                &target.stage.api.binary_media_types,
            )
            .await;
            ex.ctx.integration_latency = invoked.sent_at.map(|t| t.elapsed());
            ex.ctx.integration_status = invoked.status;
            match invoked.response {
                Ok(response) => response,
                Err(error) => {
                    let idle = shared.config.body_idle_timeout;
                    let error = respond::body_error(error, target.limit, idle);
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
        Err(RequestError::UpstreamFailed { source, .. })
            if caused_by::<LengthLimitError>(source.as_ref()) =>
        {
            let error = RequestError::BodyTooLarge {
                limit: target.limit,
            };
            respond::fail(Some(&target.stage.api), error, ex)
        }
        Err(RequestError::UpstreamFailed { source, .. })
            if caused_by::<BodyIdleTimeout>(source.as_ref()) =>
        {
            let error = RequestError::BodyTimeout(BodyIdleTimeout(idle));
            respond::fail(Some(&target.stage.api), error, ex)
        }
        Err(error) => respond::fail(Some(&target.stage.api), error, ex),
    }
}
