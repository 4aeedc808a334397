//! Errors of the request boundary and the responses the gateway generates itself.
//!
//! Every failure of a request is a [`RequestError`]; it knows whose fault it is ([`Fault`]).
//! [`classify`] is the one place that maps an error to a status code and a gateway response
//! kind; [`render`] turns the kind into a response with the Api's configured status, headers
//! and body template.

use std::collections::BTreeMap;

use causeway_snapshot::{ApiConfig, GatewayResponseKind};
use http::{HeaderName, HeaderValue, Response, StatusCode, header};

use crate::body::{BoxError, ProxyBody, full};

/// Whose fault a failed request is (pingora's `ErrorSource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something we refuse.
    Client,
    /// The backend failed, timed out or is missing.
    Upstream,
    /// The proxy or its configuration.
    Internal,
}

/// Why a request was not forwarded, or why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No route and no `$default` matched.
    #[error("no route matches {method} {path}")]
    NoRoute {
        /// Request method.
        method: String,
        /// Path after the base path.
        path: String,
    },
    /// The request body is larger than the Api allows.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request path is refused by the path policy (`hygiene`).
    #[error("request path {path:?} is refused: {reason}")]
    BadPath {
        /// The path as sent.
        path: String,
        /// Which rule refused it.
        reason: crate::hygiene::PathRejection,
    },
    /// `Host` is duplicated, invalid, or disagrees with the request authority.
    #[error("bad host: {0}")]
    BadHost(#[from] crate::hygiene::HostRejection),
    /// The request target is longer than the proxy allows.
    #[error("request target of {len} bytes is longer than {limit}")]
    UriTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The client stopped sending its body.
    #[error("{0}")]
    BodyTimeout(crate::request_body::BodyIdleTimeout),
    /// The backend did not send a response head in time.
    #[error("backend {backend} did not answer within {timeout_ms} ms")]
    UpstreamTimeout {
        /// Backend id.
        backend: String,
        /// The integration timeout.
        timeout_ms: u32,
    },
    /// No TCP connection to the chosen endpoint.
    #[error("cannot connect to backend {backend} at {endpoint}: {source}")]
    UpstreamConnect {
        /// Backend id.
        backend: String,
        /// The endpoint tried.
        endpoint: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The exchange with the backend failed after connecting.
    #[error("backend {backend} failed: {source}")]
    UpstreamFailed {
        /// Backend id.
        backend: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The backend has no ready endpoint.
    #[error("backend {0} has no ready endpoints")]
    NoEndpoints(String),
    /// The backend uses a scheme this proxy cannot originate yet.
    #[error("backend {0} uses https, which this proxy does not originate yet")]
    UnsupportedScheme(String),
    /// A throttle (gateway, stage or route) refused the request.
    #[error("throttled; a token is available in {retry_after_secs} s")]
    Throttled {
        /// Seconds until the refusing level admits again (`Retry-After`).
        retry_after_secs: u64,
    },
    /// The API key's quota is used up for this period.
    #[error("quota exceeded; the next period starts in {retry_after_secs} s")]
    QuotaExceeded {
        /// Seconds until the next quota period.
        retry_after_secs: u64,
    },
    /// The shared counter store is unreachable and the usage plan fails closed.
    #[error("usage counting is unavailable and the usage plan fails closed")]
    QuotaUnavailable,
    /// The upstream request could not be built (bad path or header from a template).
    #[error("cannot build the upstream request: {0}")]
    BuildRequest(String),
    /// The request body could not be read (buffered for validation or a Lambda event).
    #[error("cannot read the request body: {0}")]
    ReadBody(#[source] BoxError),
    /// Required query strings or headers are missing (request validation).
    #[error("missing required request parameters: [{}]", .0.join(", "))]
    MissingParameters(Vec<String>),
    /// The body does not match its model (request validation).
    #[error("invalid request body: {detail}")]
    InvalidBody {
        /// The validation errors (`$context.error.validationErrorString`).
        detail: String,
    },
    /// The integration's answer is not understood (a malformed Lambda proxy answer).
    #[error("malformed integration response: {0}")]
    IntegrationResponse(String),
    /// A client asked to bypass the cache on a route that refuses it (`FAIL_WITH_403`).
    #[error("cache invalidation is not allowed on this route")]
    CacheInvalidationForbidden,
    /// The resource policy or the route's authorizer or API key check refused the request.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
}

impl RequestError {
    /// The client-facing message when it says more than the kind's fixed one
    /// (`Missing required request parameters: [x]`).
    pub fn detailed_message(&self) -> Option<String> {
        match self {
            Self::MissingParameters(names) => Some(format!(
                "Missing required request parameters: [{}]",
                names.join(", ")
            )),
            _ => None,
        }
    }

    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::NoRoute { .. }
            | Self::BodyTooLarge { .. }
            | Self::BadPath { .. }
            | Self::BadHost(_)
            | Self::UriTooLong { .. }
            | Self::BodyTimeout(_)
            | Self::Throttled { .. }
            | Self::QuotaExceeded { .. }
            | Self::ReadBody(_)
            | Self::MissingParameters(_)
            | Self::InvalidBody { .. }
            | Self::CacheInvalidationForbidden => Fault::Client,
            Self::IntegrationResponse(_) => Fault::Upstream,
            Self::QuotaUnavailable => Fault::Internal,
            Self::UpstreamTimeout { .. }
            | Self::UpstreamConnect { .. }
            | Self::UpstreamFailed { .. }
            | Self::NoEndpoints(_) => Fault::Upstream,
            Self::UnsupportedScheme(_) | Self::BuildRequest(_) => Fault::Internal,
            Self::Auth(e) => e.fault(),
        }
    }
}

/// How an error is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    /// The gateway response kind whose template renders the body.
    pub kind: GatewayResponseKind,
    /// Status when the Api does not configure the kind.
    pub default_status: StatusCode,
    /// Status that wins over the Api's configuration (503 for "no endpoints").
    pub forced_status: Option<StatusCode>,
    /// The client-facing message (`$context.error.message`); never internal detail.
    pub message: &'static str,
}

