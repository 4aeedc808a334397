//! `Api` + `Route`s + `Authorizer`s → an OpenAPI 3.0 or Swagger 2.0 document, with the
//! `x-amazon-apigateway-*` extensions (and Causeway's own `x-causeway-*`, so that a re-import
//! gives back the same resources) or without any (for SDK generators and documentation).

use std::collections::{BTreeMap, BTreeSet};

use causeway_crds::authorizer::AuthorizerType;
use causeway_crds::route::{
    IntegrationSpec, IntegrationType, MethodResponseSpec, PayloadFormatVersion,
};
use causeway_crds::{Api, Authorizer, Route};
use serde_json::{Map, Value, json};

use super::causeway_extensions as cx;

/// The document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// OpenAPI 3.0.3.
    Oas30,
    /// Swagger 2.0.
    Swagger20,
}

/// How to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The format.
    pub format: ExportFormat,
    /// Write the `x-amazon-apigateway-*` and `x-causeway-*` extensions.
    pub aws_extensions: bool,
    /// The URL the Api is served at (for `servers` / `host` + `basePath`), for example
    /// `http://pets.shop.localhost:8080/prod`.
    pub server_url: Option<String>,
}

/// An exported document and what it could not express.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// The document (serialize as JSON or YAML).
    pub document: Value,
    /// What the document does not say (for example `$default` routes without extensions).
    pub notes: Vec<String>,
}

const ANY_EXPANSION: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];
const API_KEY_SCHEME: &str = "api_key";

