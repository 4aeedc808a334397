//! The responses the gateway generates itself: [`render`] turns a classified error (see
//! `error::classify`) into a response with the Api's configured status, headers and body
//! template, whose `$context` variables the request's context resolves.

use std::collections::BTreeMap;

use causeway_snapshot::{ApiConfig, GatewayResponseKind};
use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use crate::body::{ProxyBody, full};
use crate::context::{ErrorFacts, RequestContext, json_string};
use crate::error::Classified;

/// The default body of every gateway response (API Gateway's).
const DEFAULT_BODY: &str = r#"{"message":$context.error.messageString}"#;

/// Renders the gateway response for `classified` with the Api's configuration (when known).
/// `message` is the client-facing message (`$context.error.message`); the context records the
/// error and the status, so the access log shows them too.
pub(crate) fn render(
    api: Option<&ApiConfig>,
    classified: &Classified,
    message: String,
    validation_error: Option<String>,
    ctx: &mut RequestContext,
) -> Response<ProxyBody> {
    // A kind the Api does not list falls back to DEFAULT_4XX / DEFAULT_5XX for its headers and
    // body, but keeps its own status (a throttled request stays a 429), as API Gateway does.
    let (configured, own) = match api.and_then(|api| api.gateway_responses.get(&classified.kind)) {
        Some(r) => (Some(r), true),
        None => {
            let fallback = if classified.default_status.is_client_error() {
                GatewayResponseKind::Default4xx
            } else {
                GatewayResponseKind::Default5xx
            };
            (
                api.and_then(|api| api.gateway_responses.get(&fallback)),
                false,
            )
        }
    };
    let empty = BTreeMap::new();
    let (status, headers, body, content_type) = match configured {
        Some(r) => (
            StatusCode::from_u16(r.status)
                .ok()
                .filter(|_| own)
                .unwrap_or(classified.default_status),
            &r.headers,
            r.body.as_str(),
            r.content_type.as_str(),
        ),
        None => (
            classified.default_status,
            &empty,
            DEFAULT_BODY,
            "application/json",
        ),
    };
    let status = classified.forced_status.unwrap_or(status);
    // Compile writes default bodies as literal JSON with the kind's fixed message; when this
    // error says more (`Missing required request parameters: [x]`), such a body is rendered as
    // API Gateway's default template instead, so the detail reaches the client.
    let body = if message != classified.message
        && body == format!(r#"{{"message":{}}}"#, json_string(classified.message))
    {
        DEFAULT_BODY
    } else {
        body
    };
    ctx.error = Some(ErrorFacts {
        message,
        response_type: kind_name(classified.kind),
        validation_error,
    });
    ctx.status = status.as_u16();
    let mut response = Response::new(full(ctx.render(body, "")));
    *response.status_mut() = status;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    for (name, value) in headers {
        let value = ctx.render(value, "");
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(n, v);
        }
    }
    response
}

/// A fixed JSON answer for cases without an Api (unknown host, no configuration yet).
pub(crate) fn fixed_json(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = format!(r#"{{"message":{}}}"#, json_string(message));
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn kind_name(kind: GatewayResponseKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
