//! `LAMBDA_PROXY` integrations: the request becomes API Gateway's Lambda proxy event (payload
//! format 1.0, REST API style, or 2.0, HTTP API style), POSTed as JSON to the backend — by
//! default to the invoke path of the AWS Lambda Runtime Interface Emulator, so an unmodified
//! Lambda container image runs as a Pod — and the function's answer is mapped back.
//!
//! The request body is buffered (within the Api's body limit): the event carries it whole, as
//! text, or base64 when its content type is one of the Api's binary media types or it is not
//! UTF-8. A malformed answer, a function error (`X-Amz-Function-Error`) or a non-2xx status from
//! the invoke endpoint is a 502 with the Api's gateway response, as API Gateway does.
//!
//! An `https` backend is invoked over TLS with the backend's own client from `origination`
//! (the one `HTTP_PROXY` integrations use: the VpcLink's CA and server name, else the system
//! roots); a certificate that does not verify is a 502 and the function is never called.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use causeway_snapshot::{PayloadFormat, UpstreamScheme};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};

use crate::body::{ProxyBody, full};
use crate::context::{RequestContext, query_pairs};
use crate::error::RequestError;
use crate::upstream::LiveBackend;

/// The header the Lambda Runtime Interface Emulator sets when the function failed.
const X_AMZ_FUNCTION_ERROR: &str = "x-amz-function-error";
/// The largest answer read from an invoke endpoint (API Gateway's Lambda limit is 6 MB).
const MAX_ANSWER_BYTES: usize = 10 * 1024 * 1024;

/// A `LAMBDA_PROXY` integration, pre-parsed.
pub(crate) struct LiveLambda {
    pub backend: std::sync::Arc<LiveBackend>,
    pub path: String,
    pub payload_format: PayloadFormat,
    pub timeout: Duration,
}

/// What the invocation found, for the access log and metrics.
pub(crate) struct Invoked {
    pub response: Result<Response<ProxyBody>, RequestError>,
    /// When the event left for the backend.
    pub sent_at: Option<Instant>,
    /// Status of the invoke endpoint's answer.
    pub status: Option<u16>,
}

/// Builds the event, invokes the function and maps its answer.
pub(crate) async fn invoke(
    client: &crate::upstream::Upstream,
    lambda: &LiveLambda,
    request: Request<ProxyBody>,
    ctx: &RequestContext,
    binary_media_types: &[String],
) -> Invoked {
    let mut out = Invoked {
        response: Err(RequestError::BuildRequest(String::new())),
        sent_at: None,
        status: None,
    };
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            out.response = Err(RequestError::ReadBody(e));
            return out;
        }
    };
    let event = match lambda.payload_format {
        PayloadFormat::V1 => event_v1(&parts, &body, ctx, binary_media_types),
        PayloadFormat::V2 => event_v2(&parts, &body, ctx, binary_media_types),
    };
    out.response = send(client, lambda, event, &mut out.sent_at, &mut out.status).await;
    out
}

/// Invokes the function with an event built elsewhere (the WebSocket event of
/// `pipeline/websocket.rs`), and maps its answer as for proxy events.
pub(crate) async fn invoke_event(
    client: &crate::upstream::Upstream,
    lambda: &LiveLambda,
    event: Value,
) -> Invoked {
    let mut out = Invoked {
        response: Err(RequestError::BuildRequest(String::new())),
        sent_at: None,
        status: None,
    };
    out.response = send(client, lambda, event, &mut out.sent_at, &mut out.status).await;
    out
}

async fn send(
    client: &crate::upstream::Upstream,
    lambda: &LiveLambda,
    event: Value,
    sent_at: &mut Option<Instant>,
    status: &mut Option<u16>,
) -> Result<Response<ProxyBody>, RequestError> {
    let function = Function {
        backend: &lambda.backend,
        path: &lambda.path,
        timeout: lambda.timeout,
    };
    let (parts, bytes) = post(client, &function, Bytes::from(event.to_string()), sent_at).await?;
    *status = Some(parts.status.as_u16());
    check_invoke_status(&function, &parts)?;
    if let Some(kind) = parts.headers.get(X_AMZ_FUNCTION_ERROR) {
        return Err(RequestError::IntegrationResponse(format!(
            "function error ({})",
            String::from_utf8_lossy(kind.as_bytes())
        )));
    }
    map_answer(&bytes, lambda.payload_format).map_err(RequestError::IntegrationResponse)
}

