//! Errors, typed per boundary, and the one mapping from a request's error to its status and
//! gateway response kind ([`classify`]).
//!
//! Request boundary: every failure of a request is a [`RequestError`] that knows whose fault
//! it is ([`Fault`], pingora's `ErrorSource`); authorization failures are [`AuthError`]s inside
//! it. Snapshot boundary: a part of a snapshot that cannot be built is an [`ApplyError`].

use causeway_snapshot::{GatewayResponseKind, RouteConflict};
use http::StatusCode;

use http_body_util::LengthLimitError;

use crate::body::{BodyIdleTimeout, BoxError, ClientBodyError, caused_by};

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
        reason: PathRejection,
    },
    /// A request header name contains `_` and the proxy refuses those
    /// (`HeadersWithUnderscores::Reject`).
    #[error("request header {0:?} has an underscore in its name")]
    UnderscoreHeader(String),
    /// `Host` is duplicated, invalid, or disagrees with the request authority.
    #[error("bad host: {0}")]
    BadHost(#[from] HostRejection),
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
    BodyTimeout(BodyIdleTimeout),
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
    /// No request template for the content type, and the passthrough behavior refuses it.
    #[error("no mapping template for content type {0:?}")]
    UnsupportedMediaType(String),
    /// A mapping template failed (a bound, a method that throws), or no integration response
    /// matches the backend's status.
    #[error("mapping template: {0}")]
    MappingTemplate(String),
    /// The resource policy or the route's authorizer or API key check refused the request.
    #[error(transparent)]
    Auth(#[from] AuthError),
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

    /// A failure while the request body was read — by a validator, a Lambda event, or the
    /// upstream client streaming it to the backend — said as the client's fault when the
    /// client's body caused it: over the limit (413), stalled (408), malformed or cut short
    /// (400, never 502). Any other error is returned as it is.
    pub(crate) fn body_failure(self, limit: u64, idle: std::time::Duration) -> Self {
        let cause = match &self {
            Self::ReadBody(e) | Self::UpstreamFailed { source: e, .. } => e.as_ref(),
            _ => return self,
        };
        if caused_by::<LengthLimitError>(cause) {
            Self::BodyTooLarge { limit }
        } else if caused_by::<BodyIdleTimeout>(cause) {
            Self::BodyTimeout(BodyIdleTimeout(idle))
        } else if caused_by::<ClientBodyError>(cause) {
            match self {
                Self::UpstreamFailed { source, .. } => Self::ReadBody(source),
                other => other,
            }
        } else {
            self
        }
    }

    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::NoRoute { .. }
            | Self::BodyTooLarge { .. }
            | Self::BadPath { .. }
            | Self::UnderscoreHeader(_)
            | Self::BadHost(_)
            | Self::UriTooLong { .. }
            | Self::BodyTimeout(_)
            | Self::Throttled { .. }
            | Self::QuotaExceeded { .. }
            | Self::ReadBody(_)
            | Self::MissingParameters(_)
            | Self::InvalidBody { .. }
            | Self::UnsupportedMediaType(_)
            | Self::CacheInvalidationForbidden => Fault::Client,
            Self::MappingTemplate(_) => Fault::Internal,
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
        RequestError::BadPath { .. }
        | RequestError::BadHost(_)
        | RequestError::UnderscoreHeader(_) => (
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
        RequestError::UnsupportedMediaType(_) => (
            K::UnsupportedMediaType,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "Unsupported Media Type",
        ),
        RequestError::MappingTemplate(_) => (
            K::ApiConfigurationError,
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "Internal server error",
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

/// Why authorization refused a request, or could not decide (then it refuses too).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The resource policy refused the client address.
    #[error("client address {0} is refused by the resource policy")]
    PolicyDenied(std::net::IpAddr),
    /// The route requires an API key and none was sent.
    #[error("the route requires an API key and the request has no x-api-key")]
    MissingApiKey,
    /// The key is unknown on this stage, or disabled.
    #[error("the API key is not valid for this stage")]
    InvalidApiKey,
    /// No credentials where the authorizer reads them.
    #[error("the request carries no {0}")]
    MissingIdentity(String),
    /// The credentials are not valid (bad token, bad signature, refused by a TOKEN regex...).
    #[error("credentials refused: {0}")]
    Unauthorized(String),
    /// The caller is known but may not call this route (missing scope, explicit deny).
    #[error("access denied: {0}")]
    Denied(String),
    /// The SigV4 signature does not match.
    #[error("signature refused: {0}")]
    InvalidSignature(String),
    /// The SigV4 timestamp is outside the window.
    #[error("signature timestamp is outside the allowed window")]
    SignatureExpired,
    /// No SigV4 Authorization header.
    #[error("the request is not signed")]
    Unsigned,
    /// The authorizer could not be asked (down, timed out, failed).
    #[error("authorizer {authorizer} failed: {reason}")]
    AuthorizerFailed {
        /// Authorizer id.
        authorizer: String,
        /// What happened.
        reason: String,
    },
    /// The authorizer answered something that is not a decision.
    #[error("authorizer {authorizer} answered badly: {reason}")]
    BadAnswer {
        /// Authorizer id.
        authorizer: String,
        /// What was wrong.
        reason: String,
    },
    /// The route names an authorizer the snapshot does not hold.
    #[error("route names unknown authorizer {0}")]
    UnknownAuthorizer(String),
    /// A SigV4 request body is larger than the limit.
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(u64),
    /// Reading a SigV4 request body failed.
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
}

impl AuthError {
    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::AuthorizerFailed { .. } | Self::BadAnswer { .. } => Fault::Upstream,
            Self::UnknownAuthorizer(_) => Fault::Internal,
            _ => Fault::Client,
        }
    }

    /// The gateway response for it (API Gateway's kinds, codes and messages).
    pub fn classify(&self) -> Classified {
        use GatewayResponseKind as K;
        let (kind, status, message) = match self {
            Self::PolicyDenied(_) => (
                K::WafFiltered,
                StatusCode::FORBIDDEN,
                "User: anonymous is not authorized to perform: execute-api:Invoke",
            ),
            Self::MissingApiKey | Self::InvalidApiKey => {
                (K::InvalidApiKey, StatusCode::FORBIDDEN, "Forbidden")
            }
            Self::MissingIdentity(_) | Self::Unauthorized(_) => {
                (K::Unauthorized, StatusCode::UNAUTHORIZED, "Unauthorized")
            }
            Self::Denied(_) => (K::AccessDenied, StatusCode::FORBIDDEN, "Forbidden"),
            Self::InvalidSignature(_) => (
                K::InvalidSignature,
                StatusCode::FORBIDDEN,
                "The request signature we calculated does not match the signature you provided.",
            ),
            Self::SignatureExpired => (K::ExpiredToken, StatusCode::FORBIDDEN, "Signature expired"),
            Self::Unsigned => (
                K::MissingAuthenticationToken,
                StatusCode::FORBIDDEN,
                "Missing Authentication Token",
            ),
            Self::AuthorizerFailed { .. } => (
                K::AuthorizerFailure,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ),
            Self::BadAnswer { .. } | Self::UnknownAuthorizer(_) => (
                K::AuthorizerConfigurationError,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ),
            Self::BodyTooLarge(_) => (
                K::RequestTooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large",
            ),
            Self::BodyRead(_) => (K::Default4xx, StatusCode::BAD_REQUEST, "Bad Request"),
        };
        Classified {
            kind,
            default_status: status,
            forced_status: None,
            message,
        }
    }
}

/// Why a piece of the authorization tables (a policy, key or authorizer) cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthApplyError {
    /// A CIDR of a resource policy does not parse.
    #[error("api {api}: policy CIDR {cidr:?} is not valid")]
    Cidr {
        /// Api id.
        api: String,
        /// The CIDR.
        cidr: String,
    },
    /// A key hash is not 64 hex digits.
    #[error("usage plan {plan}: key {key} has an invalid sha256")]
    KeyHash {
        /// Plan id.
        plan: String,
        /// Key id.
        key: String,
    },
    /// An authorizer's settings cannot be used.
    #[error("authorizer {authorizer}: {reason}")]
    Authorizer {
        /// Authorizer id.
        authorizer: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a part of a snapshot (a stage, backend, host rule, authorizer, key or certificate)
/// cannot be applied: that part is left out and reported, the rest serves.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A stage needs a piece that was left out (its Api's resource policy, an authorizer).
    #[error("it needs {what} {id}, which was left out: {reason}")]
    NeedsUnusable {
        /// What kind of piece.
        what: &'static str,
        /// Its id.
        id: String,
        /// Why that piece was left out.
        reason: String,
    },
    /// A host points at a stage the snapshot does not have.
    #[error("host {host} refers to unknown stage {stage}")]
    UnknownStage {
        /// Hostname.
        host: String,
        /// Stage id.
        stage: String,
    },
    /// A stage belongs to an Api the snapshot does not have.
    #[error("stage {stage} refers to unknown api {api}")]
    UnknownApi {
        /// Stage id.
        stage: String,
        /// Api id.
        api: String,
    },
    /// A route refers to a backend the snapshot does not have.
    #[error("route {route} of stage {stage} refers to unknown backend {backend}")]
    UnknownBackend {
        /// Stage id.
        stage: String,
        /// Route key.
        route: String,
        /// Backend id.
        backend: String,
    },
    /// The authorization tables (policies, keys, authorizers) cannot be built.
    #[error(transparent)]
    Auth(#[from] AuthApplyError),
    /// Two routes of a deployment cannot live in one tree.
    #[error("deployment {deployment} of stage {stage}: route {key:?}: {source}")]
    Route {
        /// Stage id.
        stage: String,
        /// Deployment id.
        deployment: String,
        /// The route that could not be added.
        key: String,
        /// The conflict.
        #[source]
        source: RouteConflict,
    },
    /// A route's model does not compile as a JSON Schema.
    #[error("route {route} of stage {stage}: {source}")]
    Schema {
        /// Stage id.
        stage: String,
        /// Route key.
        route: String,
        /// The schema error.
        #[source]
        source: SchemaError,
    },
    /// A route's parameter mapping cannot be built.
    #[error("route {route} of stage {stage}: {source}")]
    Mapping {
        /// Stage id.
        stage: String,
        /// Route key.
        route: String,
        /// The mapping error.
        #[source]
        source: MappingError,
    },
    /// A value that must be an HTTP token, header or status is not one.
    #[error("{what} {value:?} in {context} is not valid")]
    Invalid {
        /// What kind of value (header name, header value, status, method, authority).
        what: &'static str,
        /// The value.
        value: String,
        /// Where it was (route key, backend id, host).
        context: String,
    },
}

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRejection {
    /// Not an absolute path (`*`, empty, relative).
    #[error("the path is not absolute")]
    NotAbsolute,
    /// A `..` segment, literal or encoded.
    #[error("the path has a `..` segment")]
    DotDot,
    /// `%2F`: a slash hidden from routing.
    #[error("the path has an encoded slash (%2F)")]
    EncodedSlash,
    /// `\` or `%5C`: some backends treat it as a slash.
    #[error("the path has a backslash")]
    Backslash,
    /// `;` or `%3B`: path parameters that backends strip differently.
    #[error("the path has a semicolon")]
    Semicolon,
    /// `%00` or a `%` not followed by two hex digits.
    #[error("the path has a NUL or a malformed percent escape")]
    BadEscape,
    /// Percent-escapes that decode to bytes that are not UTF-8 (`%c0%ae`, an overlong `.`;
    /// `%ff`; an encoded surrogate): backends decode them differently, or into `..`.
    #[error("the path has percent-escapes that are not UTF-8")]
    InvalidUtf8,
}

/// Why the request's host is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostRejection {
    /// More than one `Host` header.
    #[error("the request has {0} Host headers")]
    Duplicate(usize),
    /// `Host` disagrees with the request target's authority (HTTP/2 `:authority`, absolute-form).
    #[error("Host {host:?} disagrees with the request authority {authority:?}")]
    Conflict {
        /// The `Host` header.
        host: String,
        /// The authority of the request target.
        authority: String,
    },
    /// `Host` is not a valid authority.
    #[error("Host {0:?} is not a valid host")]
    Invalid(String),
}

/// Why a mapping in a snapshot cannot be built (compile should have refused it).
#[derive(Debug, thiserror::Error)]
#[error("mapping {key}: {message}")]
pub struct MappingError {
    /// The mapping as `action:target`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Why a model cannot be used (compile should have refused it).
#[derive(Debug, thiserror::Error)]
#[error("model {model}: {message}")]
pub struct SchemaError {
    /// Model name.
    pub model: String,
    /// The schema compiler's message.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_endpoints_is_a_503_whatever_the_default_5xx_says() {
        let c = classify(&RequestError::NoEndpoints("b".into()));
        assert_eq!(c.forced_status, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(c.message, "Service Unavailable");
    }
}
