//! REST API non-proxy mapping (`HTTP`, `MOCK` and `LAMBDA` with templates): the request template
//! chosen by `Content-Type` under the passthrough behavior, the integration response selected by
//! the backend's status code (or a function's error message), its response parameters and
//! response template.
//!
//! Templates are parsed once per snapshot (compile parsed the same text, so this cannot fail
//! on a snapshot compile emitted) and evaluated per request with [`Limits::default`]: no
//! template can hang or balloon a worker. `$context.*` is read through the request context.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use causeway_snapshot::{
    ContentHandling, IntegrationMapping, RequestTemplateChoice, ResponseValue,
};
use causeway_vtl::{Facts, Limits, Rendered, Template};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{ProxyBody, full};
use crate::context::RequestContext;
use crate::error::RequestError;

/// A route's mapping, parsed.
pub(crate) struct LiveTemplates {
    mapping: IntegrationMapping,
    request: BTreeMap<String, Template>,
    /// Per integration response, in the snapshot's order: its pattern and parsed templates.
    responses: Vec<(Option<regex::Regex>, BTreeMap<String, Template>)>,
}

/// The request as templates see it (`$input.params()` and `$input.body`).
pub(crate) struct RequestFacts {
    pub body: String,
    pub querystring: Vec<(String, String)>,
    pub header: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub accept: Option<String>,
}

impl RequestFacts {
    /// Reads the facts from a request's head and its (buffered) body.
    pub(crate) fn new(headers: &HeaderMap, query: Option<&str>, body: &Bytes) -> Self {
        let text = |name: &header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut header: Vec<(String, String)> = Vec::new();
        for (name, value) in headers {
            if let Ok(v) = value.to_str()
                && !header.iter().any(|(k, _)| k == name.as_str())
            {
                header.push((name.as_str().to_string(), v.to_string()));
            }
        }
        let mut querystring: Vec<(String, String)> = Vec::new();
        for (k, v) in crate::context::query_pairs(query) {
            if !querystring.iter().any(|(q, _)| *q == k) {
                querystring.push((k, v));
            }
        }
        Self {
            body: String::from_utf8_lossy(body).into_owned(),
            querystring,
            header,
            content_type: text(&header::CONTENT_TYPE),
            accept: text(&header::ACCEPT),
        }
    }
}

/// What the request template made of a request.
pub(crate) enum MappedRequest {
    /// Send this body, of this media type.
    Mapped { body: String, media_type: String },
    /// Send the body as it came.
    Passthrough,
}

fn template_error(e: impl std::fmt::Display) -> RequestError {
    RequestError::MappingTemplate(e.to_string())
}

/// Applies `contentHandling` to a payload that is passed through (not templated):
/// `CONVERT_TO_TEXT` encodes it as base64, `CONVERT_TO_BINARY` decodes base64 text (a payload
/// that is not base64 is an error).
pub(crate) fn convert(
    handling: Option<ContentHandling>,
    body: Bytes,
) -> Result<Bytes, RequestError> {
    match handling {
        None => Ok(body),
        Some(ContentHandling::ConvertToText) => Ok(Bytes::from(BASE64.encode(&body))),
        Some(ContentHandling::ConvertToBinary) => {
            let text = String::from_utf8_lossy(&body);
            BASE64
                .decode(text.trim())
                .map(Bytes::from)
                .map_err(|e| template_error(format!("CONVERT_TO_BINARY: {e}")))
        }
    }
}