/// A function's invoke endpoint, as both Lambda integrations reach it.
struct Function<'a> {
    backend: &'a std::sync::Arc<LiveBackend>,
    path: &'a str,
    timeout: Duration,
}

/// A `LAMBDA` (non-proxy) integration, pre-parsed: where the function runs, and the templates
/// and integration responses that map the request to its payload and its answer back.
pub(crate) struct LiveLambdaMapped {
    pub backend: std::sync::Arc<LiveBackend>,
    pub path: String,
    pub timeout: Duration,
    pub templates: crate::integration::templates::LiveTemplates,
}

/// What a function answered to a non-proxy invocation.
pub(crate) struct FunctionAnswer {
    /// The function's error message when the invocation failed (`X-Amz-Function-Error`): the
    /// answer's `errorMessage`, else its whole text. `None` when the function succeeded.
    pub error: Option<String>,
    /// The invoke endpoint's answer headers.
    pub headers: HeaderMap,
    /// The function's result (or its error object), as JSON text.
    pub body: Bytes,
}

/// What a non-proxy invocation found, for the access log and metrics.
pub(crate) struct InvokedPayload {
    pub answer: Result<FunctionAnswer, RequestError>,
    /// When the payload left for the backend.
    pub sent_at: Option<Instant>,
    /// Status of the invoke endpoint's answer.
    pub status: Option<u16>,
}

/// `LAMBDA` (non-proxy): POSTs the mapped payload as it is and reads the function's result or
/// its error. A non-2xx from the invoke endpoint (the function never ran) is a failure; a
/// function error is an answer, whose message selects the integration response.
pub(crate) async fn invoke_payload(
    client: &crate::upstream::Upstream,
    lambda: &LiveLambdaMapped,
    payload: Bytes,
) -> InvokedPayload {
    let function = Function {
        backend: &lambda.backend,
        path: &lambda.path,
        timeout: lambda.timeout,
    };
    let mut sent_at = None;
    let mut status = None;
    let answer = async {
        let (parts, body) = post(client, &function, payload, &mut sent_at).await?;
        status = Some(parts.status.as_u16());
        check_invoke_status(&function, &parts)?;
        let error = parts
            .headers
            .contains_key(X_AMZ_FUNCTION_ERROR)
            .then(|| error_message(&body));
        Ok(FunctionAnswer {
            error,
            headers: parts.headers,
            body,
        })
    }
    .await;
    InvokedPayload {
        answer,
        sent_at,
        status,
    }
}

/// The message of a function error, as API Gateway matches selection patterns against it:
/// `errorMessage` of the error object, else the whole answer.
fn error_message(body: &Bytes) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => match o.get("errorMessage") {
            Some(Value::String(m)) => m.clone(),
            Some(other) => other.to_string(),
            None => String::from_utf8_lossy(body).into_owned(),
        },
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

/// A non-2xx from the invoke endpoint means the function was not run: a failure.
fn check_invoke_status(
    function: &Function<'_>,
    parts: &http::response::Parts,
) -> Result<(), RequestError> {
    if parts.status.is_success() {
        return Ok(());
    }
    Err(RequestError::IntegrationResponse(format!(
        "invoke endpoint of {} answered {}",
        function.backend.id, parts.status
    )))
}

