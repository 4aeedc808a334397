//! The facts of one request, each with one home. The pipeline fills a request context as it
//! learns them (client address through trusted hops, request id, stage, route, principal), and
//! the context is the only resolver of `$context.*` for mappings, templates, gateway responses,
//! access logs, Lambda events and authorizer events.

mod client_cert;
mod trace;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use ipnet::IpNet;
use serde_json::{Map, Value};

pub(crate) use client_cert::{ClientCert, TlsInfo, client_cert_context};
pub(crate) use trace::{TraceContext, new_span_id, new_trace_id};

/// The facts of one request. Built once when the request arrives ([`RequestContext::new`]),
/// filled in by the pipeline's steps as they learn more, read by everything that shows a
/// `$context` variable ([`RequestContext::resolve`]), and handed to the access log at the end.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    /// `$context.requestId`: the client's `x-request-id` when it came from a trusted hop and
    /// is a safe token, else a new UUID.
    pub request_id: String,
    pub request_time: SystemTime,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// `$context.identity.sourceIp`: the client's address, resolved once through trusted hops.
    pub source_ip: IpAddr,
    /// Whether the peer is a trusted hop (its forwarding headers are kept).
    pub trusted_hop: bool,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub protocol: &'static str,
    pub method: String,
    /// `$context.path`: the request path as routed (normalized) — the same path the backend is
    /// sent, base path included.
    pub path: String,
    pub user_agent: String,
    /// The verified client certificate of a mutual-TLS connection.
    pub client_cert: Option<Arc<ClientCert>>,
    /// The host the request named (lowercase, without port), once a stage was found.
    pub domain_name: Option<String>,
    /// The Api (`namespace/name`) and its name.
    pub api_id: Option<String>,
    pub api_name: Option<String>,
    /// The stage's name and id (`namespace/api/stage`).
    pub stage: Option<String>,
    pub stage_id: Option<String>,
    /// The path after the stage's base path (what routes match).
    pub stage_path: String,
    pub deployment_id: Option<String>,
    /// Whether the canary deployment serves this request.
    pub canary: bool,
    /// `$stageVariables.*` of the deployment serving the request.
    pub stage_variables: Arc<BTreeMap<String, String>>,
    /// `$context.routeKey`: `GET /pets/{id}`, `$default`.
    pub route_key: Option<String>,
    /// Path parameters of the matched route.
    pub params: Vec<(String, String)>,
    /// Who the caller is, once authorized.
    pub principal: Principal,
    /// The usage plan of the caller's API key.
    pub usage_plan_id: Option<String>,
    /// The error that answered the request, if one did.
    pub error: Option<ErrorFacts>,
    pub integration_status: Option<u16>,
    pub integration_latency: Option<Duration>,
    pub integration_error: Option<String>,
    /// The response, once sent.
    pub status: u16,
    pub response_length: Option<u64>,
    pub response_latency: Duration,
    /// The trace context of the request (`$context.traceId`): the gateway's current span when
    /// it traces (what its calls carry as their parent), else the client's `traceparent` as
    /// received (only read; see [`TraceContext::outgoing`]).
    pub trace: Option<TraceContext>,
    /// On a WebSocket Api: the connection and the event this context describes.
    pub websocket: Option<WebSocketFacts>,
}

/// What `$context` knows of a WebSocket event.
#[derive(Debug, Clone, Default)]
pub(crate) struct WebSocketFacts {
    /// `$context.connectionId`.
    pub connection_id: String,
    /// `$context.eventType`: `CONNECT`, `MESSAGE` or `DISCONNECT`.
    pub event_type: &'static str,
    /// `$context.messageId` (MESSAGE only).
    pub message_id: Option<String>,
    /// `$context.connectedAt`, milliseconds since the epoch.
    pub connected_at: u128,
}

/// What `$context.error.*` shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorFacts {
    /// `$context.error.message`.
    pub message: String,
    /// `$context.error.responseType` (`THROTTLED`, `UNAUTHORIZED`, ...).
    pub response_type: String,
    /// `$context.error.validationErrorString`.
    pub validation_error: Option<String>,
}