/// The one mapping from errors to status codes and gateway responses.
pub fn classify(error: &RequestError) -> Classified {
    use GatewayResponseKind as K;
    if let RequestError::Auth(e) = error {
        return e.classify();
    }
    let (kind, status, forced, message) = match error {
        RequestError::NoRoute { .. } => (
            K::MissingAuthenticationToken,
            StatusCode::FORBIDDEN,
            None,
            "Missing Authentication Token",
        ),
        RequestError::BodyTooLarge { .. } => (
            K::RequestTooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            "Request Entity Too Large",
        ),
        RequestError::BadPath { .. } | RequestError::BadHost(_) => (
            K::Default4xx,
            StatusCode::BAD_REQUEST,
            Some(StatusCode::BAD_REQUEST),
            "Bad Request",
        ),
        RequestError::Throttled { .. } => (
            K::Throttled,
            StatusCode::TOO_MANY_REQUESTS,
            None,
            "Too Many Requests",
        ),
        RequestError::QuotaExceeded { .. } => (
            K::QuotaExceeded,
            StatusCode::TOO_MANY_REQUESTS,
            None,
            "Limit Exceeded",
        ),
        RequestError::QuotaUnavailable => (
            K::Default5xx,
            StatusCode::SERVICE_UNAVAILABLE,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "Service Unavailable",
        ),
        RequestError::UriTooLong { .. } => (
            K::Default4xx,
            StatusCode::URI_TOO_LONG,
            Some(StatusCode::URI_TOO_LONG),
            "Request-URI Too Long",
        ),
        RequestError::BodyTimeout(_) => (
            K::Default4xx,
            StatusCode::REQUEST_TIMEOUT,
            Some(StatusCode::REQUEST_TIMEOUT),
            "Request Timeout",
        ),
        RequestError::UpstreamTimeout { .. } => (
            K::IntegrationTimeout,
            StatusCode::GATEWAY_TIMEOUT,
            None,
            "Endpoint request timed out",
        ),
        RequestError::UpstreamConnect { .. } | RequestError::UpstreamFailed { .. } => (
            K::IntegrationFailure,
            StatusCode::BAD_GATEWAY,
            None,
            "Bad Gateway",
        ),
        RequestError::NoEndpoints(_) => (
            K::Default5xx,
            StatusCode::SERVICE_UNAVAILABLE,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "Service Unavailable",
        ),
        RequestError::ReadBody(_) => (
            K::Default4xx,
            StatusCode::BAD_REQUEST,
            Some(StatusCode::BAD_REQUEST),
            "Bad Request",
        ),
        RequestError::MissingParameters(_) => (
            K::BadRequestParameters,
            StatusCode::BAD_REQUEST,
            None,
            "Missing required request parameters",
        ),
        RequestError::InvalidBody { .. } => (
            K::BadRequestBody,
            StatusCode::BAD_REQUEST,
            None,
            "Invalid request body",
        ),
        RequestError::IntegrationResponse(_) => (
            K::IntegrationFailure,
            StatusCode::BAD_GATEWAY,
            None,
            "Internal server error",
        ),
        RequestError::CacheInvalidationForbidden => (
            K::Default4xx,
            StatusCode::FORBIDDEN,
            Some(StatusCode::FORBIDDEN),
            "Forbidden",
        ),
        RequestError::UnsupportedScheme(_) | RequestError::BuildRequest(_) => (
            K::ApiConfigurationError,
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "Internal server error",
        ),
        RequestError::Auth(_) => (K::AccessDenied, StatusCode::FORBIDDEN, None, "Forbidden"),
    };
    Classified {
        kind,
        default_status: status,
        forced_status: forced,
        message,
    }
}

