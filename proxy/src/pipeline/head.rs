//! Steps 2 to 4: the request head before any Api is known — its hygiene, the stage it names,
//! and CORS preflights.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{Exchange, Flow, respond};
use crate::body::{ProxyBody, full};
use crate::context::TlsInfo;
use crate::cors::LiveCors;
use crate::error::RequestError;
use crate::gateway_response::fixed_json;
use crate::hygiene;
use crate::state::Shared;
use crate::tables::{LiveStage, Tables};

/// Step 2. Refuses an over-long request target (414) and a duplicated or conflicting `Host`
/// (400), then normalizes the path (`hygiene::normalize_path`) and writes it back into the
/// request, or refuses it (400). Runs before the Api is known, so answers use the default
/// gateway responses.
pub(super) fn sanitize(
    shared: &Shared,
    request: &mut Request<Incoming>,
    ex: &mut Exchange,
) -> Flow<()> {
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
        return Flow::Respond(respond::fail(None, error, ex));
    }
    if let Err(rejection) = hygiene::check_host(request) {
        return Flow::Respond(respond::fail(None, rejection.into(), ex));
    }
    let normalized = match hygiene::normalize_path(request.uri().path()) {
        Ok(Cow::Borrowed(_)) => return Flow::Continue(()),
        Ok(Cow::Owned(path)) => path,
        Err(reason) => {
            let path = request.uri().path().to_string();
            return Flow::Respond(respond::fail(
                None,
                RequestError::BadPath { path, reason },
                ex,
            ));
        }
    };
    if let Err(e) = hygiene::set_path(request, &normalized) {
        let error = RequestError::BuildRequest(format!("normalized path: {e}"));
        return Flow::Respond(respond::fail(None, error, ex));
    }
    ex.ctx.path = normalized;
    Flow::Continue(())
}

/// Step 3. Finds the stage by host (port ignored) and base path or routing rule, and notes
/// the path with the base path removed. May answer 404 (no Api is known yet, so the body is
/// fixed), 421 (a mutual-TLS host over a connection that did not verify its certificate) or
/// 308 (a stage that redirects HTTP to HTTPS).
pub(super) fn find_stage<'t>(
    shared: &Shared,
    tables: &'t Tables,
    request: &Request<Incoming>,
    ex: &mut Exchange,
) -> Flow<&'t LiveStage> {
    let host = request_host(request);
    let found = host.as_deref().and_then(|host| {
        tables
            .hosts
            .find(host, request.uri().path(), request.headers())
    });
    if ex.ctx.scheme == "http"
        && let (Some(hit), Some(host)) = (&found, &host)
        && hit.redirect_to_https
    {
        return Flow::Respond(https_redirect(shared, host, request));
    }
    let Some((stage, stage_path)) =
        found.and_then(|hit| tables.stages.get(hit.stage).map(|s| (s, hit.path)))
    else {
        return Flow::Respond(not_found(ex, StatusCode::NOT_FOUND, "Not Found"));
    };
    if let Some(host) = &host
        && !mutual_tls_satisfied(tables, host, request)
    {
        // A mutual-TLS host reached over plain HTTP, or over a TLS connection whose handshake
        // was for another name (SNI) and so checked no client certificate from this host's CA.
        let status = StatusCode::MISDIRECTED_REQUEST;
        return Flow::Respond(not_found(ex, status, "Misdirected Request"));
    }
    let ctx = &mut ex.ctx;
    ctx.domain_name = host;
    ctx.api_id = Some(stage.api.id.clone());
    ctx.api_name = Some(stage.api_name.clone());
    ctx.stage = Some(stage.name.clone());
    ctx.stage_id = Some(stage.id.clone());
    ctx.stage_path = stage_path;
    ex.log_enabled = stage.access_log.enabled;
    ex.log_format = stage.access_log.format.clone();
    Flow::Continue(stage)
}

/// A fixed answer before any Api is known.
fn not_found(ex: &mut Exchange, status: StatusCode, message: &str) -> Response<ProxyBody> {
    ex.ctx.error = Some(crate::context::ErrorFacts {
        message: message.to_string(),
        ..Default::default()
    });
    fixed_json(status, message)
}

/// Whether a request for `host` may be served on its connection: hosts without mutual TLS
/// always; a mutual-TLS host only on a connection whose handshake verified a client
/// certificate against the same CA bundle (the bundle may have changed since: then the client
/// reconnects).
fn mutual_tls_satisfied(tables: &Tables, host: &str, request: &Request<Incoming>) -> bool {
    let Some(required) = tables
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
pub(super) fn request_host<B>(request: &Request<B>) -> Option<String> {
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

/// Step 4. With CORS configured on the Api: answers a preflight here (whatever the routes),
/// and notes the allowed origin so that the response step adds the CORS headers to any
/// response, gateway errors included.
pub(super) fn cors(stage: &LiveStage, request: &Request<Incoming>, ex: &mut Exchange) -> Flow<()> {
    let Some(cors) = &stage.cors else {
        return Flow::Continue(());
    };
    if LiveCors::is_preflight(request) {
        ex.ctx.route_key = Some("$cors-preflight".to_string());
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
