//! OpenAPI / Swagger document → `Api`, `Route`s, `Authorizer`s and a `Stage`.
//!
//! The walk is explicit about every key: each object's keys are either handled, documentation
//! (no effect on what is served), or reported with their pointer ([`leftover_keys`]).

use std::collections::{BTreeMap, BTreeSet};

use causeway_crds::api::{
    ApiKeySource, ApiType, CorsSpec, GatewayResponseSpec, GatewayResponseType, ModelSpec,
    ResourcePolicy,
};
use causeway_crds::authorizer::{
    AuthorizerResponseFormat, AuthorizerType, FunctionAuthorizerSpec, JwtSpec, SigV4Spec,
};
use causeway_crds::common::{ApiRef, ObjectRef, SecretRef};
use causeway_crds::route::{
    IntegrationResponseSpec, IntegrationSpec, IntegrationType, MockSpec, PayloadFormatVersion,
    RequestValidationSpec,
};
use causeway_crds::stage::RouteSettings;
use causeway_crds::{Api, ApiSpec, Authorizer, AuthorizerSpec, Route, RouteSpec, Stage, StageSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::causeway_extensions as cx;
use super::document::{self, Dialect, child, leftover_keys, resolve};
use super::mapping::{FunctionTarget, ImportMapping, function_name};
use super::report::{ImportError, Note, NoteKind, Notes};

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Namespace of every object written.
    pub namespace: String,
    /// Name of the Api (default: from `info.title`).
    pub api_name: Option<String>,
    /// Which Stage to write.
    pub stage: StageChoice,
    /// What only AWS can name, and where it runs instead.
    pub mapping: ImportMapping,
    /// Serve routes without the security constructs that cannot be mapped, instead of failing.
    pub allow_insecure_drop: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            namespace: "default".into(),
            api_name: None,
            stage: StageChoice::FromDocument,
            mapping: ImportMapping::default(),
            allow_insecure_drop: false,
        }
    }
}

/// Which Stage an import writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageChoice {
    /// None (the caller has its own Stages).
    None,
    /// A Stage of this name, following the newest deployment.
    Named(String),
    /// The stage an AWS export names (its `basePath` server variable or Swagger `basePath`),
    /// else `prod`.
    FromDocument,
}

/// The resources an import produced, and what it did not carry over.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The Api.
    pub api: Api,
    /// One Route per operation carried over.
    pub routes: Vec<Route>,
    /// One Authorizer per security scheme used by a route.
    pub authorizers: Vec<Authorizer>,
    /// The Stage, unless [`StageChoice::None`].
    pub stage: Option<Stage>,
    /// Every construct not carried over (or only partly), sorted by pointer.
    pub notes: Vec<Note>,
}

impl Imported {
    /// Every object as JSON (`apiVersion`, `kind`, `metadata`, `spec`): Api, Authorizers,
    /// Routes, Stage.
    pub fn objects(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut push = |v: Result<Value, serde_json::Error>| {
            if let Ok(mut v) = v {
                if let Some(o) = v.as_object_mut() {
                    o.remove("status");
                }
                out.push(v);
            }
        };
        push(serde_json::to_value(&self.api));
        for a in &self.authorizers {
            push(serde_json::to_value(a));
        }
        for r in &self.routes {
            push(serde_json::to_value(r));
        }
        if let Some(s) = &self.stage {
            push(serde_json::to_value(s));
        }
        out
    }

    /// The objects as a multi-document YAML stream, as a user would `kubectl apply` it.
    pub fn to_yaml(&self) -> String {
        self.objects()
            .iter()
            .filter_map(|o| serde_saphyr::to_string(o).ok())
            .map(|y| format!("---\n{y}"))
            .collect()
    }

    /// How many notes of a kind there are.
    pub fn count(&self, kind: NoteKind) -> usize {
        self.notes.iter().filter(|n| n.kind == kind).count()
    }
}

/// Imports a document (YAML or JSON text). Never panics; an error says where and why.
pub fn import(text: &str, options: &ImportOptions) -> Result<Imported, ImportError> {
    let doc = document::parse(text)?;
    import_value(&doc, options)
}

/// Imports a parsed document.
pub fn import_value(doc: &Value, options: &ImportOptions) -> Result<Imported, ImportError> {
    let dialect = document::dialect(doc)?;
    let Some(root) = doc.as_object() else {
        return Err(ImportError::NotOpenApi {
            pointer: "#".into(),
            message: "not a mapping".into(),
        });
    };
    if !is_dns_label(&options.namespace) {
        return Err(ImportError::Options(format!(
            "namespace {:?} is not a DNS label",
            options.namespace
        )));
    }
    let api_name = match &options.api_name {
        Some(n) if is_dns_label(n) => n.clone(),
        Some(n) => {
            return Err(ImportError::Options(format!(
                "api name {n:?} is not a DNS label (lowercase letters, digits and '-', at most 63)"
            )));
        }
        None => {
            let title = doc.pointer("/info/title").and_then(Value::as_str);
            title
                .map(|t| slug(t, 40))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "api".into())
        }
    };
    if !root.contains_key("paths") && dialect != Dialect::Oas31 {
        return Err(ImportError::NotOpenApi {
            pointer: "/paths".into(),
            message: "`paths` is required".into(),
        });
    }
    let mut importer = Importer {
        doc,
        dialect,
        options,
        mapping: &options.mapping,
        notes: Notes::default(),
        api_name,
        http_api: is_http_api(doc),
        validators: BTreeMap::new(),
        schemes: BTreeMap::new(),
        used_schemes: BTreeSet::new(),
        authorizers: BTreeMap::new(),
        models: Vec::new(),
        model_names: BTreeSet::new(),
        route_names: BTreeSet::new(),
        route_settings: Vec::new(),
    };
    importer.top_level_keys(root);
    let api_spec = importer.api_spec(root);
    importer.security_schemes();
    let routes = importer.routes();
    importer.unused_schemes();
    let stage = importer.stage();
    let notes = importer.notes.into_sorted();
    if routes.is_empty() && has_operations(doc) {
        return Err(ImportError::NothingImported {
            notes: notes
                .into_iter()
                .filter(|n| n.kind != NoteKind::Ignored)
                .collect(),
        });
    }
    let security: Vec<Note> = notes
        .iter()
        .filter(|n| n.kind == NoteKind::Security)
        .cloned()
        .collect();
    if !security.is_empty() && !options.allow_insecure_drop {
        return Err(ImportError::Insecure { notes: security });
    }
    let mut api_spec = api_spec;
    api_spec.models = importer.models;
    // Every authorizer a scheme maps to is written, used or not, as API Gateway creates one
    // per scheme with an authorizer.
    let authorizers = importer.authorizers.into_values().collect();
    Ok(Imported {
        api: Api {
            metadata: meta(&importer.api_name, &options.namespace),
            spec: api_spec,
            status: None,
        },
        routes,
        authorizers,
        stage,
        notes,
    })
}