/// Exports an Api with its routes and authorizers (those of other Apis are skipped).
pub fn export(
    api: &Api,
    routes: &[Route],
    authorizers: &[Authorizer],
    options: &ExportOptions,
) -> Exported {
    let api_name = api.metadata.name.clone().unwrap_or_default();
    let namespace = api
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let swagger = options.format == ExportFormat::Swagger20;
    let aws = options.aws_extensions;
    let mut notes = Vec::new();
    let mut routes: Vec<&Route> = routes
        .iter()
        .filter(|r| {
            r.spec.api_ref.name == api_name
                && r.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
        .collect();
    routes.sort_by(|a, b| a.spec.route_key.cmp(&b.spec.route_key));
    let authorizers: BTreeMap<String, &Authorizer> = authorizers
        .iter()
        .filter(|a| {
            a.spec.api_ref.name == api_name
                && a.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
        .map(|a| (a.metadata.name.clone().unwrap_or_default(), a))
        .collect();
    let model_names: BTreeSet<&str> = api.spec.models.iter().map(|m| m.name.as_str()).collect();
    let schema_base = if swagger {
        "#/definitions/"
    } else {
        "#/components/schemas/"
    };

    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut operation_ids: BTreeSet<String> = BTreeSet::new();
    let mut used_authorizers = BTreeSet::new();
    let mut uses_api_key = false;
    let mut validators = BTreeSet::new();
    for route in &routes {
        let key = route.spec.route_key.as_str();
        let (method, path) = if key == "$default" {
            if !aws {
                notes.push(format!(
                    "route {}: $default cannot be written without extensions",
                    route.metadata.name.as_deref().unwrap_or("")
                ));
                continue;
            }
            ("ANY", "/$default")
        } else {
            match key.split_once(' ') {
                Some((m, p)) if p.starts_with('/') => (m, p),
                _ => {
                    notes.push(format!("route key {key:?} is not METHOD /path"));
                    continue;
                }
            }
        };
        let route_name = route.metadata.name.clone().unwrap_or_default();
        let method_spec = route.spec.method.as_ref();
        let mut op = Map::new();
        // The declared operation name, unless another route already has it (operationIds are
        // unique in a document); else one from the Route's name.
        let operation_id = method_spec
            .and_then(|m| m.operation_name.clone())
            .filter(|n| !operation_ids.contains(n))
            .unwrap_or_else(|| camel(&route_name));
        operation_ids.insert(operation_id.clone());
        op.insert("operationId".into(), json!(operation_id));
        // Parameters: the path's, then those declared (`spec.method.requestParameters`) and
        // those validated (required).
        let mut parameters = Vec::new();
        for seg in path.split('/') {
            if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                parameters.push(param(swagger, inner, "path", true));
            }
        }
        let validation = route.spec.request_validation.as_ref();
        let mut declared: BTreeMap<(&str, String), bool> = BTreeMap::new();
        for (key, required) in method_spec.iter().flat_map(|m| &m.request_parameters) {
            if let Some(q) = key.strip_prefix("method.request.querystring.") {
                declared.insert(("query", q.to_string()), *required);
            } else if let Some(h) = key.strip_prefix("method.request.header.") {
                declared.insert(("header", h.to_string()), *required);
            }
        }
        if let Some(v) = validation {
            for q in &v.required_query_strings {
                declared.insert(("query", q.clone()), true);
            }
            for h in &v.required_headers {
                declared.insert(("header", h.clone()), true);
            }
        }
        for ((location, name), required) in &declared {
            parameters.push(param(swagger, name, location, *required));
        }
        let models: Vec<(&String, &String)> = validation
            .map(|v| {
                v.models
                    .iter()
                    .filter(|(_, m)| model_names.contains(m.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        if !models.is_empty() {
            if swagger {
                let (_, first) = models[0];
                parameters.push(json!({
                    "name": "body", "in": "body", "required": true,
                    "schema": {"$ref": format!("{schema_base}{}", escape_ref(first))}
                }));
                op.insert(
                    "consumes".into(),
                    json!(models.iter().map(|(ct, _)| ct.as_str()).collect::<Vec<_>>()),
                );
                if models.len() > 1 {
                    notes.push(format!(
                        "route {route_name}: Swagger 2.0 has one body schema; the model for {} is written",
                        models[0].0
                    ));
                }
            } else {
                let content: Map<String, Value> = models
                    .iter()
                    .map(|(ct, m)| {
                        (
                            (*ct).clone(),
                            json!({"schema": {"$ref": format!("{schema_base}{}", escape_ref(m))}}),
                        )
                    })
                    .collect();
                op.insert(
                    "requestBody".into(),
                    json!({"required": true, "content": content}),
                );
            }
        }
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }
        op.insert(
            "responses".into(),
            match method_spec.filter(|m| !m.responses.is_empty()) {
                Some(m) => method_responses(&m.responses, swagger, schema_base, &model_names),
                None => responses(&route.spec.integration),
            },
        );
        // Security.
        let mut requirement = Map::new();
        if let Some(a) = &route.spec.authorizer_ref {
            if authorizers.contains_key(&a.name) {
                used_authorizers.insert(a.name.clone());
                requirement.insert(a.name.clone(), json!(route.spec.authorization_scopes));
            } else {
                notes.push(format!(
                    "route {route_name}: authorizer {} is not among the exported objects",
                    a.name
                ));
            }
        }
        if route.spec.api_key_required == Some(true) {
            uses_api_key = true;
            requirement.insert(API_KEY_SCHEME.into(), json!([]));
        }
        if !requirement.is_empty() {
            op.insert("security".into(), json!([requirement]));
        }
        if aws {
            op.insert(
                "x-amazon-apigateway-integration".into(),
                aws_integration(&route.spec.integration, &namespace, path),
            );
            if let Some(v) = validation {
                let body = v.validate_body.unwrap_or(!v.models.is_empty());
                let params = v.validate_parameters.unwrap_or(
                    !v.required_headers.is_empty() || !v.required_query_strings.is_empty(),
                );
                let name = match (body, params) {
                    (true, true) => Some("all"),
                    (true, false) => Some("body-only"),
                    (false, true) => Some("params-only"),
                    (false, false) => None,
                };
                if let Some(n) = name {
                    validators.insert(n);
                    op.insert("x-amazon-apigateway-request-validator".into(), json!(n));
                }
            }
            if let Ok(mut exact) = serde_json::to_value(&route.spec)
                && let Some(o) = exact.as_object_mut()
            {
                o.remove("apiRef");
                o.remove("routeKey");
                op.insert(cx::ROUTE.into(), exact);
            }
        }
        let entry = paths.entry(path.to_string()).or_default();
        if method == "ANY" {
            if aws {
                entry.insert("x-amazon-apigateway-any-method".into(), Value::Object(op));
            } else {
                for m in ANY_EXPANSION {
                    let mut copy = op.clone();
                    copy.insert(
                        "operationId".into(),
                        json!(format!("{}{}", camel(&route_name), capitalize(m))),
                    );
                    entry.entry(m).or_insert(Value::Object(copy));
                }
            }
        } else {
            entry.insert(method.to_ascii_lowercase(), Value::Object(op));
        }
    }
    // ANY expansion must not shadow explicit methods: explicit ones were inserted with
    // `insert`, expansions with `or_insert`; an explicit one that came later replaced them.

    let mut doc = Map::new();
    if swagger {
        doc.insert("swagger".into(), json!("2.0"));
    } else {
        doc.insert("openapi".into(), json!("3.0.3"));
    }
    let mut info = Map::new();
    info.insert("title".into(), json!(api_name));
    info.insert("version".into(), json!("1.0"));
    if let Some(d) = &api.spec.description {
        info.insert("description".into(), json!(d));
    }
    doc.insert("info".into(), Value::Object(info));
    if let Some(url) = &options.server_url {
        if swagger {
            if let Some((scheme, rest)) = url.split_once("://") {
                let (host, base) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                doc.insert("host".into(), json!(host));
                doc.insert("basePath".into(), json!(base));
                doc.insert("schemes".into(), json!([scheme]));
            }
        } else {
            doc.insert("servers".into(), json!([{"url": url}]));
        }
    }
    doc.insert(
        "paths".into(),
        Value::Object(
            paths
                .into_iter()
                .map(|(k, v)| (k, Value::Object(v)))
                .collect(),
        ),
    );

    // Schemas.
    let mut schemas = Map::new();
    for model in &api.spec.models {
        let mut hoisted = Map::new();
        let mut schema = model.schema.clone();
        if let Some(defs) = schema
            .as_object_mut()
            .and_then(|o| o.remove("definitions"))
            .and_then(|d| match d {
                Value::Object(m) => Some(m),
                _ => None,
            })
        {
            for (k, v) in defs {
                hoisted.insert(k, v);
            }
        }
        let mut clean = sanitize_schema(&schema, swagger, schema_base);
        if aws && let Some(o) = clean.as_object_mut() {
            let mut exact = Map::new();
            if let Some(ct) = &model.content_type {
                exact.insert("contentType".into(), json!(ct));
            }
            exact.insert("schema".into(), model.schema.clone());
            o.insert(cx::MODEL.into(), Value::Object(exact));
        }
        schemas.insert(model.name.clone(), clean);
        for (k, v) in hoisted {
            if !schemas.contains_key(&k) && !model_names.contains(k.as_str()) {
                schemas.insert(k, sanitize_schema(&v, swagger, schema_base));
            }
        }
    }

    // Security schemes.
    let mut security_schemes = Map::new();
    if uses_api_key {
        security_schemes.insert(
            API_KEY_SCHEME.into(),
            json!({"type": "apiKey", "name": "x-api-key", "in": "header"}),
        );
    }
    for (name, a) in &authorizers {
        // Without extensions, a scheme no operation uses says nothing to a client.
        if aws || used_authorizers.contains(name) {
            security_schemes.insert(name.clone(), security_scheme(a, swagger, aws));
        }
    }

    if swagger {
        if !schemas.is_empty() {
            doc.insert("definitions".into(), Value::Object(schemas));
        }
        if !security_schemes.is_empty() {
            doc.insert(
                "securityDefinitions".into(),
                Value::Object(security_schemes),
            );
        }
    } else {
        let mut components = Map::new();
        if !schemas.is_empty() {
            components.insert("schemas".into(), Value::Object(schemas));
        }
        if !security_schemes.is_empty() {
            components.insert("securitySchemes".into(), Value::Object(security_schemes));
        }
        if !components.is_empty() {
            doc.insert("components".into(), Value::Object(components));
        }
    }

    if aws {
        api_extensions(api, &validators, &mut doc);
    }
    Exported {
        document: Value::Object(doc),
        notes,
    }
}

fn api_extensions(api: &Api, validators: &BTreeSet<&str>, doc: &mut Map<String, Value>) {
    let spec = &api.spec;
    if let Some(source) = spec.api_key_source {
        doc.insert(
            "x-amazon-apigateway-api-key-source".into(),
            serde_json::to_value(source).unwrap_or(Value::Null),
        );
    }
    if !spec.binary_media_types.is_empty() {
        doc.insert(
            "x-amazon-apigateway-binary-media-types".into(),
            json!(spec.binary_media_types),
        );
    }
    if let Some(c) = &spec.cors {
        let mut o = Map::new();
        for (k, v) in [
            ("allowOrigins", &c.allow_origins),
            ("allowMethods", &c.allow_methods),
            ("allowHeaders", &c.allow_headers),
            ("exposeHeaders", &c.expose_headers),
        ] {
            if !v.is_empty() {
                o.insert(k.into(), json!(v));
            }
        }
        if let Some(m) = c.max_age_seconds {
            o.insert("maxAge".into(), json!(m));
        }
        if let Some(b) = c.allow_credentials {
            o.insert("allowCredentials".into(), json!(b));
        }
        doc.insert("x-amazon-apigateway-cors".into(), Value::Object(o));
    }
    if !spec.gateway_responses.is_empty() {
        let mut o = Map::new();
        for r in &spec.gateway_responses {
            let Ok(Value::String(t)) = serde_json::to_value(r.type_) else {
                continue;
            };
            let mut g = Map::new();
            if let Some(s) = r.status_code {
                g.insert("statusCode".into(), json!(s.to_string()));
            }
            if !r.headers.is_empty() {
                let params: Map<String, Value> = r
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            format!("gatewayresponse.header.{k}"),
                            json!(format!("'{v}'")),
                        )
                    })
                    .collect();
                g.insert("responseParameters".into(), Value::Object(params));
            }
            if let Some(b) = &r.body {
                let ct = r
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/json".into());
                g.insert("responseTemplates".into(), json!({ ct: b }));
            }
            o.insert(t, Value::Object(g));
        }
        doc.insert(
            "x-amazon-apigateway-gateway-responses".into(),
            Value::Object(o),
        );
    }
    if let Some(p) = &spec.policy {
        let mut statements = vec![json!({
            "Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
            "Resource": "execute-api:/*"
        })];
        if !p.allow_cidrs.is_empty() {
            statements.push(json!({
                "Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
                "Resource": "execute-api:/*",
                "Condition": {"NotIpAddress": {"aws:SourceIp": p.allow_cidrs}}
            }));
        }
        if !p.deny_cidrs.is_empty() {
            statements.push(json!({
                "Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
                "Resource": "execute-api:/*",
                "Condition": {"IpAddress": {"aws:SourceIp": p.deny_cidrs}}
            }));
        }
        doc.insert(
            "x-amazon-apigateway-policy".into(),
            json!({"Version": "2012-10-17", "Statement": statements}),
        );
    }
    if spec.execute_api_endpoint == Some(false) {
        doc.insert(
            "x-amazon-apigateway-endpoint-configuration".into(),
            json!({"disableExecuteApiEndpoint": true}),
        );
    }
    if !validators.is_empty() {
        let mut o = Map::new();
        for v in validators {
            let (body, params) = match *v {
                "all" => (true, true),
                "body-only" => (true, false),
                _ => (false, true),
            };
            o.insert(
                (*v).to_string(),
                json!({"validateRequestBody": body, "validateRequestParameters": params}),
            );
        }
        doc.insert(
            "x-amazon-apigateway-request-validators".into(),
            Value::Object(o),
        );
    }
    if let Ok(mut exact) = serde_json::to_value(spec)
        && let Some(o) = exact.as_object_mut()
    {
        o.remove("models");
        // The document is what the definition imported; writing it again would nest it.
        o.remove("definition");
        doc.insert(cx::API.into(), exact);
    }
}

fn param(swagger: bool, name: &str, location: &str, required: bool) -> Value {
    if swagger {
        json!({"name": name, "in": location, "required": required, "type": "string"})
    } else {
        json!({"name": name, "in": location, "required": required, "schema": {"type": "string"}})
    }
}

fn responses(integration: &IntegrationSpec) -> Value {
    match (&integration.type_, &integration.mock) {
        (IntegrationType::Mock, mock) => {
            let status = mock.as_ref().and_then(|m| m.status_code).unwrap_or(200);
            json!({ status.to_string(): {"description": "The mock response"} })
        }
        _ => json!({"default": {"description": "The integration's response"}}),
    }
}

/// The method responses of a route: description, headers and the body's model by content
/// type (a model the Api does not have is left out; compile notes it).
fn method_responses(
    responses: &[MethodResponseSpec],
    swagger: bool,
    schema_base: &str,
    model_names: &BTreeSet<&str>,
) -> Value {
    let mut out = Map::new();
    for r in responses {
        let mut o = Map::new();
        o.insert(
            "description".into(),
            json!(
                r.description
                    .clone()
                    .unwrap_or_else(|| format!("{} response", r.status_code))
            ),
        );
        let headers: Map<String, Value> = r
            .response_parameters
            .iter()
            .filter_map(|(k, required)| {
                let name = k.strip_prefix("method.response.header.")?;
                let header = if swagger {
                    json!({"type": "string"})
                } else if *required {
                    json!({"required": true, "schema": {"type": "string"}})
                } else {
                    json!({"schema": {"type": "string"}})
                };
                Some((name.to_string(), header))
            })
            .collect();
        if !headers.is_empty() {
            o.insert("headers".into(), Value::Object(headers));
        }
        let models: Vec<(&String, &String)> = r
            .response_models
            .iter()
            .filter(|(_, m)| model_names.contains(m.as_str()))
            .collect();
        if let Some((_, first)) = models.first() {
            let schema = |m: &str| json!({"$ref": format!("{schema_base}{}", escape_ref(m))});
            if swagger {
                o.insert("schema".into(), schema(first));
            } else {
                let content: Map<String, Value> = models
                    .iter()
                    .map(|(ct, m)| ((*ct).clone(), json!({"schema": schema(m)})))
                    .collect();
                o.insert("content".into(), Value::Object(content));
            }
        }
        out.insert(r.status_code.to_string(), Value::Object(o));
    }
    Value::Object(out)
}

fn aws_integration(i: &IntegrationSpec, namespace: &str, route_path: &str) -> Value {
    let mut o = Map::new();
    let backend_url = |i: &IntegrationSpec| -> String {
        match (&i.uri, &i.backend_ref) {
            (Some(u), _) => u.clone(),
            (None, Some(b)) => {
                let scheme = match b.scheme {
                    Some(causeway_crds::route::BackendScheme::Https) => "https",
                    _ => "http",
                };
                let ns = b.namespace.as_deref().unwrap_or(namespace);
                let path = i
                    .path
                    .clone()
                    .unwrap_or_else(|| route_path.replace("+}", "}").replace("/$default", "/"));
                format!(
                    "{scheme}://{}.{ns}.svc.cluster.local:{}{path}",
                    b.name, b.port
                )
            }
            (None, None) => String::new(),
        }
    };
    match i.type_ {
        IntegrationType::HttpProxy | IntegrationType::Http => {
            let proxy = i.type_ == IntegrationType::HttpProxy;
            o.insert(
                "type".into(),
                json!(if proxy { "http_proxy" } else { "http" }),
            );
            o.insert("uri".into(), json!(backend_url(i)));
            o.insert(
                "httpMethod".into(),
                json!(i.method.clone().unwrap_or_else(|| "ANY".into())),
            );
            if !i.request_parameters.is_empty() {
                o.insert("requestParameters".into(), json!(i.request_parameters));
            }
            if let Some(v) = &i.vpc_link_ref {
                o.insert("connectionType".into(), json!("VPC_LINK"));
                o.insert("connectionId".into(), json!(v.name));
            }
            o.insert("passthroughBehavior".into(), json!("when_no_match"));
            if !proxy {
                let mut default = Map::new();
                default.insert("statusCode".into(), json!("200"));
                o.insert("responses".into(), json!({"default": default}));
            }
        }
        IntegrationType::Lambda => {
            o.insert("type".into(), json!("aws"));
            o.insert("httpMethod".into(), json!("POST"));
            let function = i
                .backend_ref
                .as_ref()
                .map(|b| b.name.clone())
                .unwrap_or_else(|| "function".into());
            o.insert(
                "uri".into(),
                json!(format!(
                    "arn:aws:apigateway:causeway:lambda:path/2015-03-31/functions/arn:aws:lambda:causeway:{namespace}:function:{function}/invocations"
                )),
            );
        }
        IntegrationType::LambdaProxy => {
            o.insert("type".into(), json!("aws_proxy"));
            o.insert("httpMethod".into(), json!("POST"));
            let function = i
                .backend_ref
                .as_ref()
                .map(|b| b.name.clone())
                .unwrap_or_else(|| "function".into());
            o.insert(
                "uri".into(),
                json!(format!(
                    "arn:aws:apigateway:causeway:lambda:path/2015-03-31/functions/arn:aws:lambda:causeway:{namespace}:function:{function}/invocations"
                )),
            );
            o.insert(
                "payloadFormatVersion".into(),
                json!(match i.payload_format_version {
                    Some(PayloadFormatVersion::V1) => "1.0",
                    _ => "2.0",
                }),
            );
        }
        IntegrationType::Mock => {
            let mock = i.mock.clone().unwrap_or_default();
            let status = mock.status_code.unwrap_or(200);
            o.insert("type".into(), json!("mock"));
            o.insert(
                "requestTemplates".into(),
                json!({"application/json": format!("{{\"statusCode\": {status}}}")}),
            );
            let mut default = Map::new();
            default.insert("statusCode".into(), json!(status.to_string()));
            if !mock.headers.is_empty() {
                let params: Map<String, Value> = mock
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            format!("method.response.header.{k}"),
                            json!(format!("'{v}'")),
                        )
                    })
                    .collect();
                default.insert("responseParameters".into(), Value::Object(params));
            }
            if let Some(b) = &mock.body {
                default.insert("responseTemplates".into(), json!({"application/json": b}));
            }
            o.insert("responses".into(), json!({"default": default}));
            o.insert("passthroughBehavior".into(), json!("when_no_match"));
        }
    }
    // Non-proxy mapping, as API Gateway writes it.
    if !i.request_templates.is_empty() {
        o.insert("requestTemplates".into(), json!(i.request_templates));
    }
    if let Some(p) = i.passthrough_behavior
        && let Ok(Value::String(p)) = serde_json::to_value(p)
    {
        o.insert("passthroughBehavior".into(), json!(p.to_ascii_lowercase()));
    }
    if let Some(c) = i.content_handling {
        o.insert(
            "contentHandling".into(),
            serde_json::to_value(c).unwrap_or(Value::Null),
        );
    }
    if !i.integration_responses.is_empty() {
        let mut responses = Map::new();
        for r in &i.integration_responses {
            let mut x = Map::new();
            x.insert("statusCode".into(), json!(r.status_code.to_string()));
            if !r.response_parameters.is_empty() {
                x.insert("responseParameters".into(), json!(r.response_parameters));
            }
            if !r.response_templates.is_empty() {
                x.insert("responseTemplates".into(), json!(r.response_templates));
            }
            if let Some(c) = r.content_handling {
                x.insert(
                    "contentHandling".into(),
                    serde_json::to_value(c).unwrap_or(Value::Null),
                );
            }
            let key = r
                .selection_pattern
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "default".into());
            responses.insert(key, Value::Object(x));
        }
        o.insert("responses".into(), Value::Object(responses));
    }
    if let Some(t) = i.timeout_millis
        && i.type_ != IntegrationType::Mock
    {
        o.insert("timeoutInMillis".into(), json!(t));
    }
    Value::Object(o)
}

