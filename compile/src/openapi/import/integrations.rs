//! `x-amazon-apigateway-integration` → `Route.spec.integration`: `http`, `http_proxy`,
//! `aws_proxy` (LAMBDA_PROXY), `aws` (Lambda non-proxy), `mock`, with their mapping fields
//! (templates, integration responses, parameters) and targets (URIs, VPC links, functions).

use super::*;

impl Importer<'_> {
    pub(super) fn integration(
        &mut self,
        v: &Value,
        at: &str,
        route_key: &str,
        params: &[String],
    ) -> Option<IntegrationSpec> {
        let Some(o) = v.as_object() else {
            self.notes.dropped(at, "the integration must be a mapping");
            return None;
        };
        leftover_keys(
            o,
            at,
            &[
                "type",
                "uri",
                "httpMethod",
                "requestParameters",
                "requestTemplates",
                "responses",
                "responseParameters",
                "passthroughBehavior",
                "contentHandling",
                "timeoutInMillis",
                "connectionType",
                "connectionId",
                "payloadFormatVersion",
                "cacheKeyParameters",
                "cacheNamespace",
                "credentials",
                "tlsConfig",
            ],
            &["description"],
            &mut self.notes,
        );
        if o.contains_key("credentials") {
            self.notes.ignored(
                &child(at, "credentials"),
                "the IAM role AWS assumes to call the backend has no counterpart",
            );
        }
        if o.contains_key("tlsConfig") {
            self.notes.dropped(
                &child(at, "tlsConfig"),
                "TLS to backends is set by the VpcLink (CA, server name) or the system roots",
            );
        }
        let type_ = o
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        if let Some(Value::Object(u)) = o.get("uri")
            && let Some(f) = u.keys().find(|k| k.starts_with("Fn::") || *k == "Ref")
        {
            self.notes.dropped(
                &child(at, "uri"),
                format!("an unresolved CloudFormation intrinsic function ({f}): import the document CloudFormation deployed (for example `aws apigateway get-export`), not the template; the operation is not carried over"),
            );
            return None;
        }
        let timeout = o
            .get("timeoutInMillis")
            .and_then(as_u64)
            .map(|t| u32::try_from(t.clamp(50, 300_000)).unwrap_or(29_000));
        let method = o
            .get("httpMethod")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .filter(|m| m != "ANY");
        let mut spec = IntegrationSpec {
            type_: IntegrationType::HttpProxy,
            backend_ref: None,
            uri: None,
            path: None,
            method: None,
            vpc_link_ref: None,
            timeout_millis: timeout,
            request_headers: BTreeMap::new(),
            request_parameters: BTreeMap::new(),
            response_parameters: BTreeMap::new(),
            mock: None,
            payload_format_version: None,
            request_templates: BTreeMap::new(),
            passthrough_behavior: None,
            content_handling: None,
            integration_responses: Vec::new(),
        };
        let templates = o
            .get("requestTemplates")
            .and_then(Value::as_object)
            .filter(|t| !t.is_empty());
        let responses = o.get("responses").and_then(Value::as_object);
        let proxy_like = matches!(type_.as_str(), "http_proxy" | "aws_proxy");
        if proxy_like {
            if let Some(r) = responses {
                for k in r.keys() {
                    self.notes.ignored(
                        &child(&child(at, "responses"), k),
                        "proxy integrations pass the backend's response through; AWS ignores integration responses on them too",
                    );
                }
            }
            if o.contains_key("requestTemplates") {
                self.notes.ignored(
                    &child(at, "requestTemplates"),
                    "proxy integrations pass the request through; AWS ignores templates on them too",
                );
            }
        }
        for k in ["passthroughBehavior", "contentHandling"] {
            if o.contains_key(k) && proxy_like {
                self.notes.ignored(
                    &child(at, k),
                    "proxy integrations pass bodies through untouched; AWS ignores it on them too",
                );
            }
        }
        match type_.as_str() {
            "http_proxy" | "http" => {
                spec.type_ = if type_ == "http" {
                    IntegrationType::Http
                } else {
                    IntegrationType::HttpProxy
                };
                if type_ == "http" {
                    let simple_responses = responses.is_none_or(|r| {
                        r.iter().all(|(k, v)| {
                            k == "default"
                                && v.get("responseTemplates")
                                    .and_then(Value::as_object)
                                    .is_none_or(|t| t.values().all(|x| x.as_str() == Some("")))
                        })
                    });
                    let never = o
                        .get("passthroughBehavior")
                        .and_then(Value::as_str)
                        .is_some_and(|p| p.eq_ignore_ascii_case("never"));
                    if templates.is_some()
                        || !simple_responses
                        || never
                        || o.contains_key("contentHandling")
                    {
                        self.mapping_fields(o, at, &mut spec);
                    } else if !self.http_responses(responses, at, &mut spec) {
                        return None;
                    }
                }
                spec.method = method;
                let uri = o.get("uri").and_then(Value::as_str).unwrap_or("");
                if !self.http_target(o, at, uri, &mut spec) {
                    return None;
                }
                self.request_parameters(o, at, params, &mut spec);
                self.http_api_response_parameters(o, at, &mut spec);
                Some(spec)
            }
            "aws_proxy" => {
                spec.type_ = IntegrationType::LambdaProxy;
                let uri = o.get("uri").and_then(Value::as_str).unwrap_or("");
                let Some(arn) = lambda_arn(uri) else {
                    self.notes.dropped(
                        &child(at, "uri"),
                        format!("{uri:?} is not a Lambda function (other AWS services are not reachable from here): the operation is not carried over"),
                    );
                    return None;
                };
                let Some(target) = self.mapping.function(&arn).cloned() else {
                    self.notes.dropped(
                        &child(at, "uri"),
                        format!("Lambda function {arn} is not in the mapping file's `lambda` section: the operation is not carried over"),
                    );
                    return None;
                };
                apply_function(&mut spec, &target);
                spec.payload_format_version = Some(match o.get("payloadFormatVersion") {
                    Some(v) if v.as_str() == Some("1.0") || v.as_f64() == Some(1.0) => {
                        PayloadFormatVersion::V1
                    }
                    Some(v) if v.as_str() == Some("2.0") || v.as_f64() == Some(2.0) => {
                        PayloadFormatVersion::V2
                    }
                    Some(_) => {
                        self.notes.dropped(
                            &child(at, "payloadFormatVersion"),
                            "must be 1.0 or 2.0; 1.0 is used",
                        );
                        PayloadFormatVersion::V1
                    }
                    None if self.http_api => PayloadFormatVersion::V2,
                    None => PayloadFormatVersion::V1,
                });
                if o.contains_key("requestParameters") {
                    self.notes.dropped(
                        &child(at, "requestParameters"),
                        "Lambda proxy integrations take no parameter mapping here (the function sees the whole request)",
                    );
                }
                Some(spec)
            }
            "mock" => self.mock(o, at, route_key, spec),
            "aws" => {
                let uri = o.get("uri").and_then(Value::as_str).unwrap_or("");
                let Some(arn) = lambda_arn(uri) else {
                    self.notes.dropped(
                        &child(at, "uri"),
                        format!("{uri:?} is an AWS service integration (only Lambda functions can run here): the operation is not carried over"),
                    );
                    return None;
                };
                let Some(target) = self.mapping.function(&arn).cloned() else {
                    self.notes.dropped(
                        &child(at, "uri"),
                        format!("Lambda function {arn} is not in the mapping file's `lambda` section: the operation is not carried over"),
                    );
                    return None;
                };
                spec.type_ = IntegrationType::Lambda;
                apply_function(&mut spec, &target);
                self.mapping_fields(o, at, &mut spec);
                if o.contains_key("requestParameters") {
                    self.notes.dropped(
                        &child(at, "requestParameters"),
                        "Lambda non-proxy integrations take their input from the request template only",
                    );
                }
                Some(spec)
            }
            other => {
                self.notes.dropped(
                    &child(at, "type"),
                    format!("integration type {other:?} is not supported: the operation is not carried over"),
                );
                None
            }
        }
    }

    /// API Gateway's non-proxy fields, carried over as they are: `requestTemplates`,
    /// `passthroughBehavior`, `contentHandling` and `responses` (integration responses with
    /// selection patterns, parameters and templates). Compile parses the templates and decides
    /// whether the route is served.
    pub(super) fn mapping_fields(
        &mut self,
        o: &Map<String, Value>,
        at: &str,
        spec: &mut IntegrationSpec,
    ) {
        if let Some(t) = o.get("requestTemplates").and_then(Value::as_object) {
            for (ct, body) in t {
                match body.as_str() {
                    Some(b) => {
                        spec.request_templates.insert(ct.clone(), b.to_string());
                    }
                    None => self.notes.dropped(
                        &child(&child(at, "requestTemplates"), ct),
                        "a template must be a string",
                    ),
                }
            }
        }
        let enum_of = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .map(|s| Value::String(s.to_ascii_uppercase()))
        };
        if let Some(v) = enum_of(o.get("passthroughBehavior")) {
            match serde_json::from_value(v) {
                Ok(p) => spec.passthrough_behavior = Some(p),
                Err(_) => self.notes.dropped(
                    &child(at, "passthroughBehavior"),
                    "must be when_no_match, when_no_templates or never",
                ),
            }
        }
        if let Some(v) = enum_of(o.get("contentHandling")) {
            match serde_json::from_value(v) {
                Ok(c) => spec.content_handling = Some(c),
                Err(_) => self.notes.dropped(
                    &child(at, "contentHandling"),
                    "must be CONVERT_TO_TEXT or CONVERT_TO_BINARY",
                ),
            }
        }
        let Some(responses) = o.get("responses").and_then(Value::as_object) else {
            return;
        };
        let rat = child(at, "responses");
        for (pattern, r) in responses {
            let pat = child(&rat, pattern);
            let Some(r) = r.as_object() else {
                self.notes
                    .dropped(&pat, "an integration response must be a mapping");
                continue;
            };
            leftover_keys(
                r,
                &pat,
                &[
                    "statusCode",
                    "responseParameters",
                    "responseTemplates",
                    "contentHandling",
                ],
                &[],
                &mut self.notes,
            );
            let Some(status) = r
                .get("statusCode")
                .and_then(as_u64)
                .and_then(|s| u16::try_from(s).ok())
            else {
                self.notes
                    .dropped(&pat, "an integration response needs a statusCode");
                continue;
            };
            let map = |k: &str| -> BTreeMap<String, String> {
                r.get(k)
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            spec.integration_responses.push(IntegrationResponseSpec {
                selection_pattern: (pattern != "default").then(|| pattern.clone()),
                status_code: status,
                response_parameters: map("responseParameters"),
                response_templates: map("responseTemplates"),
                content_handling: enum_of(r.get("contentHandling"))
                    .and_then(|v| serde_json::from_value(v).ok()),
            });
        }
    }

    /// Where an HTTP integration goes: a URL, or through a VPC link to a mapped backend.
    pub(super) fn http_target(
        &mut self,
        o: &Map<String, Value>,
        at: &str,
        uri: &str,
        spec: &mut IntegrationSpec,
    ) -> bool {
        let vpc_link = o
            .get("connectionType")
            .and_then(Value::as_str)
            .is_some_and(|c| c.eq_ignore_ascii_case("VPC_LINK"));
        if vpc_link {
            let id = o.get("connectionId").and_then(Value::as_str).unwrap_or("");
            let Some(target) = self.mapping.vpc_links.get(id).cloned() else {
                self.notes.dropped(
                    &child(at, "connectionId"),
                    format!("VPC link {id:?} is not in the mapping file's `vpcLinks` section: the operation is not carried over"),
                );
                return false;
            };
            spec.backend_ref = Some(target.backend_ref);
            spec.vpc_link_ref = target.vpc_link_ref;
            if let Some(path) = url_path(uri).filter(|p| !p.is_empty() && *p != "/") {
                spec.path = Some(path.to_string());
            }
            return true;
        }
        if o.contains_key("connectionId") {
            self.notes.ignored(
                &child(at, "connectionId"),
                "connectionId without connectionType VPC_LINK has no effect",
            );
        }
        if !(uri.starts_with("http://") || uri.starts_with("https://")) {
            self.notes.dropped(
                &child(at, "uri"),
                format!("{uri:?} is not an http(s) URL: the operation is not carried over"),
            );
            return false;
        }
        spec.uri = Some(uri.to_string());
        true
    }

    /// REST non-proxy HTTP integration responses: without templates, only a default
    /// response is understood. Returns false when the operation cannot be served faithfully.
    pub(super) fn http_responses(
        &mut self,
        responses: Option<&Map<String, Value>>,
        at: &str,
        spec: &mut IntegrationSpec,
    ) -> bool {
        let Some(responses) = responses else {
            return true;
        };
        let rat = child(at, "responses");
        for (pattern, r) in responses {
            let pat = child(&rat, pattern);
            let templated = r
                .get("responseTemplates")
                .and_then(Value::as_object)
                .is_some_and(|t| {
                    t.values()
                        .any(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                });
            if pattern != "default" || templated {
                self.notes.dropped(
                    &pat,
                    "integration responses with selection patterns or templates need the mapping-template engine, not built on this branch: the operation is not carried over",
                );
                return false;
            }
            let status = r.get("statusCode").and_then(as_u64);
            if status.is_some_and(|s| s != 200) {
                self.notes.dropped(
                    &child(&pat, "statusCode"),
                    "the backend's status is passed through, not replaced",
                );
            } else {
                self.notes.dropped(
                    &pat,
                    "the backend's status is passed through (API Gateway answers 200 for every backend status here)",
                );
            }
            if let Some(params) = r.get("responseParameters").and_then(Value::as_object) {
                for (k, v) in params {
                    let kat = child(&child(&pat, "responseParameters"), k);
                    let key = k.strip_prefix("method.response.header.");
                    let value = v.as_str().and_then(|v| {
                        if let Some(h) = v.strip_prefix("integration.response.header.") {
                            Some(format!("$response.header.{h}"))
                        } else {
                            literal(v)
                        }
                    });
                    match (key, value) {
                        (Some(h), Some(value)) => {
                            spec.response_parameters
                                .insert(format!("overwrite:header.{h}"), value);
                        }
                        _ => self.notes.dropped(
                            &kat,
                            "only method.response.header.NAME from a header or a quoted literal is carried over",
                        ),
                    }
                }
            }
        }
        true
    }

    /// `requestParameters`, REST style (`integration.request.header.x: method.request.…`) or
    /// HTTP API style (`overwrite:header.x: $request.…`).
    pub(super) fn request_parameters(
        &mut self,
        o: &Map<String, Value>,
        at: &str,
        params: &[String],
        spec: &mut IntegrationSpec,
    ) {
        let Some(map) = o.get("requestParameters").and_then(Value::as_object) else {
            return;
        };
        let pat = child(at, "requestParameters");
        for (k, v) in map {
            let kat = child(&pat, k);
            let Some(v) = v.as_str() else {
                self.notes.dropped(&kat, "the value must be a string");
                continue;
            };
            if k.contains(':') {
                spec.request_parameters.insert(k.clone(), v.to_string());
                continue;
            }
            let value = if let Some(r) = v.strip_prefix("method.request.") {
                if r.starts_with("header.")
                    || r.starts_with("querystring.")
                    || r.starts_with("path.")
                {
                    Some(format!("$request.{r}"))
                } else {
                    None
                }
            } else if v.starts_with("context.") || v.starts_with("stageVariables.") {
                Some(format!("${v}"))
            } else {
                literal(v)
            };
            let Some(value) = value else {
                self.notes.dropped(
                    &kat,
                    format!("{v:?} is not carried over (multi-value and body sources need mapping templates)"),
                );
                continue;
            };
            if let Some(n) = k.strip_prefix("integration.request.path.") {
                // AWS fills {n} in the URI; Causeway fills route parameters by name.
                match value.strip_prefix("$request.path.") {
                    Some(m) if params.iter().any(|p| p == m) => {
                        if n != m {
                            if let Some(uri) = &mut spec.uri {
                                *uri = uri.replace(&format!("{{{n}}}"), &format!("{{{m}}}"));
                            }
                            if let Some(path) = &mut spec.path {
                                *path = path.replace(&format!("{{{n}}}"), &format!("{{{m}}}"));
                            }
                        }
                    }
                    _ => self.notes.dropped(
                        &kat,
                        "a URI path parameter is filled from a route path parameter only",
                    ),
                }
            } else if let Some(h) = k.strip_prefix("integration.request.header.") {
                spec.request_parameters
                    .insert(format!("overwrite:header.{h}"), value);
            } else if let Some(q) = k.strip_prefix("integration.request.querystring.") {
                spec.request_parameters
                    .insert(format!("overwrite:querystring.{q}"), value);
            } else {
                self.notes
                    .dropped(&kat, format!("request parameter {k:?} is not supported"));
            }
        }
    }

    /// HTTP API `responseParameters`, keyed by backend status code.
    pub(super) fn http_api_response_parameters(
        &mut self,
        o: &Map<String, Value>,
        at: &str,
        _spec: &mut IntegrationSpec,
    ) {
        if let Some(map) = o.get("responseParameters").and_then(Value::as_object) {
            for k in map.keys() {
                self.notes.dropped(
                    &child(&child(at, "responseParameters"), k),
                    "response mappings per backend status code are not supported (Causeway's apply to every status)",
                );
            }
        }
    }

    /// A MOCK integration: the status its request template selects, and the static answer
    /// of the integration response it selects.
    pub(super) fn mock(
        &mut self,
        o: &Map<String, Value>,
        at: &str,
        route_key: &str,
        mut spec: IntegrationSpec,
    ) -> Option<IntegrationSpec> {
        spec.type_ = IntegrationType::Mock;
        spec.timeout_millis = None;
        let selected = match o.get("requestTemplates").and_then(Value::as_object) {
            None => 200,
            Some(t) => {
                let template = t
                    .get("application/json")
                    .or_else(|| t.values().next())
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match serde_json::from_str::<Value>(template)
                    .ok()
                    .and_then(|v| v.get("statusCode").and_then(as_u64))
                {
                    Some(s) => s,
                    None if template.trim().is_empty() => 200,
                    None => {
                        self.mapping_fields(o, at, &mut spec);
                        return Some(spec);
                    }
                }
            }
        };
        let mut mock = MockSpec {
            status_code: u16::try_from(selected).ok(),
            ..MockSpec::default()
        };
        if let Some(responses) = o.get("responses").and_then(Value::as_object) {
            let rat = child(at, "responses");
            let status_text = selected.to_string();
            let pick = responses
                .iter()
                .find(|(k, _)| {
                    *k != "default"
                        && regex::Regex::new(&format!("^(?:{k})$"))
                            .is_ok_and(|r| r.is_match(&status_text))
                })
                .or_else(|| responses.get_key_value("default"));
            for k in responses.keys() {
                if pick.is_some_and(|(p, _)| p == k) {
                    continue;
                }
                self.notes.ignored(
                    &child(&rat, k),
                    format!("not selected by the mock's status {selected}"),
                );
            }
            if let Some((k, r)) = pick {
                let pat = child(&rat, k);
                if let Some(s) = r.get("statusCode").and_then(as_u64) {
                    mock.status_code = u16::try_from(s).ok();
                }
                if let Some(params) = r.get("responseParameters").and_then(Value::as_object) {
                    for (name, v) in params {
                        let kat = child(&child(&pat, "responseParameters"), name);
                        match (
                            name.strip_prefix("method.response.header."),
                            v.as_str().and_then(literal),
                        ) {
                            (Some(h), Some(value)) => {
                                mock.headers.insert(h.to_string(), value);
                            }
                            _ => self.notes.dropped(
                                &kat,
                                "only method.response.header.NAME with a quoted literal is carried over for a mock",
                            ),
                        }
                    }
                }
                if let Some(templates) = r.get("responseTemplates").and_then(Value::as_object) {
                    let chosen = templates
                        .get_key_value("application/json")
                        .or_else(|| templates.iter().next());
                    if let Some((ct, body)) = chosen {
                        let body = body.as_str().unwrap_or("");
                        if body.contains('$') || has_vtl_directives(body) {
                            // Not a static answer: the templates are evaluated per request.
                            self.notes = std::mem::take(&mut self.notes).without_prefix(at);
                            self.mapping_fields(o, at, &mut spec);
                            return Some(spec);
                        }
                        if !body.is_empty() {
                            mock.body = Some(body.to_string());
                            if !mock
                                .headers
                                .keys()
                                .any(|h| h.eq_ignore_ascii_case("content-type"))
                            {
                                mock.headers.insert("Content-Type".into(), ct.clone());
                            }
                        }
                        for other in templates.keys().filter(|k| *k != ct) {
                            self.notes.dropped(
                                &child(&child(&pat, "responseTemplates"), other),
                                "a mock answers with one body: this content type's template is not used",
                            );
                        }
                    }
                }
            }
        }
        let _ = route_key;
        spec.mock = Some(mock);
        Some(spec)
    }
}