/// POSTs a JSON payload to a function's invoke endpoint within its timeout and reads the whole
/// answer (at most [`MAX_ANSWER_BYTES`]).
async fn post(
    client: &crate::upstream::Upstream,
    function: &Function<'_>,
    payload: Bytes,
    sent_at: &mut Option<Instant>,
) -> Result<(http::response::Parts, Bytes), RequestError> {
    let backend = function.backend;
    // An `https` backend has its own TLS client (CA and server name from its VpcLink, else the
    // system roots), the same one `HTTP_PROXY` integrations use.
    let tls = match (backend.scheme, &backend.tls) {
        (UpstreamScheme::Http, _) => None,
        (UpstreamScheme::Https, Some(tls)) => Some(tls),
        (UpstreamScheme::Https, None) => {
            return Err(RequestError::UnsupportedScheme(backend.id.clone()));
        }
    };
    let endpoint = backend
        .next_endpoint()
        .ok_or_else(|| RequestError::NoEndpoints(backend.id.clone()))?
        .to_string();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri: Uri = format!("{scheme}://{endpoint}{}", function.path)
        .parse()
        .map_err(|e| RequestError::BuildRequest(format!("invoke uri: {e}")))?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::HOST, backend.authority.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(payload))
        .map_err(|e| RequestError::BuildRequest(format!("invoke request: {e}")))?;
    *sent_at = Some(Instant::now());
    let exchange = async {
        let sending = match tls {
            Some(tls) => tls.client.request(request),
            None => client.client().request(request),
        };
        let response = sending.await.map_err(|e| {
            if e.is_connect() {
                RequestError::UpstreamConnect {
                    backend: backend.id.clone(),
                    endpoint: endpoint.clone(),
                    source: e.into(),
                }
            } else {
                RequestError::UpstreamFailed {
                    backend: backend.id.clone(),
                    source: e.into(),
                }
            }
        })?;
        let (parts, body) = response.into_parts();
        let bytes = http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| RequestError::UpstreamFailed {
                backend: backend.id.clone(),
                source: e,
            })?
            .to_bytes();
        Ok::<_, RequestError>((parts, bytes))
    };
    match tokio::time::timeout(function.timeout, exchange).await {
        Err(_) => Err(RequestError::UpstreamTimeout {
            backend: backend.id.clone(),
            timeout_ms: u32::try_from(function.timeout.as_millis()).unwrap_or(u32::MAX),
        }),
        Ok(result) => result,
    }
}

// ---------------------------------------------------------------- events

/// Whether the body goes base64: a binary media type, or not UTF-8.
fn is_binary(headers: &HeaderMap, body: &[u8], binary_media_types: &[String]) -> bool {
    if std::str::from_utf8(body).is_err() {
        return true;
    }
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    binary_media_types.iter().any(|t| media_matches(t, &media))
}

/// `*/*`, `type/*` or an exact media type.
pub(crate) fn media_matches(pattern: &str, media: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    if pattern == "*/*" {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(kind) => media.split_once('/').is_some_and(|(k, _)| k == kind),
        None => pattern == media,
    }
}

/// `(body, isBase64Encoded)` for an event.
fn event_body(headers: &HeaderMap, body: &Bytes, binary_media_types: &[String]) -> (Value, bool) {
    if body.is_empty() {
        return (Value::Null, false);
    }
    if is_binary(headers, body, binary_media_types) {
        return (Value::String(BASE64.encode(body)), true);
    }
    (
        Value::String(String::from_utf8_lossy(body).into_owned()),
        false,
    )
}