fn security_scheme(a: &Authorizer, swagger: bool, aws: bool) -> Value {
    let spec = &a.spec;
    let header_of = |default: &str| -> String {
        spec.identity_source
            .first()
            .and_then(|s| s.strip_prefix("$request.header."))
            .unwrap_or(default)
            .to_string()
    };
    let mut o = match spec.type_ {
        AuthorizerType::Jwt => {
            let issuer = spec
                .jwt
                .as_ref()
                .map(|j| j.issuer.trim_end_matches('/').to_string())
                .unwrap_or_default();
            if swagger {
                json!({"type": "oauth2", "flow": "implicit",
                       "authorizationUrl": format!("{issuer}/authorize"), "scopes": {}})
            } else {
                json!({"type": "openIdConnect",
                       "openIdConnectUrl": format!("{issuer}/.well-known/openid-configuration")})
            }
        }
        AuthorizerType::Request | AuthorizerType::Token => {
            json!({"type": "apiKey", "name": header_of("Authorization"), "in": "header"})
        }
        AuthorizerType::Sigv4 => {
            json!({"type": "apiKey", "name": "Authorization", "in": "header"})
        }
        AuthorizerType::ServiceAccount => {
            if swagger {
                json!({"type": "apiKey", "name": "Authorization", "in": "header"})
            } else {
                json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
            }
        }
        AuthorizerType::Mtls => {
            json!({"type": "apiKey", "name": "X-Client-Certificate", "in": "header",
                   "description": "a client certificate presented in the TLS handshake"})
        }
    };
    if aws && let Some(m) = o.as_object_mut() {
        let identity: Vec<String> = spec.identity_source.clone();
        match spec.type_ {
            AuthorizerType::Jwt => {
                if let Some(j) = &spec.jwt {
                    m.insert(
                        "x-amazon-apigateway-authorizer".into(),
                        json!({"type": "jwt",
                               "identitySource": if identity.is_empty() { "$request.header.Authorization".to_string() } else { identity.join(",") },
                               "jwtConfiguration": {"issuer": j.issuer, "audience": j.audiences}}),
                    );
                }
            }
            AuthorizerType::Request | AuthorizerType::Token => {
                m.insert("x-amazon-apigateway-authtype".into(), json!("custom"));
                let name = a.metadata.name.clone().unwrap_or_default();
                let mut auth = json!({
                    "type": if spec.type_ == AuthorizerType::Token { "token" } else { "request" },
                    "authorizerUri": format!("arn:aws:apigateway:causeway:lambda:path/2015-03-31/functions/arn:aws:lambda:causeway:causeway:function:{name}/invocations"),
                });
                if !identity.is_empty() {
                    auth["identitySource"] = json!(identity.join(","));
                }
                if let Some(f) = &spec.function
                    && let Some(ttl) = f.result_ttl_seconds
                {
                    auth["authorizerResultTtlInSeconds"] = json!(ttl);
                }
                m.insert("x-amazon-apigateway-authorizer".into(), auth);
            }
            AuthorizerType::Sigv4 => {
                m.insert("x-amazon-apigateway-authtype".into(), json!("awsSigv4"));
            }
            AuthorizerType::ServiceAccount | AuthorizerType::Mtls => {}
        }
        if let Ok(mut exact) = serde_json::to_value(spec)
            && let Some(e) = exact.as_object_mut()
        {
            e.remove("apiRef");
            m.insert(
                cx::AUTHORIZER.into(),
                json!({"name": a.metadata.name, "spec": exact}),
            );
        }
    }
    o
}

