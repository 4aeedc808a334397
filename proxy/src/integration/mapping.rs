//! Parameter mapping of `HTTP_PROXY` and `HTTP` integrations (`$context` variables come from
//! the request's context).
//!
//! Request mappings run just before the backend call (headers, query string, path); response
//! mappings run on the response head (headers, status code). The syntax is parsed by
//! `causeway_snapshot::mapping`, the parser compile uses too, so a mapping compile accepted
//! always builds here.

use causeway_snapshot::ParameterMapping;
use causeway_snapshot::mapping::{
    MappingAction, MappingSide, MappingTarget, ValuePart, parse_key, parse_value,
};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Uri};

use crate::body::ProxyBody;
use crate::context::RequestContext;
use crate::error::{MappingError, RequestError};

/// One parsed mapping.
struct Rule {
    action: MappingAction,
    target: MappingTarget,
    header: Option<HeaderName>,
    value: Vec<ValuePart>,
}

/// The mappings of one integration, pre-parsed; empty when it maps nothing.
#[derive(Default)]
pub(crate) struct LiveMapping {
    request: Vec<Rule>,
    response: Vec<Rule>,
}

fn rules(mappings: &[ParameterMapping], side: MappingSide) -> Result<Vec<Rule>, MappingError> {
    mappings
        .iter()
        .map(|m| {
            let key = format!("{:?}:{:?}", m.action, m.target);
            let err = |message: String| MappingError {
                key: key.clone(),
                message,
            };
            let header = match &m.target {
                MappingTarget::Header(name) => Some(
                    HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| err(format!("{name:?} is not a header name")))?,
                ),
                _ => None,
            };
            // The same checks compile made, so a hand-written snapshot cannot smuggle in
            // a target the side does not allow.
            let key_text = match &m.target {
                MappingTarget::Header(n) => format!("header.{n}"),
                MappingTarget::Querystring(n) => format!("querystring.{n}"),
                MappingTarget::Path => "path".into(),
                MappingTarget::StatusCode => "statuscode".into(),
            };
            let action = match m.action {
                MappingAction::Overwrite => "overwrite",
                MappingAction::Append => "append",
                MappingAction::Remove => "remove",
            };
            parse_key(&format!("{action}:{key_text}"), side).map_err(err)?;
            Ok(Rule {
                action: m.action,
                target: m.target.clone(),
                header,
                value: parse_value(&m.value, side).map_err(err)?,
            })
        })
        .collect()
}

impl LiveMapping {
    /// Parses an integration's mappings.
    pub(crate) fn build(
        request: &[ParameterMapping],
        response: &[ParameterMapping],
    ) -> Result<Self, MappingError> {
        Ok(Self {
            request: rules(request, MappingSide::Request)?,
            response: rules(response, MappingSide::Response)?,
        })
    }

    /// Whether there is any response mapping.
    pub(crate) fn maps_response(&self) -> bool {
        !self.response.is_empty()
    }

    /// Applies the request mappings to the headers and query of `uri`; returns the new path
    /// when `overwrite:path` is set.
    pub(crate) fn apply_request(
        &self,
        headers: &mut HeaderMap,
        uri: &mut Uri,
        ctx: &RequestContext,
    ) -> Result<Option<String>, RequestError> {
        if self.request.is_empty() {
            return Ok(None);
        }
        let original_headers = headers.clone();
        let original_query = crate::context::query_pairs(uri.query());
        let mut query = original_query.clone();
        let mut path = None;
        let mut query_changed = false;
        for rule in &self.request {
            let value = render(&rule.value, ctx, &original_headers, &original_query, None);
            match (&rule.target, &rule.header) {
                (MappingTarget::Header(_), Some(name)) => {
                    apply_header(headers, name, rule.action, &value)?
                }
                (MappingTarget::Querystring(name), _) => {
                    query_changed = true;
                    match rule.action {
                        MappingAction::Overwrite => {
                            query.retain(|(k, _)| k != name);
                            query.push((name.clone(), value));
                        }
                        MappingAction::Append => query.push((name.clone(), value)),
                        MappingAction::Remove => query.retain(|(k, _)| k != name),
                    }
                }
                (MappingTarget::Path, _) => {
                    path = Some(if value.starts_with('/') {
                        value
                    } else {
                        format!("/{value}")
                    })
                }
                _ => {}
            }
        }
        if query_changed {
            let encoded = encode_query(&query);
            let path_only = uri.path().to_string();
            let text = if encoded.is_empty() {
                path_only
            } else {
                format!("{path_only}?{encoded}")
            };
            *uri = text
                .parse()
                .map_err(|e| RequestError::BuildRequest(format!("mapped query: {e}")))?;
        }
        Ok(path)
    }