fn string_map(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn or_null(map: Value) -> Value {
    match &map {
        Value::Object(m) if m.is_empty() => Value::Null,
        _ => map,
    }
}

fn header_text(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

fn epoch_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

fn authorizer(ctx: &RequestContext) -> Option<Value> {
    let context = ctx.principal.authorizer_context();
    (!context.is_empty()).then_some(Value::Object(context))
}

/// The route's resource path: the route key's path (`/pets/{id}`), or `$default`.
fn resource(route_key: &str) -> &str {
    route_key
        .split_once(' ')
        .map(|(_, path)| path)
        .unwrap_or(route_key)
}

/// Payload format 1.0 (`APIGatewayProxyRequest`).
fn event_v1(
    parts: &http::request::Parts,
    body: &Bytes,
    ctx: &RequestContext,
    binary_media_types: &[String],
) -> Value {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in &parts.headers {
        single.insert(name.to_string(), Value::String(header_text(value)));
        if let Value::Array(values) = multi
            .entry(name.to_string())
            .or_insert_with(|| Value::Array(vec![]))
        {
            values.push(Value::String(header_text(value)));
        }
    }
    let pairs = query_pairs(parts.uri.query());
    let mut query_multi: Map<String, Value> = Map::new();
    for (k, v) in &pairs {
        if let Value::Array(values) = query_multi
            .entry(k.clone())
            .or_insert_with(|| Value::Array(vec![]))
        {
            values.push(Value::String(v.clone()));
        }
    }
    let (body, is_base64) = event_body(&parts.headers, body, binary_media_types);
    let resource = resource(ctx.route_key.as_deref().unwrap_or_default());
    let mut context = json!({
        "resourcePath": resource,
        "httpMethod": parts.method.as_str(),
        "path": parts.uri.path(),
        "stage": ctx.stage,
        "requestId": ctx.request_id,
        "requestTime": crate::context::clf_time(ctx.request_time),
        "requestTimeEpoch": epoch_millis(ctx.request_time),
        "domainName": ctx.domain_name,
        "apiId": ctx.api_id,
        "protocol": protocol(parts.version),
        "identity": {
            "sourceIp": ctx.source_ip.to_string(),
            "userAgent": ctx.user_agent,
        },
    });
    if let (Some(a), Value::Object(c)) = (authorizer(ctx), &mut context) {
        c.insert("authorizer".into(), a);
    }
    if let (Some(cert), Some(identity)) = (ctx.client_cert.as_deref(), context.get_mut("identity"))
    {
        identity["clientCert"] = client_cert(cert);
    }
    json!({
        "resource": resource,
        "path": ctx.stage_path,
        "httpMethod": parts.method.as_str(),
        "headers": or_null(Value::Object(single)),
        "multiValueHeaders": or_null(Value::Object(multi)),
        "queryStringParameters": or_null(string_map(pairs)),
        "multiValueQueryStringParameters": or_null(Value::Object(query_multi)),
        "pathParameters": or_null(string_map(ctx.params.iter().cloned())),
        "stageVariables": or_null(string_map(ctx.stage_variables.iter().map(|(k, v)| (k.clone(), v.clone())))),
        "requestContext": context,
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// The verified client certificate as API Gateway puts it in events (mutual TLS).
fn client_cert(cert: &crate::context::ClientCert) -> Value {
    json!({
        "clientCertPem": cert.pem,
        "subjectDN": cert.subject_dn,
        "issuerDN": cert.issuer_dn,
        "serialNumber": cert.serial_number,
        "validity": { "notBefore": cert.not_before, "notAfter": cert.not_after },
    })
}

/// Payload format 2.0 (`APIGatewayV2HTTPRequest`).
fn event_v2(
    parts: &http::request::Parts,
    body: &Bytes,
    ctx: &RequestContext,
    binary_media_types: &[String],
) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        if name == header::COOKIE {
            cookies.extend(
                header_text(value)
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
            );
            continue;
        }
        headers
            .entry(name.to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&header_text(value));
            })
            .or_insert_with(|| header_text(value));
    }
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in query_pairs(parts.uri.query()) {
        query
            .entry(k)
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&v);
            })
            .or_insert(v);
    }
    let (body, is_base64) = event_body(&parts.headers, body, binary_media_types);
    let mut context = json!({
        "routeKey": ctx.route_key.as_deref().unwrap_or_default(),
        "stage": ctx.stage,
        "requestId": ctx.request_id,
        "apiId": ctx.api_id,
        "domainName": ctx.domain_name,
        "domainPrefix": ctx.domain_name.as_deref().unwrap_or_default().split('.').next().unwrap_or_default(),
        "time": crate::context::clf_time(ctx.request_time),
        "timeEpoch": epoch_millis(ctx.request_time),
        "http": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "protocol": protocol(parts.version),
            "sourceIp": ctx.source_ip.to_string(),
            "userAgent": ctx.user_agent,
        },
    });
    if let (Some(a), Value::Object(c)) = (authorizer(ctx), &mut context) {
        // HTTP APIs put JWT claims under `jwt` and a Lambda authorizer's context under `lambda`.
        let shaped = match a.get("claims") {
            Some(claims) if claims.is_object() => json!({
                "jwt": { "claims": claims, "scopes": a.get("scopes").cloned().unwrap_or(Value::Null) }
            }),
            _ => json!({ "lambda": a }),
        };
        c.insert("authorizer".into(), shaped);
    }
    if let (Some(cert), Value::Object(c)) = (ctx.client_cert.as_deref(), &mut context) {
        c.insert(
            "authentication".into(),
            json!({ "clientCert": client_cert(cert) }),
        );
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": ctx.route_key.as_deref().unwrap_or_default(),
        "rawPath": parts.uri.path(),
        "rawQueryString": parts.uri.query().unwrap_or_default(),
        "headers": string_map(headers),
        "requestContext": context,
        "isBase64Encoded": is_base64,
    });
    if let Value::Object(e) = &mut event {
        if !cookies.is_empty() {
            e.insert("cookies".into(), json!(cookies));
        }
        if !query.is_empty() {
            e.insert("queryStringParameters".into(), string_map(query));
        }
        if !ctx.params.is_empty() {
            e.insert(
                "pathParameters".into(),
                string_map(ctx.params.iter().cloned()),
            );
        }
        if !ctx.stage_variables.is_empty() {
            e.insert(
                "stageVariables".into(),
                string_map(
                    ctx.stage_variables
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone())),
                ),
            );
        }
        if !body.is_null() {
            e.insert("body".into(), body);
        }
    }
    event
}