/// Whether the document has at least one operation.
fn has_operations(doc: &Value) -> bool {
    doc.get("paths")
        .and_then(Value::as_object)
        .is_some_and(|paths| {
            paths.values().filter_map(Value::as_object).any(|item| {
                item.keys()
                    .any(|k| METHODS.contains(&k.as_str()) || k == ANY_METHOD)
            })
        })
}

/// An HTTP API export (rather than a REST API one): the markers AWS writes only there.
fn is_http_api(doc: &Value) -> bool {
    if doc
        .get("x-amazon-apigateway-importexport-version")
        .is_some()
        || doc.get("x-amazon-apigateway-cors").is_some()
    {
        return true;
    }
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return false;
    };
    paths.values().filter_map(Value::as_object).any(|item| {
        item.values().any(|op| {
            op.pointer("/x-amazon-apigateway-integration/payloadFormatVersion")
                .is_some()
        })
    })
}

/// What a security scheme becomes.
#[derive(Debug, Clone)]
enum Scheme {
    /// `x-api-key`: the route requires an API key.
    ApiKey,
    /// An Authorizer (by name); `jwt` says whether scopes apply.
    Authorizer { name: String, jwt: bool },
    /// Cannot be mapped: using it is a security note.
    Unmapped { pointer: String, why: String },
}

struct Importer<'a> {
    doc: &'a Value,
    dialect: Dialect,
    options: &'a ImportOptions,
    mapping: &'a ImportMapping,
    notes: Notes,
    api_name: String,
    http_api: bool,
    /// Request validators by name: (validate body, validate parameters).
    validators: BTreeMap<String, (bool, bool)>,
    schemes: BTreeMap<String, Scheme>,
    used_schemes: BTreeSet<String>,
    authorizers: BTreeMap<String, Authorizer>,
    models: Vec<ModelSpec>,
    model_names: BTreeSet<String>,
    route_names: BTreeSet<String>,
    route_settings: Vec<RouteSettings>,
}

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];
const ANY_METHOD: &str = "x-amazon-apigateway-any-method";