    /// Applies the response mappings to a response head.
    pub(crate) fn apply_response(
        &self,
        response: &mut Response<ProxyBody>,
        ctx: &RequestContext,
        request_headers: &HeaderMap,
        request_query: Option<&str>,
    ) {
        if self.response.is_empty() {
            return;
        }
        let original = response.headers().clone();
        let query = crate::context::query_pairs(request_query);
        for rule in &self.response {
            let value = render(&rule.value, ctx, request_headers, &query, Some(&original));
            match (&rule.target, &rule.header) {
                (MappingTarget::Header(_), Some(name)) => {
                    // A value that is not a valid header drops the mapping, not the response.
                    let _ = apply_header(response.headers_mut(), name, rule.action, &value);
                }
                (MappingTarget::StatusCode, _) => {
                    if let Some(status) = value
                        .trim()
                        .parse::<u16>()
                        .ok()
                        .and_then(|c| StatusCode::from_u16(c).ok())
                    {
                        *response.status_mut() = status;
                    }
                }
                _ => {}
            }
        }
    }
}

fn apply_header(
    headers: &mut HeaderMap,
    name: &HeaderName,
    action: MappingAction,
    value: &str,
) -> Result<(), RequestError> {
    if action == MappingAction::Remove {
        headers.remove(name);
        return Ok(());
    }
    let value = HeaderValue::from_str(value)
        .map_err(|_| RequestError::BuildRequest(format!("mapped header {name} is not valid")))?;
    match action {
        MappingAction::Overwrite => {
            headers.insert(name.clone(), value);
        }
        _ => {
            headers.append(name.clone(), value);
        }
    }
    Ok(())
}

fn render(
    parts: &[ValuePart],
    ctx: &RequestContext,
    headers: &HeaderMap,
    query: &[(String, String)],
    response_headers: Option<&HeaderMap>,
) -> String {
    let header_text = |map: &HeaderMap, name: &str| {
        let values: Vec<String> = map
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        values.join(",")
    };
    let mut out = String::new();
    for part in parts {
        match part {
            ValuePart::Literal(t) => out.push_str(t),
            ValuePart::RequestHeader(n) => out.push_str(&header_text(headers, n)),
            ValuePart::RequestQuery(n) => {
                let values: Vec<&str> = query
                    .iter()
                    .filter(|(k, _)| k == n)
                    .map(|(_, v)| v.as_str())
                    .collect();
                out.push_str(&values.join(","));
            }
            ValuePart::RequestPathParam(n) => {
                if let Some((_, v)) = ctx.params.iter().find(|(k, _)| k == n) {
                    out.push_str(v);
                }
            }
            ValuePart::RequestPath => out.push_str(&ctx.stage_path),
            ValuePart::Context(n) => out.push_str(&ctx.resolve(n).unwrap_or_default()),
            ValuePart::StageVariable(n) => {
                out.push_str(ctx.stage_variables.get(n).map_or("", String::as_str))
            }
            ValuePart::ResponseHeader(n) => {
                if let Some(h) = response_headers {
                    out.push_str(&header_text(h, n));
                }
            }
        }
    }
    out
}