/// Values a gateway response template may use.
pub(crate) struct ResponseContext<'a> {
    /// What is known of the request so far (`$context.identity.sourceIp`, `httpMethod`, `path`,
    /// `domainName`, `requestTime`, `routeKey`, ...).
    pub record: Option<&'a crate::access_log::AccessRecord>,
    pub request_id: &'a str,
    pub message: &'a str,
    pub stage: Option<&'a str>,
    pub api: Option<&'a str>,
    /// Request validation detail (`$context.error.validationErrorString`).
    pub validation_error: Option<&'a str>,
}

/// The default body of every gateway response (API Gateway's).
const DEFAULT_BODY: &str = r#"{"message":$context.error.messageString}"#;

/// Renders a gateway response of `kind` with the Api's configuration (when known).
pub(crate) fn render(
    api: Option<&ApiConfig>,
    classified: &Classified,
    ctx: &ResponseContext<'_>,
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
    let body = if ctx.message != classified.message
        && body == format!(r#"{{"message":{}}}"#, json_string(classified.message))
    {
        DEFAULT_BODY
    } else {
        body
    };
    let kind_name = kind_name(classified.kind);
    let lookup = |name: &str| -> Option<String> {
        Some(match name {
            "error.message" => ctx.message.to_string(),
            "error.messageString" => json_string(ctx.message),
            "error.responseType" => kind_name.clone(),
            "error.validationErrorString" => ctx.validation_error.unwrap_or_default().to_string(),
            "requestId" | "extendedRequestId" => ctx.request_id.to_string(),
            "stage" => ctx.stage.unwrap_or_default().to_string(),
            "apiId" => ctx.api.unwrap_or_default().to_string(),
            "status" => status.as_u16().to_string(),
            other => return ctx.record.and_then(|r| r.lookup(other)),
        })
    };
    let mut response = Response::new(full(substitute_context(body, &lookup)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    for (name, value) in headers {
        let value = substitute_context(value, &lookup);
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

/// `s` as a quoted JSON string.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Replaces `$context.name` (name: letters, digits, `.`, `_`) using `lookup`; unknown names are
/// left as written. A trailing `.` is not part of the name.
pub(crate) fn substitute_context(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> String {
    const MARK: &str = "$context.";
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let mut len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(after.len());
        while len > 0 && after[..len].ends_with('.') {
            len -= 1;
        }
        match lookup(&after[..len]) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[at..at + MARK.len() + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_variables_are_substituted_and_unknown_ones_kept() {
        let lookup = |n: &str| match n {
            "error.message" => Some("boom".to_string()),
            "error.messageString" => Some("\"boom\"".to_string()),
            "requestId" => Some("r1".to_string()),
            _ => None,
        };
        assert_eq!(
            substitute_context(
                r#"{"m":$context.error.messageString,"raw":"$context.error.message.","id":"$context.requestId","x":"$context.nope"}"#,
                &lookup
            ),
            r#"{"m":"boom","raw":"boom.","id":"r1","x":"$context.nope"}"#
        );
    }

    #[test]
    fn no_endpoints_is_a_503_whatever_the_default_5xx_says() {
        let c = classify(&RequestError::NoEndpoints("b".into()));
        assert_eq!(c.forced_status, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(c.message, "Service Unavailable");
    }
}