impl Importer<'_> {
    fn top_level_keys(&mut self, root: &Map<String, Value>) {
        leftover_keys(
            root,
            "",
            &[
                "openapi",
                "swagger",
                "paths",
                "components",
                "definitions",
                "securityDefinitions",
                "security",
                "info",
                "servers",
                "basePath",
                "host",
                "schemes",
                "consumes",
                "parameters",
                "x-amazon-apigateway-api-key-source",
                "x-amazon-apigateway-binary-media-types",
                "x-amazon-apigateway-cors",
                "x-amazon-apigateway-gateway-responses",
                "x-amazon-apigateway-request-validators",
                "x-amazon-apigateway-request-validator",
                "x-amazon-apigateway-policy",
                "x-amazon-apigateway-endpoint-configuration",
                "x-amazon-apigateway-minimum-compression-size",
                cx::API,
            ],
            &[
                "tags",
                "externalDocs",
                "produces",
                "responses",
                "webhooks",
                "jsonSchemaDialect",
                "x-amazon-apigateway-importexport-version",
                "x-amazon-apigateway-documentation",
                "x-amazon-apigateway-tag-value",
            ],
            &mut self.notes,
        );
        if let Some(servers) = root.get("servers").and_then(Value::as_array) {
            for (i, s) in servers.iter().enumerate() {
                let url = s.get("url").and_then(Value::as_str).unwrap_or("");
                if !url.contains("execute-api") && !url.is_empty() && url != "/" {
                    self.notes.ignored(
                        &format!("/servers/{i}"),
                        "the Api is served at its own endpoint ({api}.{namespace}.{domain}/{stage}) and custom domains; server URLs are not carried over",
                    );
                }
            }
        }
        if root.contains_key("host") {
            self.notes.ignored(
                "/host",
                "the Api is served at its own endpoint and custom domains; the host is not carried over",
            );
        }
    }

    // ---------------------------------------------------------------- Api

    fn api_spec(&mut self, root: &Map<String, Value>) -> ApiSpec {
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

    fn request_validators(&mut self, v: &Value) {
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

    fn cors(&mut self, v: &Value) -> Option<CorsSpec> {
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

    fn gateway_responses(&mut self, v: &Value) -> Vec<GatewayResponseSpec> {
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

    fn policy(&mut self, v: &Value) -> Option<ResourcePolicy> {
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

    fn endpoint_configuration(&mut self, v: &Value, spec: &mut ApiSpec) {
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

    // ---------------------------------------------------------------- models

    fn import_models(&mut self) {
        let base = self.dialect.schemas_pointer();
        let Some(schemas) = self.doc.pointer(base).and_then(Value::as_object) else {
            return;
        };
        for (name, schema) in schemas {
            let at = child(base, name);
            if let Some(exact) = schema.get(cx::MODEL) {
                let mut exact = exact.clone();
                if let Some(o) = exact.as_object_mut() {
                    o.insert("name".into(), Value::String(name.clone()));
                }
                match serde_json::from_value::<ModelSpec>(exact) {
                    Ok(m) => {
                        self.model_names.insert(m.name.clone());
                        self.models.push(m);
                    }
                    Err(e) => self
                        .notes
                        .dropped(&child(&at, cx::MODEL), format!("not a model: {e}")),
                }
                continue;
            }
            if let Some(model) = self.model_schema(name, schema, &at) {
                self.model_names.insert(name.clone());
                self.models.push(ModelSpec {
                    name: name.clone(),
                    content_type: None,
                    schema: model,
                });
            }
        }
    }

    /// A self-contained JSON Schema for a named schema: references to other named schemas
    /// become `#/definitions/NAME`, and those schemas are copied into `definitions`.
    fn model_schema(&mut self, name: &str, schema: &Value, at: &str) -> Option<Value> {
        let base = self.dialect.schemas_pointer();
        let mut deps = BTreeSet::new();
        let mut root = schema.clone();
        if let Err(r) = rewrite_refs(&mut root, base, &mut deps) {
            self.notes.dropped(
                at,
                format!("model {name} refers to {r:?} outside this document's schemas; nothing is fetched, so the model is not carried over"),
            );
            return None;
        }
        let mut definitions = Map::new();
        let mut queue: Vec<String> = deps.iter().cloned().collect();
        let mut seen = deps.clone();
        while let Some(dep) = queue.pop() {
            if definitions.len() > 1000 {
                break;
            }
            let Some(target) = self.doc.pointer(&child(base, &dep)) else {
                self.notes.dropped(
                    at,
                    format!("model {name} refers to schema {dep:?}, which does not exist"),
                );
                return None;
            };
            let mut copy = target.clone();
            let mut more = BTreeSet::new();
            if rewrite_refs(&mut copy, base, &mut more).is_err() {
                self.notes.dropped(
                    at,
                    format!("model {name} depends on {dep:?}, which refers outside this document"),
                );
                return None;
            }
            if let Some(o) = copy.as_object_mut() {
                o.remove(cx::MODEL);
            }
            for m in more {
                if seen.insert(m.clone()) {
                    queue.push(m);
                }
            }
            definitions.insert(dep, copy);
        }
        if !definitions.is_empty()
            && let Some(o) = root.as_object_mut()
        {
            let entry = o
                .entry("definitions")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(d) = entry.as_object_mut() {
                for (k, v) in definitions {
                    d.entry(k).or_insert(v);
                }
            }
        }
        Some(root)
    }

    // ---------------------------------------------------------------- security

    fn security_schemes(&mut self) {
        let base = self.dialect.security_schemes_pointer();
        let Some(schemes) = self.doc.pointer(base).and_then(Value::as_object) else {
            return;
        };
        let schemes = schemes.clone();
        for (name, raw) in &schemes {
            let at = child(base, name);
            let Some((value, _)) = resolve(self.doc, raw, &at, &mut self.notes) else {
                self.schemes.insert(
                    name.clone(),
                    Scheme::Unmapped {
                        pointer: at.clone(),
                        why: "the scheme cannot be resolved".into(),
                    },
                );
                continue;
            };
            let value = value.clone();
            let scheme = self.scheme(name, &value, &at);
            self.schemes.insert(name.clone(), scheme);
        }
    }

    fn scheme(&mut self, name: &str, v: &Value, at: &str) -> Scheme {
        let unmapped = |why: String| Scheme::Unmapped {
            pointer: at.to_string(),
            why,
        };
        let Some(o) = v.as_object() else {
            return unmapped("a security scheme must be a mapping".into());
        };
        leftover_keys(
            o,
            at,
            &[
                "type",
                "name",
                "in",
                "scheme",
                "flows",
                "flow",
                "openIdConnectUrl",
                "authorizationUrl",
                "tokenUrl",
                "scopes",
                "x-amazon-apigateway-authtype",
                "x-amazon-apigateway-authorizer",
                cx::AUTHORIZER,
            ],
            &["description", "bearerFormat"],
            &mut self.notes,
        );
        let auth_name = format!("{}-{}", self.api_name, slug(name, 63));
        let auth_name = fit_name(&auth_name);
        if let Some(exact) = o.get(cx::AUTHORIZER) {
            let n = exact
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| is_dns_label(n) || is_dns_subdomain(n))
                .map(str::to_string)
                .unwrap_or(auth_name);
            let mut spec = exact.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(s) = spec.as_object_mut() {
                s.insert("apiRef".into(), serde_json::json!({"name": self.api_name}));
            }
            return match serde_json::from_value::<AuthorizerSpec>(spec) {
                Ok(spec) => {
                    let jwt = spec.type_ == AuthorizerType::Jwt;
                    self.add_authorizer(&n, spec);
                    Scheme::Authorizer { name: n, jwt }
                }
                Err(e) => unmapped(format!("{} is not an Authorizer spec: {e}", cx::AUTHORIZER)),
            };
        }
        let type_ = o.get("type").and_then(Value::as_str).unwrap_or("");
        let authtype = o
            .get("x-amazon-apigateway-authtype")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        if let Some(auth) = o.get("x-amazon-apigateway-authorizer") {
            let aat = child(at, "x-amazon-apigateway-authorizer");
            return match self.aws_authorizer(auth, &aat, o) {
                Ok(spec) => {
                    let jwt = spec.type_ == AuthorizerType::Jwt;
                    self.add_authorizer(&auth_name, spec);
                    Scheme::Authorizer {
                        name: auth_name,
                        jwt,
                    }
                }
                Err(why) => unmapped(why),
            };
        }
        if authtype == "awssigv4" || authtype == "aws_iam" {
            let (secret, region) = match &self.mapping.sigv4 {
                Some(t) => (t.credentials_secret.clone(), t.region.clone()),
                None => {
                    let secret = fit_name(&format!("{}-sigv4-credentials", self.api_name));
                    self.notes.dropped(
                        at,
                        format!("IAM identities and policies are not carried over: the SIGV4 authorizer checks access keys from Secret {secret:?} (create it, or name another in the mapping file's sigv4.credentialsSecret)"),
                    );
                    (secret, None)
                }
            };
            let spec = AuthorizerSpec {
                sigv4: Some(SigV4Spec {
                    region,
                    service: None,
                    credentials_secret_ref: SecretRef { name: secret },
                    max_skew_seconds: None,
                }),
                ..authorizer_spec(&self.api_name, AuthorizerType::Sigv4)
            };
            self.add_authorizer(&auth_name, spec);
            return Scheme::Authorizer {
                name: auth_name,
                jwt: false,
            };
        }
        if !authtype.is_empty() {
            return unmapped(format!(
                "x-amazon-apigateway-authtype {authtype:?} without an x-amazon-apigateway-authorizer"
            ));
        }
        match type_ {
            "apiKey" => {
                let header = o.get("in").and_then(Value::as_str) == Some("header");
                let key_name = o.get("name").and_then(Value::as_str).unwrap_or("");
                if header && key_name.eq_ignore_ascii_case("x-api-key") {
                    Scheme::ApiKey
                } else {
                    unmapped(format!(
                        "API keys are read from the x-api-key header only, not {key_name:?} in {:?}",
                        o.get("in").and_then(Value::as_str).unwrap_or("?")
                    ))
                }
            }
            "oauth2" | "openIdConnect" | "http" => match self.mapping.security_schemes.get(name) {
                Some(t) => {
                    let spec = AuthorizerSpec {
                        jwt: Some(JwtSpec {
                            issuer: t.issuer.clone(),
                            audiences: t.audiences.clone(),
                            jwks_uri: t.jwks_uri.clone(),
                            jwks_secret_ref: None,
                            algorithms: Vec::new(),
                            leeway_seconds: None,
                            allow_private_jwks: None,
                        }),
                        ..authorizer_spec(&self.api_name, AuthorizerType::Jwt)
                    };
                    self.add_authorizer(&auth_name, spec);
                    Scheme::Authorizer {
                        name: auth_name,
                        jwt: true,
                    }
                }
                None => unmapped(format!(
                    "a {type_} scheme has no AWS authorizer; name its JWT issuer in the mapping file (securitySchemes.{name}) to carry it over"
                )),
            },
            other => unmapped(format!("security scheme type {other:?} cannot be mapped")),
        }
    }

    /// Schemes that could not be mapped and that no operation uses: reported, harmlessly.
    fn unused_schemes(&mut self) {
        for (name, scheme) in &self.schemes {
            if let Scheme::Unmapped { pointer, why } = scheme
                && !self.used_schemes.contains(name)
            {
                self.notes.dropped(
                    pointer,
                    format!("no operation uses this scheme, which cannot be carried over: {why}"),
                );
            }
        }
    }

    fn add_authorizer(&mut self, name: &str, spec: AuthorizerSpec) {
        self.authorizers.insert(
            name.to_string(),
            Authorizer {
                metadata: meta(name, &self.options.namespace),
                spec,
                status: None,
            },
        );
    }

    /// `x-amazon-apigateway-authorizer` → an Authorizer spec, or why not.
    fn aws_authorizer(
        &mut self,
        v: &Value,
        at: &str,
        scheme: &Map<String, Value>,
    ) -> Result<AuthorizerSpec, String> {
        let o = v
            .as_object()
            .ok_or("x-amazon-apigateway-authorizer must be a mapping")?;
        leftover_keys(
            o,
            at,
            &[
                "type",
                "authorizerUri",
                "identitySource",
                "identityValidationExpression",
                "authorizerResultTtlInSeconds",
                "jwtConfiguration",
                "providerARNs",
                "enableSimpleResponses",
                "authorizerPayloadFormatVersion",
                "authorizerCredentials",
            ],
            &[],
            &mut self.notes,
        );
        if o.contains_key("authorizerCredentials") {
            self.notes.ignored(
                &child(at, "authorizerCredentials"),
                "the IAM role AWS assumes to invoke the function has no counterpart",
            );
        }
        let type_ = o
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let identity_source = self.identity_sources(
            o.get("identitySource"),
            scheme,
            &child(at, "identitySource"),
        );
        match type_.as_str() {
            "token" | "request" => {
                let uri = o
                    .get("authorizerUri")
                    .and_then(Value::as_str)
                    .ok_or("a Lambda authorizer without authorizerUri")?;
                let arn = lambda_arn(uri).ok_or_else(|| {
                    format!("authorizerUri {uri:?} does not name a Lambda function")
                })?;
                let target = self.mapping.function(&arn).cloned().ok_or_else(|| {
                    format!("Lambda authorizer {arn} is not in the mapping file's `lambda` section, so there is nothing to call")
                })?;
                let ttl = o
                    .get("authorizerResultTtlInSeconds")
                    .and_then(as_u64)
                    .map(|n| u32::try_from(n.min(3600)).unwrap_or(3600));
                let simple = o.get("enableSimpleResponses").and_then(Value::as_bool);
                let kind = if type_ == "token" {
                    AuthorizerType::Token
                } else {
                    AuthorizerType::Request
                };
                if o.contains_key("authorizerPayloadFormatVersion") {
                    self.notes.dropped(
                        &child(at, "authorizerPayloadFormatVersion"),
                        "the function receives Causeway's authorizer event, whatever payload format is asked for here; check that it reads that event",
                    );
                }
                Ok(AuthorizerSpec {
                    identity_source,
                    function: Some(FunctionAuthorizerSpec {
                        backend_ref: target.backend_ref.clone(),
                        uri: target.uri.clone(),
                        path: target.path.clone(),
                        timeout_millis: None,
                        result_ttl_seconds: ttl,
                        identity_validation_expression: o
                            .get("identityValidationExpression")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        response_format: match simple {
                            Some(true) => Some(AuthorizerResponseFormat::Simple),
                            _ if !self.http_api => Some(AuthorizerResponseFormat::Iam),
                            _ => None,
                        },
                    }),
                    ..authorizer_spec(&self.api_name, kind)
                })
            }
            "jwt" => {
                let c = o
                    .get("jwtConfiguration")
                    .and_then(Value::as_object)
                    .ok_or("a jwt authorizer without jwtConfiguration")?;
                let issuer = c
                    .get("issuer")
                    .and_then(Value::as_str)
                    .ok_or("jwtConfiguration without issuer")?;
                Ok(AuthorizerSpec {
                    identity_source,
                    jwt: Some(JwtSpec {
                        issuer: issuer.to_string(),
                        audiences: strings(c.get("audience")),
                        jwks_uri: None,
                        jwks_secret_ref: None,
                        algorithms: Vec::new(),
                        leeway_seconds: None,
                        allow_private_jwks: None,
                    }),
                    ..authorizer_spec(&self.api_name, AuthorizerType::Jwt)
                })
            }
            "cognito_user_pools" => {
                let arns = strings(o.get("providerARNs"));
                let first = arns
                    .first()
                    .ok_or("a cognito_user_pools authorizer without providerARNs")?;
                if arns.len() > 1 {
                    self.notes.dropped(
                        &child(at, "providerARNs"),
                        "one issuer per authorizer: tokens of the first user pool only are accepted",
                    );
                }
                let pool_id = first.rsplit('/').next().unwrap_or(first).to_string();
                let target = self
                    .mapping
                    .cognito
                    .get(first)
                    .or_else(|| self.mapping.cognito.get(&pool_id))
                    .cloned();
                let (issuer, audiences, jwks_uri) = match target {
                    Some(t) => (t.issuer, t.audiences, t.jwks_uri),
                    None => {
                        let region = pool_id.split('_').next().unwrap_or("");
                        if region.is_empty() || !pool_id.contains('_') {
                            return Err(format!(
                                "user pool {first:?} names no region; map it in the mapping file's `cognito` section"
                            ));
                        }
                        (
                            format!("https://cognito-idp.{region}.amazonaws.com/{pool_id}"),
                            Vec::new(),
                            None,
                        )
                    }
                };
                if audiences.is_empty() {
                    // AWS accepts a token from any app client of the pool; Causeway checks the
                    // audience (`aud`, or `client_id` of access tokens) so that a token minted
                    // for another client of the same pool does not pass.
                    return Err(format!(
                        "user pool {first:?}: name its app client ids as `audiences` in the mapping file's `cognito` section (a token for any client of the pool would pass otherwise)"
                    ));
                }
                Ok(AuthorizerSpec {
                    identity_source,
                    jwt: Some(JwtSpec {
                        issuer,
                        audiences,
                        jwks_uri,
                        jwks_secret_ref: None,
                        algorithms: vec!["RS256".into()],
                        leeway_seconds: None,
                        allow_private_jwks: None,
                    }),
                    ..authorizer_spec(&self.api_name, AuthorizerType::Jwt)
                })
            }
            other => Err(format!("authorizer type {other:?} cannot be mapped")),
        }
    }

    /// `method.request.header.Authorization, method.request.querystring.t` (REST) or
    /// `$request.header.Authorization` (HTTP) → Causeway identity sources.
    fn identity_sources(
        &mut self,
        v: Option<&Value>,
        scheme: &Map<String, Value>,
        at: &str,
    ) -> Vec<String> {
        let raw: Vec<String> = match v {
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(|s| s.trim().to_string()))
                .collect(),
            _ => {
                // REST TOKEN authorizers name their header in the scheme.
                match (
                    scheme.get("in").and_then(Value::as_str),
                    scheme.get("name").and_then(Value::as_str),
                ) {
                    (Some("header"), Some(n)) if !n.eq_ignore_ascii_case("authorization") => {
                        vec![format!("$request.header.{n}")]
                    }
                    _ => Vec::new(),
                }
            }
        };
        let mut out = Vec::new();
        for s in raw.into_iter().filter(|s| !s.is_empty()) {
            let source = if s.starts_with('$') {
                s
            } else if let Some(r) = s.strip_prefix("method.request.") {
                format!("$request.{r}")
            } else {
                format!("${s}")
            };
            if source.starts_with("$request.header.") || source.starts_with("$request.querystring.")
            {
                out.push(source);
            } else {
                self.notes.dropped(
                    at,
                    format!("identity source {source:?} is not supported (headers and query strings are); the function still receives the whole request"),
                );
            }
        }
        out
    }

    // ---------------------------------------------------------------- routes

    fn routes(&mut self) -> Vec<Route> {
        let mut routes = Vec::new();
        let Some(paths) = self.doc.get("paths").and_then(Value::as_object) else {
            return routes;
        };
        let doc = self.doc;
        let top_security = doc.get("security");
        let default_validator = doc
            .get("x-amazon-apigateway-request-validator")
            .and_then(Value::as_str)
            .map(str::to_string);
        for (path, raw_item) in paths {
            let at = child("/paths", path);
            if path.starts_with("x-") {
                self.notes
                    .ignored(&at, "a vendor extension Causeway does not read");
                continue;
            }
            let Some((item, _)) = resolve(doc, raw_item, &at, &mut self.notes) else {
                continue;
            };
            let Some(item) = item.as_object() else {
                self.notes.dropped(&at, "a path item must be a mapping");
                continue;
            };
            let mut handled: Vec<&str> = METHODS.to_vec();
            handled.extend([ANY_METHOD, "parameters", "$ref", "trace"]);
            leftover_keys(
                item,
                &at,
                &handled,
                &["summary", "description", "servers"],
                &mut self.notes,
            );
            if item.contains_key("trace") {
                self.notes
                    .dropped(&child(&at, "trace"), "TRACE routes are not supported");
            }
            let params = match check_path(path) {
                Ok(p) => p,
                Err(why) => {
                    self.notes.dropped(
                        &at,
                        format!("the path cannot be a Causeway route: {why}; its operations are not carried over"),
                    );
                    continue;
                }
            };
            let item_params = item.get("parameters");
            for method in METHODS.iter().chain([&ANY_METHOD]) {
                let Some(op) = item.get(*method) else {
                    continue;
                };
                let op_at = child(&at, method);
                let verb = if *method == ANY_METHOD {
                    "ANY".to_string()
                } else {
                    method.to_ascii_uppercase()
                };
                let route_key = if path == "/$default" {
                    if verb != "ANY" {
                        self.notes.dropped(
                            &op_at,
                            "$default routes take every method; use x-amazon-apigateway-any-method",
                        );
                        continue;
                    }
                    "$default".to_string()
                } else {
                    format!("{verb} {path}")
                };
                if let Some(route) = self.route(
                    op,
                    &op_at,
                    &route_key,
                    &params,
                    item_params,
                    top_security,
                    default_validator.as_deref(),
                ) {
                    routes.push(route);
                }
            }
        }
        routes
    }

    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        op: &Value,
        at: &str,
        route_key: &str,
        params: &[String],
        item_params: Option<&Value>,
        top_security: Option<&Value>,
        default_validator: Option<&str>,
    ) -> Option<Route> {
        let Some(o) = op.as_object() else {
            self.notes.dropped(at, "an operation must be a mapping");
            return None;
        };
        let name = self.route_name(o.get("operationId").and_then(Value::as_str), route_key);
        if let Some(exact) = o.get(cx::ROUTE) {
            let mut spec = exact.clone();
            if let Some(s) = spec.as_object_mut() {
                s.insert("apiRef".into(), serde_json::json!({"name": self.api_name}));
                s.insert("routeKey".into(), Value::String(route_key.to_string()));
            }
            return match serde_json::from_value::<RouteSpec>(spec) {
                Ok(spec) => Some(Route {
                    metadata: meta(&name, &self.options.namespace),
                    spec,
                    status: None,
                }),
                Err(e) => {
                    self.notes
                        .dropped(&child(at, cx::ROUTE), format!("not a Route spec: {e}"));
                    None
                }
            };
        }
        leftover_keys(
            o,
            at,
            &[
                "x-amazon-apigateway-integration",
                "security",
                "parameters",
                "requestBody",
                "consumes",
                "x-amazon-apigateway-request-validator",
                "x-amazon-apigateway-auth",
                "isDefaultRoute",
            ],
            &[
                "summary",
                "description",
                "operationId",
                "tags",
                "responses",
                "externalDocs",
                "deprecated",
                "produces",
                "schemes",
                "x-amazon-apigateway-documentation",
            ],
            &mut self.notes,
        );
        let integration_at = child(at, "x-amazon-apigateway-integration");
        let integration = match o.get("x-amazon-apigateway-integration") {
            Some(raw) => {
                let (v, iat) = resolve(self.doc, raw, &integration_at, &mut self.notes)?;
                let v = v.clone();
                self.integration(&v, &iat, route_key, params)?
            }
            None => match &self.mapping.default_integration {
                Some(i) => i.clone(),
                None => {
                    self.notes.dropped(
                        at,
                        "no x-amazon-apigateway-integration (and no defaultIntegration in the mapping file): the operation is not carried over",
                    );
                    return None;
                }
            },
        };
        let mut spec = RouteSpec {
            api_ref: ApiRef {
                name: self.api_name.clone(),
            },
            route_key: route_key.to_string(),
            integration,
            authorizer_ref: None,
            authorization_scopes: Vec::new(),
            api_key_required: None,
            request_validation: None,
            route_response_selection_expression: None,
        };
        // Security: the operation's own, else the document's.
        let (security, sat) = match o.get("security") {
            Some(s) => (Some(s), child(at, "security")),
            None => (top_security, "/security".to_string()),
        };
        if let Some(security) = security {
            self.route_security(security, &sat, &mut spec);
        }
        if let Some(auth) = o.get("x-amazon-apigateway-auth") {
            let aat = child(at, "x-amazon-apigateway-auth");
            match auth.get("type").and_then(Value::as_str).map(str::to_ascii_uppercase) {
                Some(t) if t == "NONE" => {}
                _ => self.notes.security(
                    &aat,
                    "only type NONE is understood here; name an awsSigv4 security scheme for IAM authorization",
                ),
            }
        }
        // Request validation (only where a validator applies, as in API Gateway).
        let validator = match o.get("x-amazon-apigateway-request-validator") {
            Some(v) => v.as_str().map(str::to_string),
            None => default_validator.map(str::to_string),
        };
        let flags = match validator {
            None => None,
            Some(v) => match self.validators.get(&v) {
                Some(f) => Some(*f),
                None => {
                    self.notes.dropped(
                        &child(at, "x-amazon-apigateway-request-validator"),
                        format!("no request validator named {v:?} in x-amazon-apigateway-request-validators"),
                    );
                    None
                }
            },
        };
        spec.request_validation = self.validation(o, at, item_params, flags, &name);
        // Cache key parameters go to the stage's route settings.
        if let Some(keys) = o
            .get("x-amazon-apigateway-integration")
            .and_then(|i| i.get("cacheKeyParameters"))
        {
            let kat = child(&integration_at, "cacheKeyParameters");
            let mut out = Vec::new();
            for k in strings(Some(keys)) {
                if let Some(q) = k.strip_prefix("method.request.querystring.") {
                    out.push(format!("querystring.{q}"));
                } else if let Some(h) = k.strip_prefix("method.request.header.") {
                    out.push(format!("header.{h}"));
                } else if k.starts_with("method.request.path.") {
                    // The path is always part of the cache key.
                } else {
                    self.notes
                        .dropped(&kat, format!("cache key parameter {k:?} is not supported"));
                }
            }
            if !out.is_empty() {
                self.route_settings.push(RouteSettings {
                    route_key: route_key.to_string(),
                    throttle: None,
                    caching_enabled: None,
                    cache_ttl_seconds: None,
                    cache_key_parameters: out,
                    cache_invalidation: None,
                });
            }
        }
        Some(Route {
            metadata: meta(&name, &self.options.namespace),
            spec,
            status: None,
        })
    }

    fn route_name(&mut self, operation_id: Option<&str>, route_key: &str) -> String {
        let base = match operation_id.map(|o| slug(&kebab(o), 63)) {
            Some(s) if !s.is_empty() => format!("{}-{s}", self.api_name),
            _ => {
                let key = if route_key == "$default" {
                    "default".to_string()
                } else {
                    route_key.to_ascii_lowercase()
                };
                format!("{}-{}", self.api_name, slug(&key, 63))
            }
        };
        let mut name = fit_name(&base);
        let mut n = 2;
        while !self.route_names.insert(name.clone()) {
            name = fit_name(&format!("{base}-{n}"));
            n += 1;
        }
        name
    }

    fn route_security(&mut self, security: &Value, at: &str, spec: &mut RouteSpec) {
        let Some(alternatives) = security.as_array() else {
            self.notes
                .security(at, "`security` must be a list of requirements");
            return;
        };
        let mut chosen = None;
        for (i, alt) in alternatives.iter().enumerate() {
            let Some(o) = alt.as_object() else {
                self.notes
                    .security(&format!("{at}/{i}"), "a requirement must be a mapping");
                continue;
            };
            if o.is_empty() {
                continue;
            }
            if chosen.is_none() {
                chosen = Some((i, o));
            } else {
                self.notes.dropped(
                    &format!("{at}/{i}"),
                    "a route has one way to authorize: only the first requirement is used, so callers using this one are refused",
                );
            }
        }
        let Some((i, requirement)) = chosen else {
            return;
        };
        for (scheme_name, scopes) in requirement {
            let rat = child(&format!("{at}/{i}"), scheme_name);
            let scopes = strings(Some(scopes));
            self.used_schemes.insert(scheme_name.clone());
            match self.schemes.get(scheme_name).cloned() {
                Some(Scheme::ApiKey) => spec.api_key_required = Some(true),
                Some(Scheme::Authorizer { name, jwt }) => {
                    if let Some(existing) = &spec.authorizer_ref {
                        self.notes.security(
                            &rat,
                            format!(
                                "a route has one authorizer; {} is already required",
                                existing.name
                            ),
                        );
                        continue;
                    }
                    spec.authorizer_ref = Some(ObjectRef {
                        name,
                        namespace: None,
                    });
                    if jwt {
                        spec.authorization_scopes = scopes;
                    } else if !scopes.is_empty() {
                        self.notes
                            .security(&rat, "scopes apply to JWT and Cognito authorizers only");
                    }
                }
                Some(Scheme::Unmapped { pointer, why }) => self.notes.security(
                    &rat,
                    format!(
                        "security scheme {scheme_name:?} ({pointer}) cannot be carried over: {why}"
                    ),
                ),
                None => self.notes.security(
                    &rat,
                    format!("no security scheme named {scheme_name:?} is defined"),
                ),
            }
        }
    }

    fn validation(
        &mut self,
        op: &Map<String, Value>,
        at: &str,
        item_params: Option<&Value>,
        flags: Option<(bool, bool)>,
        route_name: &str,
    ) -> Option<RequestValidationSpec> {
        let mut spec = RequestValidationSpec::default();
        let mut bodies: Vec<(String, Value, String)> = Vec::new();
        // Parameters: the path item's, overridden by the operation's (by name and location).
        let mut merged: BTreeMap<(String, String), (Value, String)> = BTreeMap::new();
        let doc = self.doc;
        let path_at = at
            .rsplit_once('/')
            .map(|(p, _)| p)
            .unwrap_or(at)
            .to_string();
        for (list, list_at) in [
            (item_params, child(&path_at, "parameters")),
            (op.get("parameters"), child(at, "parameters")),
        ] {
            let Some(list) = list.and_then(Value::as_array) else {
                continue;
            };
            for (i, raw) in list.iter().enumerate() {
                let pat = format!("{list_at}/{i}");
                let Some((p, rat)) = resolve(doc, raw, &pat, &mut self.notes) else {
                    continue;
                };
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                let location = p.get("in").and_then(Value::as_str).unwrap_or("");
                merged.insert((location.to_string(), name.to_string()), (p.clone(), rat));
            }
        }
        let consumes = strings(op.get("consumes").or_else(|| doc.get("consumes")));
        for ((location, name), (p, pat)) in &merged {
            let required = p.get("required").and_then(Value::as_bool) == Some(true);
            match location.as_str() {
                "query" if required => spec.required_query_strings.push(name.clone()),
                "header" if required => spec.required_headers.push(name.clone()),
                "query" | "header" | "path" => {}
                "body" => {
                    if let Some(schema) = p.get("schema") {
                        let types = if consumes.is_empty() {
                            vec!["application/json".to_string()]
                        } else {
                            consumes.clone()
                        };
                        for t in types {
                            bodies.push((t, schema.clone(), child(pat, "schema")));
                        }
                    }
                }
                "cookie" | "formData" => {
                    if flags.is_some() {
                        self.notes
                            .dropped(pat, format!("{location} parameters are not validated"));
                    }
                }
                other => self.notes.dropped(
                    pat,
                    format!("parameter location {other:?} is not supported"),
                ),
            }
        }
        if let Some(raw) = op.get("requestBody") {
            let bat = child(at, "requestBody");
            if let Some((body, bat)) = resolve(doc, raw, &bat, &mut self.notes)
                && let Some(content) = body.get("content").and_then(Value::as_object)
            {
                for (ct, media) in content {
                    if let Some(schema) = media.get("schema") {
                        bodies.push((
                            ct.clone(),
                            schema.clone(),
                            child(&child(&child(&bat, "content"), ct), "schema"),
                        ));
                    }
                }
            }
        }
        let Some((validate_body, validate_params)) = flags else {
            if !spec.required_query_strings.is_empty()
                || !spec.required_headers.is_empty()
                || !bodies.is_empty()
            {
                self.notes.ignored(
                    at,
                    "no request validator applies to this operation: API Gateway does not validate its parameters or body either",
                );
            }
            return None;
        };
        if validate_body {
            for (i, (ct, schema, sat)) in bodies.into_iter().enumerate() {
                let model = self.body_model(&schema, &sat, route_name, i);
                if let Some(m) = model {
                    spec.models.insert(ct, m);
                }
            }
        }
        if !validate_params {
            spec.required_query_strings.clear();
            spec.required_headers.clear();
        }
        if spec.models.is_empty()
            && spec.required_query_strings.is_empty()
            && spec.required_headers.is_empty()
        {
            return None;
        }
        spec.validate_body = Some(validate_body);
        spec.validate_parameters = Some(validate_params);
        Some(spec)
    }

    /// The model a body schema names (a `$ref` to a named schema), or a new model for an
    /// inline schema.
    fn body_model(
        &mut self,
        schema: &Value,
        at: &str,
        route_name: &str,
        index: usize,
    ) -> Option<String> {
        let base = self.dialect.schemas_pointer();
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = r
                .strip_prefix('#')
                .and_then(|p| p.strip_prefix(base))
                .and_then(|p| p.strip_prefix('/'))
                .map(|n| n.replace("~1", "/").replace("~0", "~"));
            return match target {
                Some(n) if self.model_names.contains(&n) => Some(n),
                _ => {
                    self.notes.dropped(
                        at,
                        format!("the body schema {r:?} is not an imported model: the body is not validated"),
                    );
                    None
                }
            };
        }
        let name = if index == 0 {
            format!("{route_name}-body")
        } else {
            format!("{route_name}-body-{index}")
        };
        let schema = self.model_schema(&name, schema, at)?;
        self.model_names.insert(name.clone());
        self.models.push(ModelSpec {
            name: name.clone(),
            content_type: None,
            schema,
        });
        Some(name)
    }

    // ---------------------------------------------------------------- integrations

    fn integration(
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
    fn mapping_fields(&mut self, o: &Map<String, Value>, at: &str, spec: &mut IntegrationSpec) {
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
    fn http_target(
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
    fn http_responses(
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
    fn request_parameters(
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
    fn http_api_response_parameters(
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
    fn mock(
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

    // ---------------------------------------------------------------- stage

    fn stage(&mut self) -> Option<Stage> {
        let name = match &self.options.stage {
            StageChoice::None => {
                for s in std::mem::take(&mut self.route_settings) {
                    self.notes.dropped(
                        "/paths",
                        format!("cache key parameters of {} belong to a Stage's routeSettings; no Stage is written", s.route_key),
                    );
                }
                return None;
            }
            StageChoice::Named(n) => n.clone(),
            StageChoice::FromDocument => document_stage(self.doc).unwrap_or_else(|| "prod".into()),
        };
        Some(Stage {
            metadata: meta(
                &fit_name(&format!("{}-{}", self.api_name, slug(&name, 63))),
                &self.options.namespace,
            ),
            spec: StageSpec {
                api_ref: ApiRef {
                    name: self.api_name.clone(),
                },
                stage_name: Some(name),
                description: None,
                deployment_id: None,
                auto_deploy: Some(true),
                variables: BTreeMap::new(),
                throttle: None,
                route_settings: std::mem::take(&mut self.route_settings),
                canary: None,
                cache: None,
                access_log: None,
                domains: Vec::new(),
            },
            status: None,
        })
    }
}

/// The stage an AWS export names: OpenAPI 3 `servers[0].variables.basePath.default`, or
/// Swagger `basePath`, when it is a valid stage name.
fn document_stage(doc: &Value) -> Option<String> {
    let candidate = doc
        .pointer("/servers/0/variables/basePath/default")
        .and_then(Value::as_str)
        .or_else(|| doc.get("basePath").and_then(Value::as_str))?;
    let s = candidate.trim_matches('/');
    (!s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    .then(|| s.to_string())
}

fn apply_function(spec: &mut IntegrationSpec, target: &FunctionTarget) {
    spec.backend_ref = target.backend_ref.clone();
    spec.uri = target.uri.clone();
    spec.path = target.path.clone();
}

/// The Lambda function ARN in an integration or authorizer URI: either the ARN itself, or
/// `arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/ARN/invocations`.
pub(crate) fn lambda_arn(uri: &str) -> Option<String> {
    let arn = match uri.split_once(":lambda:path/") {
        Some((_, rest)) => {
            let after = rest.split_once("/functions/")?.1;
            after.strip_suffix("/invocations").unwrap_or(after)
        }
        None => uri,
    };
    (arn.starts_with("arn:") && function_name(arn).is_some()).then(|| arn.to_string())
}

/// A `'quoted'` literal (API Gateway's syntax for constant values), unquoted.
fn literal(v: &str) -> Option<String> {
    let inner = v.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.to_string())
}

/// Whether a template uses Velocity directives.
fn has_vtl_directives(t: &str) -> bool {
    [
        "#set", "#if", "#foreach", "#else", "#end", "$input", "$util",
    ]
    .iter()
    .any(|d| t.contains(d))
}

/// `/pets/{id}/{proxy+}` → the parameter names, or why the path is not a route path.
fn check_path(path: &str) -> Result<Vec<String>, String> {
    if path == "/$default" {
        return Ok(Vec::new());
    }
    if !path.starts_with('/') {
        return Err("a path must start with '/'".into());
    }
    if path == "/" {
        return Ok(Vec::new());
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut params = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        if seg.is_empty() {
            return Err("empty path segment".into());
        }
        if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "parameter {seg:?} must be {{name}} or {{name+}} with letters, digits or '_'"
                ));
            }
            if greedy && i + 1 != segments.len() {
                return Err(format!("greedy {seg:?} must be the last segment"));
            }
            params.push(name.to_string());
        } else if seg.contains('{') || seg.contains('}') {
            return Err(format!(
                "segment {seg:?} mixes text and a parameter; a parameter is a whole segment"
            ));
        } else if seg.contains(char::is_whitespace) {
            return Err(format!("segment {seg:?} contains whitespace"));
        }
    }
    Ok(params)
}

/// The path of an http(s) URL (after the authority, before `?`).
fn url_path(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://")?.1;
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
    Some(path.split('?').next().unwrap_or(""))
}

/// Rewrites `$ref`s to named schemas as `#/definitions/NAME` (collecting the names); API
/// Gateway's model URLs (`https://apigateway.amazonaws.com/restapis/ID/models/NAME`) too.
/// Err with the reference that points outside the document's schemas.
fn rewrite_refs(v: &mut Value, base: &str, deps: &mut BTreeSet<String>) -> Result<(), String> {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                let prefix = format!("#{base}/");
                let rest = if let Some(rest) = r.strip_prefix(&prefix) {
                    Some(rest.to_string())
                } else if let Some(rest) = r.strip_prefix("#/definitions/") {
                    Some(rest.to_string())
                } else if r.starts_with("https://apigateway.amazonaws.com/restapis/") {
                    r.split_once("/models/").map(|(_, n)| n.to_string())
                } else if r.starts_with('#') {
                    None
                } else {
                    return Err(r.clone());
                };
                if let Some(rest) = rest {
                    let first = rest.split('/').next().unwrap_or("").to_string();
                    let decoded = first.replace("~1", "/").replace("~0", "~");
                    *r = format!("#/definitions/{rest}");
                    deps.insert(decoded);
                }
            }
            for (k, child) in o.iter_mut() {
                if k == "$ref" {
                    continue;
                }
                rewrite_refs(child, base, deps)?;
            }
            Ok(())
        }
        Value::Array(a) => a.iter_mut().try_for_each(|x| rewrite_refs(x, base, deps)),
        _ => Ok(()),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// A number, or a string holding one (AWS exports write both).
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `1.2.3.4` → `1.2.3.4/32` (IAM accepts bare addresses; Causeway's policy takes CIDRs).
fn cidr(s: &str) -> String {
    if s.contains('/') {
        s.to_string()
    } else if s.contains(':') {
        format!("{s}/128")
    } else {
        format!("{s}/32")
    }
}

fn empty_api_spec() -> ApiSpec {
    ApiSpec {
        protocol: None,
        api_type: None,
        description: None,
        execute_api_endpoint: None,
        disable_execute_api_endpoint: None,
        api_key_source: None,
        policy: None,
        gateway_responses: Vec::new(),
        cors: None,
        binary_media_types: Vec::new(),
        max_body_bytes: None,
        models: Vec::new(),
        route_selection_expression: None,
        api_key_selection_expression: None,
        connections_authorizer_ref: None,
        definition: None,
    }
}

fn authorizer_spec(api: &str, type_: AuthorizerType) -> AuthorizerSpec {
    AuthorizerSpec {
        api_ref: ApiRef {
            name: api.to_string(),
        },
        type_,
        identity_source: Vec::new(),
        jwt: None,
        function: None,
        sigv4: None,
        service_account: None,
        mtls: None,
        forward_headers: BTreeMap::new(),
    }
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        ..ObjectMeta::default()
    }
}

/// `getPetById` → `get-pet-by-id`.
fn kebab(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('-');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c);
    }
    out
}

/// Lowercase letters, digits and single dashes, at most `max` characters.
pub(crate) fn slug(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_string();
    out.truncate(max);
    out.trim_end_matches('-').to_string()
}

/// A DNS label of at most 63 characters: long names keep a hash of the whole.
fn fit_name(s: &str) -> String {
    let s = s.trim_matches('-');
    if s.len() <= 63 {
        return s.to_string();
    }
    let hash = hex::encode(Sha256::digest(s.as_bytes()));
    let head = s[..52].trim_end_matches('-');
    format!("{head}-{}", &hash[..10])
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_arns_are_found_in_both_uri_shapes() {
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:GetPets";
        assert_eq!(
            lambda_arn(&format!(
                "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations"
            ))
            .as_deref(),
            Some(arn)
        );
        assert_eq!(lambda_arn(arn).as_deref(), Some(arn));
        assert_eq!(
            lambda_arn("arn:aws:apigateway:us-east-1:dynamodb:action/PutItem"),
            None
        );
    }

    #[test]
    fn paths_with_partial_parameters_or_inner_greedy_ones_are_refused() {
        assert_eq!(check_path("/pets/{id}"), Ok(vec!["id".to_string()]));
        assert_eq!(check_path("/{proxy+}"), Ok(vec!["proxy".to_string()]));
        assert!(check_path("/files/{name}.json").is_err());
        assert!(check_path("/{proxy+}/x").is_err());
        assert!(check_path("pets").is_err());
    }

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(slug("Pet Store (v2)", 63), "pet-store-v2");
        assert_eq!(kebab("getPetById"), "get-Pet-By-Id");
        assert_eq!(fit_name(&"a".repeat(80)).len(), 63);
    }
}