impl RequestContext {
    /// The context of a request that has just arrived on a connection from `peer`. The client
    /// address is resolved here, once: through `X-Forwarded-For` only when `peer` is one of the
    /// `trusted` hops.
    pub fn new(
        headers: &HeaderMap,
        peer: SocketAddr,
        trusted: &[IpNet],
        scheme: &'static str,
    ) -> Self {
        let trusted_hop = !trusted.is_empty() && is_trusted(trusted, peer.ip());
        let source_ip = if trusted_hop {
            // An IPv4 client written as `::ffff:a.b.c.d` by a dual-stack hop is reported (and
            // matched against policies) as the IPv4 address it is.
            canonical_ip(client_ip(headers, trusted, peer.ip()))
        } else {
            canonical_ip(peer.ip())
        };
        let user_agent = headers
            .get(http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        Self {
            request_id: String::new(),
            request_time: SystemTime::now(),
            peer,
            source_ip,
            trusted_hop,
            scheme,
            protocol: "HTTP/1.1",
            method: String::new(),
            path: String::new(),
            user_agent,
            client_cert: None,
            domain_name: None,
            api_id: None,
            api_name: None,
            stage: None,
            stage_id: None,
            stage_path: String::new(),
            deployment_id: None,
            canary: false,
            stage_variables: Arc::default(),
            route_key: None,
            params: Vec::new(),
            principal: Principal::default(),
            usage_plan_id: None,
            error: None,
            integration_status: None,
            integration_latency: None,
            integration_error: None,
            status: 0,
            response_length: None,
            response_latency: Duration::ZERO,
            trace: None,
            websocket: None,
        }
    }

    /// `$context.requestTimeEpoch`: milliseconds since the epoch.
    pub fn request_time_epoch(&self) -> u128 {
        self.request_time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    }

    /// `$context.resourcePath`: the route's path template (`/pets/{id}`), if a route matched.
    pub fn resource_path(&self) -> Option<&str> {
        self.route_key
            .as_deref()
            .and_then(|k| k.split_once(' ').map(|(_, p)| p))
    }

    /// The value of `$context.NAME`, or `None` when the variable is unknown or has no value
    /// for this request. The only resolver of `$context` variables: mappings, gateway
    /// responses, access logs, forwarded headers and events all read through it.
    pub fn resolve(&self, name: &str) -> Option<String> {
        let some = |s: &Option<String>| s.clone();
        Some(match name {
            "requestId" | "extendedRequestId" => self.request_id.clone(),
            "requestTime" => clf_time(self.request_time),
            "requestTimeEpoch" => self.request_time_epoch().to_string(),
            "identity.sourceIp" => self.source_ip.to_string(),
            "identity.userAgent" => self.user_agent.clone(),
            "identity.apiKeyId" => return some(&self.principal.api_key_id),
            "httpMethod" => self.method.clone(),
            "path" => self.path.clone(),
            "resourcePath" => return self.resource_path().map(str::to_string),
            "protocol" => self.protocol.to_string(),
            "domainName" => return some(&self.domain_name),
            "domainPrefix" => {
                return self
                    .domain_name
                    .as_deref()
                    .and_then(|d| d.split('.').next())
                    .map(str::to_string);
            }
            "apiId" => return some(&self.api_id),
            "stage" => return some(&self.stage),
            "deploymentId" => return some(&self.deployment_id),
            "routeKey" => return some(&self.route_key),
            "status" => return (self.status != 0).then(|| self.status.to_string()),
            "responseLength" => return self.response_length.map(|n| n.to_string()),
            "responseLatency" => millis(self.response_latency).to_string(),
            "integrationLatency" | "integration.latency" => {
                return self.integration_latency.map(|d| millis(d).to_string());
            }
            "integrationStatus" | "integration.status" => {
                return self.integration_status.map(|s| s.to_string());
            }
            "integrationErrorMessage" | "integration.error" => {
                return some(&self.integration_error);
            }
            "error.message" => return self.error.as_ref().map(|e| e.message.clone()),
            "error.messageString" => {
                let message = self.error.as_ref().map_or("", |e| e.message.as_str());
                json_string(message)
            }
            "error.responseType" => return self.error.as_ref().map(|e| e.response_type.clone()),
            "error.validationErrorString" => {
                return self
                    .error
                    .as_ref()
                    .map(|e| e.validation_error.clone().unwrap_or_default());
            }
            "connectionId" => return self.websocket.as_ref().map(|w| w.connection_id.clone()),
            "eventType" => return self.websocket.as_ref().map(|w| w.event_type.to_string()),
            "messageId" => return self.websocket.as_ref().and_then(|w| w.message_id.clone()),
            "connectedAt" => return self.websocket.as_ref().map(|w| w.connected_at.to_string()),
            "authorizer.principalId" => return some(&self.principal.principal_id),
            "traceId" => return self.trace.as_ref().map(TraceContext::trace_id_hex),
            _ if name.starts_with("identity.clientCert.") => {
                return client_cert_context(self.client_cert.as_deref(), name);
            }
            _ => {
                if let Some(claim) = name.strip_prefix("authorizer.claims.") {
                    return self.principal.claims.get(claim).and_then(text);
                }
                let path = name.strip_prefix("authorizer.")?;
                return authorizer_value(&self.principal.authorizer_context(), path);
            }
        })
    }
}

impl RequestContext {
    /// Renders the `$context.*` variables of `template`: a known variable without a value for
    /// this request prints `absent` (`-` in access logs), an unknown name stays as written.
    pub fn render(&self, template: &str, absent: &str) -> String {
        substitute_context(template, &|name| {
            self.resolve(name)
                .or_else(|| is_known(name).then(|| absent.to_string()))
        })
    }