// ---------------------------------------------------------------- answers

/// A header value as the function wrote it: strings as they are, numbers and booleans as text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Maps the function's answer to a response, or says why it is malformed.
pub(crate) fn map_answer(
    bytes: &[u8],
    format: PayloadFormat,
) -> Result<Response<ProxyBody>, String> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the function's answer is not JSON: {e}"))?;
    let structured = value
        .as_object()
        .filter(|o| o.contains_key("statusCode"))
        .cloned();
    let Some(answer) = structured else {
        if format == PayloadFormat::V2 {
            // HTTP API: a bare JSON value is a 200 with that JSON.
            let mut response = Response::new(full(value.to_string()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(response);
        }
        return Err("the function's answer has no statusCode".into());
    };
    let status = match &answer["statusCode"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .and_then(|n| u16::try_from(n).ok())
    .and_then(|n| StatusCode::from_u16(n).ok())
    .filter(|s| (100..=599).contains(&s.as_u16()))
    .ok_or_else(|| format!("statusCode {} is not a status code", answer["statusCode"]))?;
    let mut headers = HeaderMap::new();
    let header = |name: &str, value: &str| -> Result<(HeaderName, HeaderValue), String> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name:?} is not valid"))?;
        Ok((n, v))
    };
    match answer.get("multiValueHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, values) in m {
                let values = match values {
                    Value::Array(items) => {
                        items.iter().map(scalar_text).collect::<Option<Vec<_>>>()
                    }
                    other => scalar_text(other).map(|v| vec![v]),
                }
                .ok_or_else(|| format!("multiValueHeaders.{name} is not a list of strings"))?;
                for v in values {
                    let (n, v) = header(name, &v)?;
                    headers.append(n, v);
                }
            }
        }
        Some(_) => return Err("multiValueHeaders is not an object".into()),
    }
    match answer.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, value) in m {
                let text =
                    scalar_text(value).ok_or_else(|| format!("headers.{name} is not a string"))?;
                let (n, v) = header(name, &text)?;
                // API Gateway merges both maps; for a name in both, `multiValueHeaders` wins.
                if !headers.contains_key(&n) {
                    headers.insert(n, v);
                }
            }
        }
        Some(_) => return Err("headers is not an object".into()),
    }
    if format == PayloadFormat::V2 {
        match answer.get("cookies") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let text = item.as_str().ok_or("cookies holds a non-string")?;
                    let (n, v) = header("set-cookie", text)?;
                    headers.append(n, v);
                }
            }
            Some(_) => return Err("cookies is not a list".into()),
        }
    }
    let base64 = match answer.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("isBase64Encoded is not a boolean".into()),
    };
    let body = match answer.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if base64 => Bytes::from(
            BASE64
                .decode(s.as_bytes())
                .map_err(|e| format!("body is not base64: {e}"))?,
        ),
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(_) => return Err("body is not a string".into()),
    };
    if format == PayloadFormat::V2
        && !headers.contains_key(header::CONTENT_TYPE)
        && !body.is_empty()
    {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    crate::upstream::forwarded::remove_hop_by_hop(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Principal;

    async fn body_text(response: Response<ProxyBody>) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn a_v2_answer_that_is_a_bare_json_value_is_a_200_with_that_json() {
        for raw in [r#"{"hello":"world"}"#, r#"[1,2]"#, r#""text""#, "42"] {
            let response = map_answer(raw.as_bytes(), PayloadFormat::V2).expect("mapped");
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers().get("content-type").map(|v| v.as_bytes()),
                Some(&b"application/json"[..])
            );
            let expected: Value = serde_json::from_str(raw).expect("json");
            let got: Value = serde_json::from_str(&body_text(response).await).expect("json");
            assert_eq!(got, expected);
        }
    }

    #[tokio::test]
    async fn a_structured_answer_maps_status_headers_cookies_and_a_base64_body() {
        let raw = json!({
            "statusCode": 201,
            "headers": {"x-one": "1", "x-num": 5, "x-many": "single"},
            "multiValueHeaders": {"x-many": ["a", "b"]},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": BASE64.encode([0u8, 159, 146, 150]),
            "isBase64Encoded": true,
        })
        .to_string();
        let response = map_answer(raw.as_bytes(), PayloadFormat::V2).expect("mapped");
        assert_eq!(response.status(), StatusCode::CREATED);
        let h = response.headers();
        assert_eq!(h.get("x-num").map(|v| v.as_bytes()), Some(&b"5"[..]));
        let many: Vec<_> = h.get_all("x-many").iter().collect();
        assert_eq!(
            many,
            ["a", "b"],
            "multiValueHeaders wins for a name in both"
        );
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&bytes[..], &[0u8, 159, 146, 150]);
    }

    #[test]
    fn malformed_answers_are_refused_with_a_reason() {
        let cases: [(&str, PayloadFormat); 7] = [
            ("not json", PayloadFormat::V2),
            (r#"{"body":"x"}"#, PayloadFormat::V1),
            (r#"{"statusCode":"abc"}"#, PayloadFormat::V1),
            (r#"{"statusCode":700}"#, PayloadFormat::V2),
            (r#"{"statusCode":200,"body":{"a":1}}"#, PayloadFormat::V1),
            (r#"{"statusCode":200,"headers":[1]}"#, PayloadFormat::V1),
            (
                r#"{"statusCode":200,"body":"%%","isBase64Encoded":true}"#,
                PayloadFormat::V2,
            ),
        ];
        for (raw, format) in cases {
            assert!(
                map_answer(raw.as_bytes(), format).is_err(),
                "{raw} should be refused"
            );
        }
    }

    fn facts(principal: Principal) -> RequestContext {
        let peer = std::net::SocketAddr::from(([203, 0, 113, 7], 4000));
        let mut ctx = RequestContext::new(&http::HeaderMap::new(), peer, &[], "http");
        ctx.request_id = "r-1".into();
        ctx.stage = Some("prod".into());
        ctx.api_id = Some("default/pets".into());
        ctx.domain_name = Some("api.test".into());
        ctx.route_key = Some("GET /me".into());
        ctx.stage_path = "/me".into();
        ctx.principal = principal;
        ctx
    }

    #[test]
    fn the_authorizer_context_reaches_both_event_formats_in_the_aws_shapes() {
        use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
        let (request, ()) = Request::get("/me").body(()).expect("request").into_parts();
        let mut jwt = Principal::default();
        jwt.claims.insert("sub".into(), json!("user-1"));
        jwt.context.insert("scopes".into(), json!(["read"]));
        let v2: ApiGatewayV2httpRequest =
            serde_json::from_value(event_v2(&request, &Bytes::new(), &facts(jwt), &[]))
                .expect("v2 event");
        let claims = v2
            .request_context
            .authorizer
            .and_then(|a| a.jwt)
            .map(|j| j.claims)
            .unwrap_or_default();
        assert_eq!(claims.get("sub").map(String::as_str), Some("user-1"));

        let lambda_ctx = Principal {
            principal_id: Some("p-9".into()),
            ..Principal::default()
        };
        let v2: ApiGatewayV2httpRequest = serde_json::from_value(event_v2(
            &request,
            &Bytes::new(),
            &facts(lambda_ctx.clone()),
            &[],
        ))
        .expect("v2 event");
        let fields = v2
            .request_context
            .authorizer
            .map(|a| a.fields)
            .unwrap_or_default();
        assert_eq!(fields.get("principalId"), Some(&json!("p-9")));

        let raw = event_v1(&request, &Bytes::new(), &facts(lambda_ctx.clone()), &[]);
        assert_eq!(raw["requestContext"]["authorizer"]["principalId"], "p-9");
        let _: ApiGatewayProxyRequest = serde_json::from_value(raw).expect("v1 event");
    }

    #[test]
    fn media_types_match_exactly_or_by_wildcard() {
        assert!(media_matches("image/*", "image/png"));
        assert!(media_matches("*/*", "text/plain"));
        assert!(media_matches(
            "Application/Octet-Stream",
            "application/octet-stream"
        ));
        assert!(!media_matches("image/*", "text/plain"));
    }
}