/// Keywords a Schema Object may hold in OpenAPI 3.0 and Swagger 2.0 (the subsets of JSON
/// Schema they allow); others are dropped from the plain schema (the exact one rides in
/// `x-causeway-model`).
const OAS30_KEYWORDS: &[&str] = &[
    "title",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "type",
    "not",
    "allOf",
    "oneOf",
    "anyOf",
    "items",
    "properties",
    "additionalProperties",
    "description",
    "format",
    "default",
    "nullable",
    "discriminator",
    "readOnly",
    "writeOnly",
    "example",
    "externalDocs",
    "deprecated",
    "xml",
];
const SWAGGER20_KEYWORDS: &[&str] = &[
    "title",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "type",
    "allOf",
    "items",
    "properties",
    "additionalProperties",
    "description",
    "format",
    "default",
    "discriminator",
    "readOnly",
    "example",
    "externalDocs",
    "xml",
];

fn sanitize_schema(v: &Value, swagger: bool, base: &str) -> Value {
    let Some(o) = v.as_object() else {
        return if v.is_boolean() { json!({}) } else { v.clone() };
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix("#/definitions/")
            .map(|n| format!("{base}{n}"))
            .unwrap_or_else(|| r.to_string());
        return json!({"$ref": target});
    }
    let allowed = if swagger {
        SWAGGER20_KEYWORDS
    } else {
        OAS30_KEYWORDS
    };
    let mut out = Map::new();
    for (k, x) in o {
        if !allowed.contains(&k.as_str()) && !k.starts_with("x-") {
            continue;
        }
        let clean = match k.as_str() {
            "properties" => Value::Object(
                x.as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(n, s)| (n.clone(), sanitize_schema(s, swagger, base)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" => match x {
                Value::Array(a) => a
                    .first()
                    .map(|s| sanitize_schema(s, swagger, base))
                    .unwrap_or(json!({})),
                s => sanitize_schema(s, swagger, base),
            },
            "not" => sanitize_schema(x, swagger, base),
            "additionalProperties" => match x {
                Value::Bool(b) => Value::Bool(*b),
                s => sanitize_schema(s, swagger, base),
            },
            "allOf" | "oneOf" | "anyOf" => Value::Array(
                x.as_array()
                    .map(|a| {
                        a.iter()
                            .map(|s| sanitize_schema(s, swagger, base))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "type" => match x {
                Value::String(_) => x.clone(),
                Value::Array(a) => {
                    // draft-04 type lists: the first non-null type, and `nullable` (3.0).
                    let first = a.iter().find(|t| t.as_str() != Some("null")).cloned();
                    if !swagger && a.iter().any(|t| t.as_str() == Some("null")) {
                        out.insert("nullable".into(), json!(true));
                    }
                    match first {
                        Some(t) => t,
                        None => continue,
                    }
                }
                _ => continue,
            },
            "required" => match x.as_array() {
                Some(a) if !a.is_empty() && a.iter().all(Value::is_string) => x.clone(),
                _ => continue,
            },
            "discriminator" if swagger && !x.is_string() => continue,
            "discriminator" if !swagger && !x.is_object() => continue,
            _ => x.clone(),
        };
        out.insert(k.clone(), clean);
    }
    Value::Object(out)
}

fn escape_ref(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// `list-pets` → `listPets`.
fn camel(s: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in s.chars() {
        if c == '-' || c == '_' || c == '.' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}