/// Query pairs encoded as `application/x-www-form-urlencoded` would (space as `%20`).
fn encode_query(pairs: &[(String, String)]) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, SET),
                utf8_percent_encode(v, SET)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use serde_json::{Map, Value};

    use super::*;

    fn facts(
        params: &[(String, String)],
        variables: BTreeMap<String, String>,
        claims: Option<Map<String, Value>>,
    ) -> RequestContext {
        let peer = SocketAddr::from(([198, 51, 100, 9], 1234));
        let mut ctx = RequestContext::new(&HeaderMap::new(), peer, &[], "http");
        ctx.request_id = "req-1".into();
        ctx.stage = Some("prod".into());
        ctx.api_id = Some("default/pets".into());
        ctx.domain_name = Some("api.test".into());
        ctx.route_key = Some("GET /pets/{id}".into());
        ctx.stage_path = "/pets/7".into();
        ctx.params = params.to_vec();
        ctx.stage_variables = std::sync::Arc::new(variables);
        ctx.principal.claims = claims.unwrap_or_default();
        ctx
    }

    fn mapping(key: &str, value: &str, side: MappingSide) -> ParameterMapping {
        let (action, target) = parse_key(key, side).expect("key");
        ParameterMapping {
            action,
            target,
            value: value.to_string(),
        }
    }

    #[test]
    fn request_mappings_change_headers_query_and_path_from_request_context_and_variables() {
        let params = vec![("id".to_string(), "7".to_string())];
        let variables = BTreeMap::from([("env".to_string(), "blue".to_string())]);
        let mut claims = Map::new();
        claims.insert("sub".into(), serde_json::json!("user-1"));
        let f = facts(&params, variables, Some(claims));
        let m = LiveMapping::build(
            &[
                mapping(
                    "overwrite:header.x-user",
                    "$context.authorizer.claims.sub",
                    MappingSide::Request,
                ),
                mapping(
                    "append:header.x-trace",
                    "$context.requestId@$context.identity.sourceIp",
                    MappingSide::Request,
                ),
                mapping("remove:header.cookie", "", MappingSide::Request),
                mapping(
                    "append:querystring.tag",
                    "$request.header.x-tag",
                    MappingSide::Request,
                ),
                mapping("remove:querystring.secret", "", MappingSide::Request),
                mapping(
                    "overwrite:querystring.env",
                    "$stageVariables.env",
                    MappingSide::Request,
                ),
                mapping(
                    "overwrite:path",
                    "/v2/items/${request.path.id}",
                    MappingSide::Request,
                ),
            ],
            &[],
        )
        .expect("builds");
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_static("a=1"));
        headers.insert("x-trace", HeaderValue::from_static("first"));
        headers.insert("x-tag", HeaderValue::from_static("red"));
        let mut uri: Uri = "/pets/7?tag=blue&secret=s&env=old".parse().expect("uri");
        let path = m
            .apply_request(&mut headers, &mut uri, &f)
            .expect("applies");
        assert_eq!(path.as_deref(), Some("/v2/items/7"));
        assert_eq!(
            headers.get("x-user").map(|v| v.as_bytes()),
            Some(&b"user-1"[..])
        );
        let traces: Vec<_> = headers
            .get_all("x-trace")
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect();
        assert_eq!(
            traces,
            vec![b"first".to_vec(), b"req-1@198.51.100.9".to_vec()]
        );
        assert!(headers.get("cookie").is_none());
        assert_eq!(uri.query(), Some("tag=blue&tag=red&env=blue"));
    }

    #[test]
    fn response_mappings_set_status_and_headers_from_the_response() {
        let f = facts(&[], BTreeMap::new(), None);
        let m = LiveMapping::build(
            &[],
            &[
                mapping("overwrite:statuscode", "202", MappingSide::Response),
                mapping(
                    "overwrite:header.x-echo",
                    "got $response.header.x-upstream",
                    MappingSide::Response,
                ),
                mapping("remove:header.server", "", MappingSide::Response),
            ],
        )
        .expect("builds");
        let mut response = Response::new(crate::body::full("x"));
        response
            .headers_mut()
            .insert("x-upstream", HeaderValue::from_static("up"));
        response
            .headers_mut()
            .insert("server", HeaderValue::from_static("secret"));
        m.apply_response(&mut response, &f, &HeaderMap::new(), None);
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(
            response.headers().get("x-echo").map(|v| v.as_bytes()),
            Some(&b"got up"[..])
        );
        assert!(response.headers().get("server").is_none());
    }
}
