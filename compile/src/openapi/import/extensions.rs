//! The Api-level extensions of a document → `Api.spec`: the top-level `x-amazon-apigateway-*`
//! keys (binary media types, CORS, gateway responses, resource policy, endpoint configuration,
//! request validators) and `Api.spec` itself.

use super::*;

impl Importer<'_> {
    pub(super) fn api_spec(&mut self, root: &Map<String, Value>) -> ApiSpec {
        let mut spec = match root.get(cx::API) {
            Some(v) => match serde_json::from_value::<ApiSpec>(v.clone()) {
                Ok(s) => s,
                Err(e) => {
                    self.notes
                        .dropped(&child("", cx::API), format!("not an Api spec: {e}"));
                    empty_api_spec()
                }
            },
            None => empty_api_spec(),
        };
        let exact = root.contains_key(cx::API);
        if !exact {
            spec.description = root
                .get("info")
                .and_then(|i| i.get("description"))
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if let Some(v) = root.get("x-amazon-apigateway-request-validators") {
            self.request_validators(v);
        }
        self.import_models();
        if exact {
            return spec;
        }
        spec.api_type = Some(if self.http_api {
            ApiType::Http
        } else {
            ApiType::Rest
        });
        let p = "/x-amazon-apigateway-api-key-source";
        match root.get("x-amazon-apigateway-api-key-source") {
            None => {}
            Some(Value::String(s)) if s.eq_ignore_ascii_case("HEADER") => {
                spec.api_key_source = Some(ApiKeySource::Header);
            }
            Some(Value::String(s)) if s.eq_ignore_ascii_case("AUTHORIZER") => self.notes.dropped(
                p,
                "API keys from an authorizer's usageIdentifierKey are not built; keys are read from x-api-key",
            ),
            Some(_) => self
                .notes
                .dropped(p, "must be HEADER or AUTHORIZER; not carried over"),
        }
        if let Some(v) = root.get("x-amazon-apigateway-binary-media-types") {
            let p = "/x-amazon-apigateway-binary-media-types";
            match v.as_array() {
                Some(items) => {
                    for (i, t) in items.iter().enumerate() {
                        match t.as_str() {
                            Some(t) if t.contains('/') || t.contains("~1") => {
                                spec.binary_media_types.push(t.replace("~1", "/"))
                            }
                            _ => self
                                .notes
                                .dropped(&format!("{p}/{i}"), "not a media type (type/subtype)"),
                        }
                    }
                }
                None => self.notes.dropped(p, "must be a list of media types"),
            }
        }
        if let Some(v) = root.get("x-amazon-apigateway-cors") {
            spec.cors = self.cors(v);
        }
        if let Some(v) = root.get("x-amazon-apigateway-gateway-responses") {
            spec.gateway_responses = self.gateway_responses(v);
        }
        if let Some(v) = root.get("x-amazon-apigateway-policy") {
            spec.policy = self.policy(v);
        }
        if let Some(v) = root.get("x-amazon-apigateway-endpoint-configuration") {
            self.endpoint_configuration(v, &mut spec);
        }
        if root.contains_key("x-amazon-apigateway-minimum-compression-size") {
            self.notes.dropped(
                "/x-amazon-apigateway-minimum-compression-size",
                "Causeway does not compress responses; bodies are sent as the backend sent them",
            );
        }
        spec
    }

    pub(super) fn request_validators(&mut self, v: &Value) {
        let p = "/x-amazon-apigateway-request-validators";
        let Some(map) = v.as_object() else {
            self.notes
                .dropped(p, "must map validator names to settings");
            return;
        };
        for (name, settings) in map {
            let at = child(p, name);
            let Some(o) = settings.as_object() else {
                self.notes.dropped(&at, "must be a mapping");
                continue;
            };
            leftover_keys(
                o,
                &at,
                &["validateRequestBody", "validateRequestParameters"],
                &[],
                &mut self.notes,
            );
            let flag = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
            self.validators.insert(
                name.clone(),
                (
                    flag("validateRequestBody"),
                    flag("validateRequestParameters"),
                ),
            );
        }
    }

    pub(super) fn cors(&mut self, v: &Value) -> Option<CorsSpec> {
        let p = "/x-amazon-apigateway-cors";
        let Some(o) = v.as_object() else {
            self.notes.dropped(p, "must be a mapping");
            return None;
        };
        leftover_keys(
            o,
            p,
            &[
                "allowOrigins",
                "allowMethods",
                "allowHeaders",
                "exposeHeaders",
                "maxAge",
                "allowCredentials",
            ],
            &[],
            &mut self.notes,
        );
        let list = |k: &str, notes: &mut Notes| -> Vec<String> {
            match o.get(k) {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect(),
                Some(_) => {
                    notes.dropped(&child(p, k), "must be a list of strings");
                    Vec::new()
                }
            }
        };
        let cors = CorsSpec {
            allow_origins: list("allowOrigins", &mut self.notes),
            allow_methods: list("allowMethods", &mut self.notes),
            allow_headers: list("allowHeaders", &mut self.notes),
            expose_headers: list("exposeHeaders", &mut self.notes),
            max_age_seconds: o
                .get("maxAge")
                .and_then(as_u64)
                .and_then(|n| u32::try_from(n.min(86400)).ok()),
            allow_credentials: o.get("allowCredentials").and_then(Value::as_bool),
        };
        Some(cors)
    }

    pub(super) fn gateway_responses(&mut self, v: &Value) -> Vec<GatewayResponseSpec> {
        let p = "/x-amazon-apigateway-gateway-responses";
        let Some(map) = v.as_object() else {
            self.notes.dropped(p, "must map response types to settings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, settings) in map {
            let at = child(p, name);
            let Ok(type_) =
                serde_json::from_value::<GatewayResponseType>(Value::String(name.clone()))
            else {
                self.notes.dropped(
                    &at,
                    format!("Causeway has no gateway response of type {name}"),
                );
                continue;
            };
            let Some(o) = settings.as_object() else {
                self.notes.dropped(&at, "must be a mapping");
                continue;
            };
            leftover_keys(
                o,
                &at,
                &["statusCode", "responseParameters", "responseTemplates"],
                &[],
                &mut self.notes,
            );
            let mut spec = GatewayResponseSpec {
                type_,
                status_code: o
                    .get("statusCode")
                    .and_then(as_u64)
                    .and_then(|n| u16::try_from(n).ok()),
                headers: BTreeMap::new(),
                body: None,
                content_type: None,
            };
            if let Some(params) = o.get("responseParameters").and_then(Value::as_object) {
                for (k, v) in params {
                    let pat = child(&child(&at, "responseParameters"), k);
                    match (
                        k.strip_prefix("gatewayresponse.header."),
                        v.as_str().and_then(literal),
                    ) {
                        (Some(h), Some(value)) => {
                            spec.headers.insert(h.to_string(), value);
                        }
                        _ => self.notes.dropped(
                            &pat,
                            "only gatewayresponse.header.NAME with a quoted literal value is carried over",
                        ),
                    }
                }
            }
            if let Some(templates) = o.get("responseTemplates").and_then(Value::as_object) {
                let mut first = true;
                for (ct, body) in templates {
                    let tat = child(&child(&at, "responseTemplates"), ct);
                    if !first {
                        self.notes.dropped(
                            &tat,
                            "one body per gateway response: the first content type is used",
                        );
                        continue;
                    }
                    first = false;
                    let body = body.as_str().unwrap_or_default();
                    if has_vtl_directives(body) {
                        self.notes.dropped(
                            &tat,
                            "VTL directives in gateway response templates are not evaluated; the text is sent with $context variables substituted",
                        );
                    }
                    spec.body = Some(
                        body.replace("$context.error.messageString", "\"$context.error.message\""),
                    );
                    spec.content_type = Some(ct.clone());
                }
            }
            out.push(spec);
        }
        out
    }

    pub(super) fn policy(&mut self, v: &Value) -> Option<ResourcePolicy> {
        let p = "/x-amazon-apigateway-policy";
        let parsed;
        let v = match v {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(x) => {
                    parsed = x;
                    &parsed
                }
                Err(_) => {
                    self.notes
                        .security(p, "the policy is a string that is not JSON");
                    return None;
                }
            },
            other => other,
        };
        let statements = match v.get("Statement") {
            Some(Value::Array(s)) => s.clone(),
            Some(o @ Value::Object(_)) => vec![o.clone()],
            _ => {
                self.notes.security(p, "a policy without a Statement list");
                return None;
            }
        };
        let mut policy = ResourcePolicy::default();
        for (i, st) in statements.iter().enumerate() {
            let at = format!("{p}/Statement/{i}");
            let effect = st.get("Effect").and_then(Value::as_str).unwrap_or("");
            let principal_any = match st.get("Principal") {
                Some(Value::String(s)) => s == "*",
                Some(Value::Object(o)) => o.get("AWS").is_some_and(|a| a == "*"),
                _ => false,
            };
            let resources_all = strings(st.get("Resource")).iter().all(|r| {
                r == "*"
                    || r.strip_prefix("execute-api:")
                        .or_else(|| r.split_once('/').map(|(_, rest)| rest))
                        .is_some_and(|rest| {
                            rest.trim_start_matches('/')
                                .split('/')
                                .all(|seg| seg == "*" || seg.is_empty())
                        })
            });
            let actions_invoke = strings(st.get("Action"))
                .iter()
                .all(|a| a == "execute-api:Invoke" || a == "execute-api:*" || a == "*");
            let condition = st.get("Condition").and_then(Value::as_object);
            let source_ips = |op: &str| -> Option<Vec<String>> {
                let c = condition?;
                if c.len() != 1 {
                    return None;
                }
                let inner = c.get(op)?.as_object()?;
                if inner.len() != 1 {
                    return None;
                }
                Some(strings(inner.get("aws:SourceIp")))
                    .filter(|v| !v.is_empty())
                    .map(|v| v.into_iter().map(|c| cidr(&c)).collect())
            };
            if !principal_any
                || !resources_all
                || !actions_invoke
                || st.get("NotPrincipal").is_some()
            {
                let msg = "only statements on every principal, `execute-api:Invoke` and the whole Api (with aws:SourceIp conditions) are carried over";
                if effect == "Allow" && principal_any && actions_invoke && condition.is_none() {
                    self.notes.dropped(&at, msg);
                } else {
                    self.notes.security(&at, msg);
                }
                continue;
            }
            match (effect, condition) {
                ("Allow", None) => {}
                ("Allow", Some(_)) => match source_ips("IpAddress") {
                    Some(c) => policy.allow_cidrs.extend(c),
                    None => self.notes.security(
                        &format!("{at}/Condition"),
                        "only aws:SourceIp conditions are carried over",
                    ),
                },
                ("Deny", Some(_)) => {
                    if let Some(c) = source_ips("IpAddress") {
                        policy.deny_cidrs.extend(c);
                    } else if let Some(c) = source_ips("NotIpAddress") {
                        policy.allow_cidrs.extend(c);
                    } else {
                        self.notes.security(
                            &format!("{at}/Condition"),
                            "only aws:SourceIp conditions are carried over",
                        );
                    }
                }
                ("Deny", None) => self.notes.security(
                    &at,
                    "a statement that denies everyone: not carried over (the Api would be open)",
                ),
                _ => self.notes.security(&at, "Effect must be Allow or Deny"),
            }
        }
        (!policy.allow_cidrs.is_empty() || !policy.deny_cidrs.is_empty()).then_some(policy)
    }

    pub(super) fn endpoint_configuration(&mut self, v: &Value, spec: &mut ApiSpec) {
        let p = "/x-amazon-apigateway-endpoint-configuration";
        let Some(o) = v.as_object() else {
            self.notes.dropped(p, "must be a mapping");
            return;
        };
        leftover_keys(
            o,
            p,
            &["disableExecuteApiEndpoint", "types", "vpcEndpointIds"],
            &["ipAddressType"],
            &mut self.notes,
        );
        if o.get("disableExecuteApiEndpoint").and_then(Value::as_bool) == Some(true) {
            spec.execute_api_endpoint = Some(false);
        }
        if strings(o.get("types")).iter().any(|t| t == "PRIVATE") {
            self.notes.security(
                &child(p, "types"),
                "a PRIVATE endpoint is reachable only from a VPC; Causeway serves where its proxies listen (restrict it with a resource policy or NetworkPolicy)",
            );
        } else if o.contains_key("types") {
            self.notes.ignored(
                &child(p, "types"),
                "EDGE and REGIONAL are AWS deployment choices",
            );
        }
        if o.contains_key("vpcEndpointIds") {
            self.notes.dropped(
                &child(p, "vpcEndpointIds"),
                "VPC endpoints do not exist here",
            );
        }
    }
}