impl LiveTemplates {
    /// Parses every template and selection pattern of a mapping.
    pub(crate) fn build(mapping: &IntegrationMapping) -> Result<Self, String> {
        let parse = |templates: &BTreeMap<String, String>| {
            templates
                .iter()
                .map(|(media, source)| {
                    Template::parse(source)
                        .map(|t| (media.clone(), t))
                        .map_err(|e| format!("template for {media}: {e}"))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        };
        let request = parse(&mapping.request_templates)?;
        let mut responses = Vec::with_capacity(mapping.responses.len());
        for r in &mapping.responses {
            let pattern = match &r.selection_pattern {
                Some(p) => Some(
                    causeway_vtl::selection_pattern(p)
                        .map_err(|e| format!("selection pattern {p:?}: {e}"))?,
                ),
                None => None,
            };
            responses.push((pattern, parse(&r.templates)?));
        }
        Ok(Self {
            mapping: mapping.clone(),
            request,
            responses,
        })
    }

    fn render(
        template: &Template,
        body: &str,
        facts: &RequestFacts,
        ctx: &RequestContext,
    ) -> Result<Rendered, RequestError> {
        let context = |name: &str| ctx.resolve(name);
        let vtl = Facts {
            body,
            path: &ctx.params,
            querystring: &facts.querystring,
            header: &facts.header,
            stage_variables: &ctx.stage_variables,
            context: &context,
        };
        template
            .render(&vtl, &Limits::default())
            .map_err(template_error)
    }

    /// The request's `contentHandling`, for a body passed through.
    pub(crate) fn request_content_handling(&self) -> Option<ContentHandling> {
        self.mapping.content_handling
    }

    /// Applies the request template chosen by the request's `Content-Type`; 415 when the
    /// passthrough behavior refuses an unmapped content type.
    pub(crate) fn map_request(
        &self,
        facts: &RequestFacts,
        ctx: &RequestContext,
    ) -> Result<MappedRequest, RequestError> {
        match self.mapping.request_template(facts.content_type.as_deref()) {
            RequestTemplateChoice::Passthrough => Ok(MappedRequest::Passthrough),
            RequestTemplateChoice::Unsupported => Err(RequestError::UnsupportedMediaType(
                facts.content_type.clone().unwrap_or_default(),
            )),
            RequestTemplateChoice::Template(media, _) => {
                let template = self
                    .request
                    .get(media)
                    .ok_or_else(|| template_error(format!("no parsed template for {media}")))?;
                let rendered = Self::render(template, &facts.body, facts, ctx)?;
                Ok(MappedRequest::Mapped {
                    body: rendered.body,
                    media_type: media.to_string(),
                })
            }
        }
    }

    /// The integration response for a subject (a backend status code, a function's error
    /// message): the first whose pattern matches the whole subject, else the default. Without
    /// a subject (a function that succeeded), the default.
    fn select(&self, subject: Option<&str>) -> Option<usize> {
        subject
            .and_then(|subject| {
                self.responses
                    .iter()
                    .position(|(p, _)| p.as_ref().is_some_and(|p| p.is_match(subject)))
            })
            .or_else(|| self.responses.iter().position(|(p, _)| p.is_none()))
    }

    /// Makes the client's response from the backend's status, headers and body: the selected
    /// integration response's status, response parameters and template (or the body as it
    /// is), then `$context.responseOverride.*`.
    pub(crate) fn respond(
        &self,
        backend_status: u16,
        backend_headers: &HeaderMap,
        backend_body: &Bytes,
        facts: &RequestFacts,
        ctx: &RequestContext,
    ) -> Result<Response<ProxyBody>, RequestError> {
        let index = self
            .select(Some(&backend_status.to_string()))
            .ok_or_else(|| {
                template_error(format!(
                    "no integration response matches status {backend_status} and none is the default"
                ))
            })?;
        self.respond_with(index, backend_headers, backend_body, facts, ctx)
    }

    /// `LAMBDA` (non-proxy): makes the client's response from the function's answer. A
    /// function error's message selects the integration response (the default when none
    /// matches); a successful invocation takes the default. The answer (the result, or the
    /// error object with `errorMessage` and `errorType`) is `$input.body` of its template.
    pub(crate) fn respond_to_function(
        &self,
        error: Option<&str>,
        answer_headers: &HeaderMap,
        answer_body: &Bytes,
        facts: &RequestFacts,
        ctx: &RequestContext,
    ) -> Result<Response<ProxyBody>, RequestError> {
        let index = self.select(error).ok_or_else(|| {
            template_error(match error {
                Some(message) => format!(
                    "no integration response matches the function error {message:?} and none is the default"
                ),
                None => "the function succeeded and no integration response is the default".into(),
            })
        })?;
        self.respond_with(index, answer_headers, answer_body, facts, ctx)
    }

    fn respond_with(
        &self,
        index: usize,
        backend_headers: &HeaderMap,
        backend_body: &Bytes,
        facts: &RequestFacts,
        ctx: &RequestContext,
    ) -> Result<Response<ProxyBody>, RequestError> {
        let spec = &self.mapping.responses[index];
        let parsed = &self.responses[index].1;
        let text = String::from_utf8_lossy(backend_body);
        let mut headers = HeaderMap::new();
        let mut overrides = BTreeMap::new();
        let body = match spec.template(facts.accept.as_deref()) {
            Some((media, _)) => {
                let template = parsed
                    .get(media)
                    .ok_or_else(|| template_error(format!("no parsed template for {media}")))?;
                let rendered = Self::render(template, &text, facts, ctx)?;
                overrides = rendered.overrides;
                if let Ok(v) = HeaderValue::from_str(media) {
                    headers.insert(header::CONTENT_TYPE, v);
                }
                Bytes::from(rendered.body)
            }
            None => {
                if let Some(ct) = backend_headers.get(header::CONTENT_TYPE) {
                    headers.insert(header::CONTENT_TYPE, ct.clone());
                }
                convert(spec.content_handling, backend_body.clone())?
            }
        };
        let mut json: Option<Option<serde_json::Value>> = None;
        for (name, source) in &spec.headers {
            let value = match source {
                ResponseValue::Literal(s) => Some(s.clone()),
                ResponseValue::IntegrationHeader(h) => backend_headers
                    .get(h.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                ResponseValue::IntegrationBody => Some(text.to_string()),
                ResponseValue::IntegrationBodyPath(path) => {
                    let root = json.get_or_insert_with(|| serde_json::from_str(&text).ok());
                    root.as_ref()
                        .and_then(|r| causeway_vtl::select_json_path(r, path).ok().flatten())
                        .map(|v| match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        })
                }
                ResponseValue::Context(name) => ctx.resolve(name),
                ResponseValue::StageVariable(name) => ctx.stage_variables.get(name).cloned(),
            };
            if let (Some(value), Ok(name)) = (value, HeaderName::from_bytes(name.as_bytes()))
                && let Ok(value) = HeaderValue::from_str(&value)
            {
                headers.insert(name, value);
            }
        }
        let mut status = StatusCode::from_u16(spec.status).map_err(template_error)?;
        for (path, value) in &overrides {
            match path.strip_prefix("responseOverride.") {
                Some("status") => {
                    if let Some(s) = value
                        .trim()
                        .parse::<u16>()
                        .ok()
                        .and_then(|s| StatusCode::from_u16(s).ok())
                    {
                        status = s;
                    }
                }
                Some(rest) => {
                    if let Some(name) = rest.strip_prefix("header.")
                        && let (Ok(name), Ok(value)) = (
                            HeaderName::from_bytes(name.as_bytes()),
                            HeaderValue::from_str(value),
                        )
                    {
                        headers.insert(name, value);
                    }
                }
                None => {}
            }
        }
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }

    /// MOCK: the request template's output `{"statusCode": N}` (default 200) selects the
    /// integration response; its template sees an empty `$input.body`.
    pub(crate) fn mock(
        &self,
        facts: &RequestFacts,
        ctx: &RequestContext,
    ) -> Result<Response<ProxyBody>, RequestError> {
        let status = match self.map_request(facts, ctx)? {
            MappedRequest::Passthrough => 200,
            MappedRequest::Mapped { body, .. } => serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| match v.get("statusCode") {
                    Some(serde_json::Value::Number(n)) => n.as_u64(),
                    Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
                    _ => None,
                })
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(200),
        };
        self.respond(status, &HeaderMap::new(), &Bytes::new(), facts, ctx)
    }
}