    /// Renders a template that must resolve completely (forwarded headers): `None` when a
    /// variable has no value.
    pub fn render_complete(&self, template: &str) -> Option<String> {
        let missing = std::cell::Cell::new(false);
        let value = substitute_context(template, &|name| {
            let v = self.resolve(name);
            if v.is_none() {
                missing.set(true);
            }
            v
        });
        (!missing.get()).then_some(value)
    }
}

/// Whether `$context.NAME` is a variable the context knows (with or without a value).
pub(crate) fn is_known(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "requestId",
        "extendedRequestId",
        "requestTime",
        "requestTimeEpoch",
        "identity.sourceIp",
        "identity.userAgent",
        "identity.apiKeyId",
        "httpMethod",
        "path",
        "resourcePath",
        "protocol",
        "domainName",
        "domainPrefix",
        "apiId",
        "stage",
        "deploymentId",
        "routeKey",
        "status",
        "responseLength",
        "responseLatency",
        "integrationLatency",
        "integration.latency",
        "integrationStatus",
        "integration.status",
        "integrationErrorMessage",
        "integration.error",
        "error.message",
        "error.messageString",
        "error.responseType",
        "error.validationErrorString",
        "traceId",
        "connectionId",
        "eventType",
        "messageId",
        "connectedAt",
    ];
    NAMES.contains(&name)
        || name.starts_with("authorizer.")
        || name.starts_with("identity.clientCert.")
}

