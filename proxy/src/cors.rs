//! CORS from the Api's `cors` settings, answered by the gateway as API Gateway's HTTP APIs do:
//! a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered here
//! whatever the routes say, and every response to an allowed origin — also gateway error
//! responses — carries `Access-Control-Allow-Origin` (and `-Expose-Headers`, `-Allow-Credentials`).
//! A disallowed origin gets no CORS headers at all (the browser then refuses the response).

use causeway_snapshot::Cors;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::body::{ProxyBody, full};

/// An Api's CORS settings with the header values pre-built.
#[derive(Debug)]
pub(crate) struct LiveCors {
    any_origin: bool,
    origins: Vec<String>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    credentials: bool,
}

fn joined(items: &[String]) -> Option<HeaderValue> {
    if items.is_empty() {
        return None;
    }
    HeaderValue::from_str(&items.join(",")).ok()
}

impl LiveCors {
    pub fn new(cors: &Cors) -> Self {
        Self {
            any_origin: cors.allow_origins.iter().any(|o| o == "*"),
            origins: cors
                .allow_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allow_methods: joined(&cors.allow_methods),
            allow_headers: joined(&cors.allow_headers),
            expose_headers: joined(&cors.expose_headers),
            max_age: cors.max_age_seconds.map(HeaderValue::from),
            credentials: cors.allow_credentials,
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if allowed.
    pub fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.any_origin && !self.credentials {
            return Some(HeaderValue::from_static("*"));
        }
        let text = origin.to_str().ok()?.to_ascii_lowercase();
        (self.any_origin || self.origins.contains(&text)).then(|| origin.clone())
    }

    /// Whether the request is a preflight.
    pub fn is_preflight<B>(request: &Request<B>) -> bool {
        request.method() == Method::OPTIONS
            && request.headers().contains_key(header::ORIGIN)
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The gateway's answer to a preflight: 204, with the CORS headers when the origin is
    /// allowed.
    pub fn preflight<B>(&self, request: &Request<B>) -> Response<ProxyBody> {
        let mut response = Response::new(full(""));
        *response.status_mut() = StatusCode::NO_CONTENT;
        let allowed = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| self.allow_origin(o));
        let h = response.headers_mut();
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = allowed else {
            return response;
        };
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Some(v) = &self.allow_methods {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
        }
        match &self.allow_headers {
            Some(v) => {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
            }
            None => {
                // No list configured: allow what the browser asks for.
                if let Some(asked) = request
                    .headers()
                    .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                {
                    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
                }
            }
        }
        if let Some(v) = &self.max_age {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        response
    }

    /// Adds the CORS headers of an actual (non-preflight) response for an allowed origin.
    pub fn decorate(&self, allow_origin: HeaderValue, headers: &mut HeaderMap) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(v) = &self.expose_headers {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}
