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

mod extensions;
mod integrations;
mod method;
mod models;
mod security;

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
                "operationId",
                "responses",
            ],
            &[
                "summary",
                "description",
                "tags",
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
            method: None,
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
        let mut declared = BTreeMap::new();
        spec.request_validation = self.validation(o, at, item_params, flags, &name, &mut declared);
        spec.method = self.method(o, at, declared);
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

    fn validation(
        &mut self,
        op: &Map<String, Value>,
        at: &str,
        item_params: Option<&Value>,
        flags: Option<(bool, bool)>,
        route_name: &str,
        declared: &mut BTreeMap<String, bool>,
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
            let source = match location.as_str() {
                "query" => Some("querystring"),
                "header" => Some("header"),
                "path" => Some("path"),
                _ => None,
            };
            if let Some(source) = source
                && !name.is_empty()
            {
                declared.insert(
                    format!("method.request.{source}.{name}"),
                    required || source == "path",
                );
            }
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