/// Milliseconds with microsecond precision (API Gateway logs whole ms; fractions help at the
/// latencies a proxy adds).
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// `claims.sub`, `principalId` or `a.b` in the authorizer's context (a flat key with dots is
/// tried first, then nested objects).
fn authorizer_value(context: &Map<String, Value>, path: &str) -> Option<String> {
    if let Some(v) = context.get(path) {
        return text(v);
    }
    let mut current = context.get(path.split('.').next()?)?;
    for segment in path.split('.').skip(1) {
        current = current.get(segment)?;
    }
    text(current)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Who the caller is, once authorized: what mapping, forwarded headers and the access log see.
#[derive(Debug, Default, Clone)]
pub(crate) struct Principal {
    /// `$context.authorizer.principalId` (JWT `sub`, the function's `principalId`, the SigV4
    /// access key id).
    pub principal_id: Option<String>,
    /// `$context.authorizer.claims.*` (JWT).
    pub claims: Map<String, Value>,
    /// `$context.authorizer.*` (function context).
    pub context: Map<String, Value>,
    /// `$context.identity.apiKeyId`.
    pub api_key_id: Option<String>,
}

impl Principal {
    /// `$context.authorizer.*` as one object (what Lambda events carry as
    /// `requestContext.authorizer`): the authorizer's context, `principalId` and `claims`.
    pub fn authorizer_context(&self) -> Map<String, Value> {
        let mut context = self.context.clone();
        if let Some(id) = &self.principal_id {
            context.insert("principalId".into(), Value::String(id.clone()));
        }
        if !self.claims.is_empty() {
            context.insert("claims".into(), Value::Object(self.claims.clone()));
        }
        context
    }
}

/// Decoded query parameters in order (`+` is a space, `%XX` decoded).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Common Log Format time in UTC: `09/Apr/2015:12:34:56 +0000` (as API Gateway logs it).
pub(crate) fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = crate::clock::civil_from_days(days);
    let month_name = usize::try_from(month - 1)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .unwrap_or(&"Jan");
    format!(
        "{day:02}/{month_name}/{year}:{:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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

/// Whether a peer is a trusted hop (a load balancer in front of the proxy) whose
/// `X-Forwarded-*` / `Forwarded` headers are kept.
pub(crate) fn is_trusted(trusted: &[IpNet], peer: IpAddr) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    trusted.iter().any(|net| net.contains(&peer))
}

/// The client's address as seen through trusted hops: walking `X-Forwarded-For` from the
/// right, the first address that is not itself a trusted hop (what `$context.identity.sourceIp`
/// reports). Only called when the peer is trusted.
pub(crate) fn client_ip(headers: &HeaderMap, trusted: &[IpNet], peer: IpAddr) -> IpAddr {
    let mut candidate = peer;
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    for ip in chain.into_iter().rev() {
        candidate = ip;
        if !is_trusted(trusted, ip) {
            break;
        }
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RequestContext {
        let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap_or_else(|_| unreachable!());
        let mut ctx = RequestContext::new(&HeaderMap::new(), peer, &[], "http");
        ctx.request_id = "r1".into();
        ctx.path = "/prod/pets/1".into();
        ctx.stage_path = "/pets/1".into();
        ctx.route_key = Some("GET /pets/{id}".into());
        ctx.error = Some(ErrorFacts {
            message: "boom".into(),
            ..ErrorFacts::default()
        });
        ctx
    }

    #[test]
    fn context_variables_are_substituted_and_unknown_ones_kept() {
        let ctx = context();
        assert_eq!(
            ctx.render(
                r#"{"m":$context.error.messageString,"raw":"$context.error.message.","id":"$context.requestId","x":"$context.nope","k":"$context.identity.apiKeyId"}"#,
                "-"
            ),
            r#"{"m":"boom","raw":"boom.","id":"r1","x":"$context.nope","k":"-"}"#
        );
    }

    #[test]
    fn request_time_is_in_common_log_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_428_582_896);
        assert_eq!(clf_time(t), "09/Apr/2015:12:34:56 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(clf_time(leap), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn path_is_the_full_path_and_resource_path_the_route_template() {
        let ctx = context();
        assert_eq!(ctx.resolve("path").as_deref(), Some("/prod/pets/1"));
        assert_eq!(ctx.resolve("resourcePath").as_deref(), Some("/pets/{id}"));
    }

    #[test]
    fn the_source_ip_comes_from_forwarded_for_only_through_trusted_hops() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            http::HeaderValue::from_static("203.0.113.7, 10.0.0.2"),
        );
        let peer: SocketAddr = "10.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())];
        let via_lb = RequestContext::new(&headers, peer, &trusted, "http");
        assert_eq!(
            via_lb.resolve("identity.sourceIp").as_deref(),
            Some("203.0.113.7")
        );
        let direct = RequestContext::new(&headers, peer, &[], "http");
        assert_eq!(
            direct.resolve("identity.sourceIp").as_deref(),
            Some("10.0.0.1")
        );
    }

    #[test]
    fn an_ipv6_client_is_its_ipv6_address_and_a_mapped_ipv4_one_its_ipv4_address() {
        let ip = |peer: &str, xff: Option<&str>, trusted: &[&str]| {
            let mut headers = HeaderMap::new();
            if let Some(v) = xff {
                headers.insert(
                    "x-forwarded-for",
                    http::HeaderValue::from_str(v).unwrap_or_else(|_| unreachable!()),
                );
            }
            let trusted: Vec<IpNet> = trusted
                .iter()
                .map(|t| t.parse().unwrap_or_else(|_| unreachable!()))
                .collect();
            let peer: SocketAddr = peer.parse().unwrap_or_else(|_| unreachable!());
            RequestContext::new(&headers, peer, &trusted, "http")
                .resolve("identity.sourceIp")
                .unwrap_or_default()
        };
        assert_eq!(ip("[::1]:5000", None, &[]), "::1");
        assert_eq!(ip("[2001:db8::5]:5000", None, &[]), "2001:db8::5");
        assert_eq!(ip("[::ffff:203.0.113.9]:5000", None, &[]), "203.0.113.9");
        assert_eq!(
            ip("[fd00::1]:5000", Some("2001:db8::7"), &["fd00::/8"]),
            "2001:db8::7"
        );
        assert_eq!(
            ip("[fd00::1]:5000", Some("::ffff:198.51.100.4"), &["fd00::/8"]),
            "198.51.100.4"
        );
    }

    #[test]
    fn the_trace_id_is_a_context_variable_with_a_value_only_in_a_trace() {
        let mut ctx = context();
        assert_eq!(ctx.render("t=$context.traceId", "-"), "t=-");
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        ctx.trace = TraceContext::from_headers(&headers);
        assert_eq!(
            ctx.render("t=$context.traceId", "-"),
            "t=4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn forwarded_templates_resolve_completely_or_not_at_all() {
        let mut ctx = context();
        assert_eq!(ctx.render_complete("$context.authorizer.principalId"), None);
        ctx.principal.principal_id = Some("alice".into());
        assert_eq!(
            ctx.render_complete("user=$context.authorizer.principalId")
                .as_deref(),
            Some("user=alice")
        );
    }

    #[test]
    fn the_client_ip_is_the_first_untrusted_address_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            http::HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.0.2"),
        );
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        let got = client_ip(&h, &trusted, peer);
        assert_eq!(got, "203.0.113.9".parse::<IpAddr>().expect("ip"));
        assert_eq!(client_ip(&HeaderMap::new(), &trusted, peer), peer);
    }

    #[test]
    fn peers_are_trusted_only_inside_the_configured_networks() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        assert!(is_trusted(&trusted, "10.1.2.3".parse().expect("ip")));
        assert!(is_trusted(&trusted, "::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!is_trusted(&trusted, "192.168.1.1".parse().expect("ip")));
        assert!(!is_trusted(&[], "10.1.2.3".parse().expect("ip")));
    }
}
