//! Routes: route keys, duplicates and conflicts within an Api, and integrations.
//!
//! Routes of one Api are taken oldest first; a route whose key another accepted route already
//! has gets `DuplicateRouteKey`, one whose path a router cannot hold next to the accepted ones
//! (`/pets/{id}` beside `/pets/{name}` for the same method) gets `ConflictingRoute`. Conflicts are
//! found by building the proxy's own [`causeway_snapshot::RouteTable`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use causeway_crds::Route;
use causeway_crds::api::{ApiProtocol, ApiType, ModelSpec};
use causeway_crds::route::{BackendScheme, IntegrationSpec, IntegrationType, PayloadFormatVersion};
use causeway_snapshot::mapping::MappingSide;
use causeway_snapshot::{
    DEFAULT_INTEGRATION_TIMEOUT_MS, LAMBDA_INVOKE_PATH, MAX_INTEGRATION_TIMEOUT_MS, PayloadFormat,
    RouteConflict, RouteMatch, Template, UpstreamScheme,
};

use super::Input;
use super::authorizer::{self, Authorizers};
use super::backend::{Cluster, OriginGrant};
use super::deployment::{DefIntegration, DefRoute, DefTarget};
use super::memo::{ApiRoutes, Fp};
use super::templates::{compile_mapping, has_mapping};
use super::text::{
    parse_origin, parse_route_key, split_uri, stage_variables, without_stage_variables,
};
use super::{Apis, ObjKey, Problem, Verdict, age_cmp, api_ref_problem, cel};
use crate::reasons;
use crate::status::{Kind, StatusDetail};

/// The shortest integration timeout.
const MIN_INTEGRATION_TIMEOUT_MS: u32 = 50;

/// Compiles every Route, grouped by the Api it names, and each accepted Api's current
/// deployment; pushes a status per Route. An Api whose routes and context (`context`: the
/// fingerprint of everything else a route reads) are as in `memo` is reused from there.
pub(crate) fn compile_routes(
    inventory: &Input<'_>,
    apis: &Apis,
    cluster: &Cluster<'_>,
    authorizers: &Authorizers,
    context: u64,
    memo: &mut HashMap<ObjKey, (u64, Arc<ApiRoutes>)>,
    keep: bool,
) -> BTreeMap<ObjKey, Arc<ApiRoutes>> {
    // Grouped by borrowed `(namespace, Api)`: two Strings per Route per compile were most of
    // the grouping's cost.
    let mut by_api: BTreeMap<(&str, &str), Vec<&Route>> = apis
        .iter()
        .filter(|(_, e)| e.compiled.is_ok())
        .map(|(k, _)| ((k.0.as_str(), k.1.as_str()), Vec::new()))
        .collect();
    for route in &inventory.routes {
        let namespace = route.metadata.namespace.as_deref().unwrap_or("default");
        by_api
            .entry((namespace, route.spec.api_ref.name.as_str()))
            .or_default()
            .push(route);
    }
    let mut out = BTreeMap::new();
    for ((namespace, api), mut routes) in by_api {
        let api_key: ObjKey = (namespace.to_string(), api.to_string());
        routes.sort_by(|a, b| age_cmp(&a.metadata, &b.metadata));
        let mut fp = Fp::default();
        fp.add(context).add(&api_key);
        fp.objects(routes.iter().copied(), |r| &r.metadata);
        let key = fp.finish();
        let compiled = match memo.get(&api_key) {
            Some((k, hit)) if *k == key => Arc::clone(hit),
            _ => {
                let fresh = Arc::new(compile_api_routes(
                    &api_key,
                    &routes,
                    apis,
                    cluster,
                    authorizers,
                ));
                if keep {
                    memo.insert(api_key.clone(), (key, Arc::clone(&fresh)));
                }
                fresh
            }
        };
        out.insert(api_key, compiled);
    }
    memo.retain(|k, _| out.contains_key(k));
    out
}

/// The routes of one Api (oldest first): statuses, and the Api's current deployment.
fn compile_api_routes(
    api_key: &ObjKey,
    routes: &[&Route],
    apis: &Apis,
    cluster: &Cluster<'_>,
    authorizers: &Authorizers,
) -> ApiRoutes {
    // A definition route is large: growing the list by doubling copied each one several times.
    let mut accepted = Vec::with_capacity(routes.len());
    let mut statuses = Vec::with_capacity(routes.len());
    let mut table = RouteTable::default();
    let entry = apis.get(api_key);
    let models = entry
        .map(|e| e.object.spec.models.as_slice())
        .unwrap_or_default();
    let api_type = entry.and_then(|e| e.object.spec.api_type);
    let websocket = entry.is_some_and(|e| e.object.spec.protocol == Some(ApiProtocol::Websocket));
    let api_problem = api_ref_problem(apis, &api_key.0, &api_key.1);
    for route in routes {
        let mut verdict = Verdict::default();
        if let Some(p) = &api_problem {
            verdict.add(p.clone());
        }
        let compiled = verdict.check(compile_route(
            route,
            api_key,
            models,
            api_type,
            websocket,
            cluster,
            authorizers,
        ));
        if verdict.is_ok() {
            for note in api_type_notes(route, api_type)
                .into_iter()
                .chain(method_notes(route, models))
            {
                verdict.note(note);
            }
        }
        if let Some((def, matcher)) = compiled
            && verdict.is_ok()
            && verdict.check(table.add(&def.key, &matcher)).is_some()
        {
            accepted.push(def);
        }
        statuses.push(verdict.into_status(Kind::Route, &route.metadata, StatusDetail::None));
    }
    accepted.sort_by(|a, b| a.key.cmp(&b.key));
    let route_count = u32::try_from(accepted.len()).unwrap_or(u32::MAX);
    let deployment = entry
        .and_then(|e| super::deployment::current_of(api_key, e, accepted))
        .map(Arc::new);
    ApiRoutes {
        statuses,
        route_count,
        deployment,
    }
}

/// The routes of one Api taken so far: their keys, and the very table the proxy will build, so
/// that a route the proxy could not hold is rejected here, naming its Route object.
#[derive(Default)]
struct RouteTable {
    keys: BTreeSet<String>,
    table: causeway_snapshot::RouteTable<()>,
}

impl RouteTable {
    /// Takes a route, or says why it cannot be taken.
    fn add(&mut self, key: &str, matcher: &RouteMatch) -> Result<(), Problem> {
        if self.keys.contains(key) {
            return Err(Problem::invalid(
                reasons::DUPLICATE_ROUTE_KEY,
                format!(
                    "spec.routeKey: an older Route of the same Api already has route key {key:?}"
                ),
            ));
        }
        self.table.try_add(key, matcher, ()).map_err(|conflict| {
            let message = match conflict {
                RouteConflict::Duplicate { other } | RouteConflict::Conflict { other } => format!(
                    "spec.routeKey: the path of {key:?} conflicts with the older route {other:?} of the same Api"
                ),
                RouteConflict::Invalid(e) => format!("spec.routeKey: {key:?}: {e}"),
            };
            Problem::invalid(reasons::CONFLICTING_ROUTE, message)
        })?;
        self.keys.insert(key.to_string());
        Ok(())
    }
}

/// Checks one Route on its own (everything but duplicates and conflicts).
fn compile_route(
    route: &Route,
    (namespace, api): &ObjKey,
    models: &[ModelSpec],
    api_type: Option<ApiType>,
    websocket: bool,
    cluster: &Cluster<'_>,
    authorizers: &Authorizers,
) -> Result<(DefRoute, RouteMatch), Problem> {
    cel::check_route(route)?;
    let spec = &route.spec;
    let parsed = if websocket {
        super::websocket::check_route(spec)?
    } else {
        if spec.route_response_selection_expression.is_some() {
            return Err(Problem::invalid(
                reasons::INVALID,
                "spec.routeResponseSelectionExpression is for routes of WebSocket Apis only",
            ));
        }
        parse_route_key(&spec.route_key).map_err(|e| {
            Problem::invalid(reasons::INVALID_ROUTE_KEY, format!("spec.routeKey: {e}"))
        })?
    };
    let authorization = match &spec.authorizer_ref {
        Some(r) => Some(authorizer::resolve(
            authorizers,
            namespace,
            api,
            r,
            &spec.authorization_scopes,
        )?),
        None if !spec.authorization_scopes.is_empty() => {
            return Err(Problem::invalid(
                reasons::INVALID,
                "spec.authorizationScopes: scopes need an authorizerRef",
            ));
        }
        None => None,
    };
    let integration = compile_integration(
        &spec.integration,
        namespace,
        &parsed.params,
        api_type,
        cluster,
    )?;
    let validation =
        super::validation::compile_validation(spec.request_validation.as_ref(), models)?;
    Ok((
        DefRoute {
            key: spec.route_key.clone(),
            integration,
            api_key_required: spec.api_key_required.unwrap_or(false),
            validation,
            authorization,
            websocket,
            two_way: spec.route_response_selection_expression.is_some(),
        },
        parsed.matcher,
    ))
}

fn template_problem(field: &str, message: String) -> Problem {
    Problem::invalid(reasons::INVALID_TEMPLATE, format!("{field}: {message}"))
}

/// Checks stage variable references and that every `{param}` is a path parameter.
fn check_template(field: &str, text: &str, params: &[String]) -> Result<(), Problem> {
    stage_variables(text).map_err(|e| template_problem(field, e))?;
    Template::parse(&without_stage_variables(text))
        .check_params(|p| params.iter().any(|q| q == p))
        .map_err(|e| {
            template_problem(
                field,
                format!("{{{}}} is not a path parameter of the route key", e.0),
            )
        })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c))
}

/// The AWS features a route uses that its Api's kind does not have on AWS: served all the
/// same, and noted in the `Accepted` condition's message.
fn api_type_notes(route: &Route, api_type: Option<ApiType>) -> Vec<String> {
    let spec = &route.spec;
    let integration = &spec.integration;
    let mut notes = Vec::new();
    match api_type {
        Some(ApiType::Http) => {
            let rest_only = [
                (
                    integration.type_ == IntegrationType::Mock,
                    "MOCK integrations",
                ),
                (
                    integration.type_ == IntegrationType::Http,
                    "HTTP (non-proxy) integrations",
                ),
                (
                    integration.type_ == IntegrationType::Lambda,
                    "LAMBDA (non-proxy) integrations",
                ),
                (
                    !integration.request_templates.is_empty(),
                    "request templates",
                ),
                (
                    !integration.integration_responses.is_empty(),
                    "integration responses",
                ),
                (spec.api_key_required == Some(true), "API keys"),
                (spec.request_validation.is_some(), "request validation"),
            ];
            for (used, what) in rest_only {
                if used {
                    notes.push(format!(
                        "{what} are a REST API feature on AWS; this Api is of apiType HTTP and serves them all the same"
                    ));
                }
            }
        }
        Some(ApiType::Rest)
            if integration.payload_format_version == Some(PayloadFormatVersion::V2) =>
        {
            notes.push(
                "Lambda payload format 2.0 is an HTTP API feature on AWS; this Api is of apiType REST and serves it all the same"
                    .to_string(),
            );
        }
        Some(ApiType::Rest) | None => {}
    }
    notes
}

/// What API Gateway would refuse in a route's method declarations (`spec.method`), which
/// Causeway serves all the same (they are declarations for export and SDKs): an integration
/// response whose status has no method response, a response model that is not an Api model.
fn method_notes(route: &Route, models: &[ModelSpec]) -> Vec<String> {
    let Some(method) = &route.spec.method else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    if !method.responses.is_empty() {
        for (i, r) in route
            .spec
            .integration
            .integration_responses
            .iter()
            .enumerate()
        {
            if !method
                .responses
                .iter()
                .any(|m| m.status_code == r.status_code)
            {
                notes.push(format!(
                    "spec.integration.integrationResponses[{i}].statusCode {} has no method response in spec.method.responses (API Gateway refuses that); served all the same",
                    r.status_code
                ));
            }
        }
    }
    for (i, r) in method.responses.iter().enumerate() {
        for (content_type, model) in &r.response_models {
            if !models.iter().any(|m| &m.name == model) {
                notes.push(format!(
                    "spec.method.responses[{i}].responseModels[{content_type:?}]: {model:?} is not a model of the Api; export leaves it out"
                ));
            }
        }
    }
    notes
}

/// Mapping fields on an integration type that has no mapping.
fn no_mapping(spec: &IntegrationSpec, kind: &str) -> Result<(), Problem> {
    if has_mapping(spec) {
        return Err(Problem::invalid(
            reasons::INVALID,
            format!(
                "spec.integration: {kind} integrations pass requests and responses through and take no requestTemplates, passthroughBehavior, contentHandling or integrationResponses (use HTTP, MOCK or LAMBDA)"
            ),
        ));
    }
    Ok(())
}

fn compile_integration(
    spec: &IntegrationSpec,
    namespace: &str,
    params: &[String],
    api_type: Option<ApiType>,
    cluster: &Cluster<'_>,
) -> Result<DefIntegration, Problem> {
    let invalid = |m: String| Problem::invalid(reasons::INVALID, m);
    match spec.type_ {
        IntegrationType::Lambda => {
            let timeout_ms = timeout(spec)?;
            let (target, uri_path) = compile_target(spec, namespace, params, cluster)?;
            let path = invoke_path(spec, uri_path, "LAMBDA")?;
            if !spec.request_parameters.is_empty()
                || !spec.response_parameters.is_empty()
                || !spec.request_headers.is_empty()
            {
                return Err(Problem::invalid(
                    reasons::INVALID_MAPPING,
                    "spec.integration: LAMBDA integrations take their input from the request template and map their answer with integrationResponses (no requestParameters, responseParameters or requestHeaders)",
                ));
            }
            // Without mapping fields the payload is the body as it came, and with no default
            // integration response every answer is a 500, as on API Gateway.
            let mapping = compile_mapping(spec)?.unwrap_or_default();
            Ok(DefIntegration::Lambda {
                target,
                path,
                timeout_ms,
                mapping,
            })
        }
        IntegrationType::LambdaProxy => {
            no_mapping(spec, "LAMBDA_PROXY")?;
            let timeout_ms = timeout(spec)?;
            let (target, uri_path) = compile_target(spec, namespace, params, cluster)?;
            let path = invoke_path(spec, uri_path, "LAMBDA_PROXY")?;
            if !spec.request_parameters.is_empty() || !spec.response_parameters.is_empty() {
                return Err(Problem::invalid(
                    reasons::INVALID_MAPPING,
                    "spec.integration: LAMBDA_PROXY integrations take no parameter mapping (the function sees the whole request)",
                ));
            }
            Ok(DefIntegration::LambdaProxy {
                target,
                path,
                payload_format: match (spec.payload_format_version, api_type) {
                    (Some(PayloadFormatVersion::V1), _) | (None, Some(ApiType::Rest)) => {
                        PayloadFormat::V1
                    }
                    (Some(PayloadFormatVersion::V2), _) | (None, _) => PayloadFormat::V2,
                },
                timeout_ms,
            })
        }
        IntegrationType::Mock => {
            let mapping = compile_mapping(spec)?;
            if mapping.is_some() && spec.mock.is_some() {
                return Err(invalid(
                    "spec.integration: set mock, or requestTemplates and integrationResponses, not both"
                        .into(),
                ));
            }
            let mock = spec.mock.clone().unwrap_or_default();
            let status = mock.status_code.unwrap_or(200);
            if !(100..=599).contains(&status) {
                return Err(invalid(format!(
                    "spec.integration.mock.statusCode {status} is not in 100-599"
                )));
            }
            let mut headers = BTreeMap::new();
            for (name, value) in &mock.headers {
                if !is_token(name) {
                    return Err(invalid(format!(
                        "spec.integration.mock.headers: {name:?} is not a header name"
                    )));
                }
                if !super::preflight::is_header_value(value) {
                    // Refused here, for this Route alone: the proxy would refuse the value.
                    return Err(invalid(format!(
                        "spec.integration.mock.headers.{name}: the value has a control character"
                    )));
                }
                stage_variables(value).map_err(|e| {
                    template_problem(&format!("spec.integration.mock.headers.{name}"), e)
                })?;
                headers.insert(name.to_ascii_lowercase(), value.clone());
            }
            let body = mock.body.unwrap_or_default();
            check_template("spec.integration.mock.body", &body, params)?;
            Ok(DefIntegration::Mock {
                status,
                headers,
                body,
                mapping,
            })
        }
        IntegrationType::HttpProxy | IntegrationType::Http => {
            let mapping = if spec.type_ == IntegrationType::HttpProxy {
                no_mapping(spec, "HTTP_PROXY")?;
                None
            } else {
                compile_mapping(spec)?
            };
            let timeout_ms = timeout(spec)?;
            let method = match &spec.method {
                None => None,
                Some(m) if m.chars().all(|c| c.is_ascii_alphabetic()) && !m.is_empty() => {
                    Some(m.to_ascii_uppercase())
                }
                Some(m) => {
                    return Err(invalid(format!(
                        "spec.integration.method {m:?} is not an HTTP method"
                    )));
                }
            };
            let mut request_headers = BTreeMap::new();
            for (name, value) in &spec.request_headers {
                if !is_token(name) {
                    return Err(invalid(format!(
                        "spec.integration.requestHeaders: {name:?} is not a header name"
                    )));
                }
                stage_variables(value).map_err(|e| {
                    template_problem(&format!("spec.integration.requestHeaders.{name}"), e)
                })?;
                request_headers.insert(name.to_ascii_lowercase(), value.clone());
            }
            if let Some(path) = &spec.path {
                if !path.starts_with('/') {
                    return Err(invalid(format!(
                        "spec.integration.path {path:?} must start with '/'"
                    )));
                }
                check_template("spec.integration.path", path, params)?;
            }
            let (target, uri_path) = compile_target(spec, namespace, params, cluster)?;
            let request_parameters = super::mapping::compile_mappings(
                "spec.integration.requestParameters",
                &spec.request_parameters,
                MappingSide::Request,
                params,
            )?;
            let response_parameters = super::mapping::compile_mappings(
                "spec.integration.responseParameters",
                &spec.response_parameters,
                MappingSide::Response,
                params,
            )?;
            let overwrites_path = request_parameters
                .iter()
                .any(|m| m.target == causeway_snapshot::mapping::MappingTarget::Path);
            if overwrites_path && (spec.path.is_some() || uri_path.is_some()) {
                return Err(Problem::invalid(
                    reasons::INVALID_MAPPING,
                    "spec.integration.requestParameters[\"overwrite:path\"]: the path is already set by spec.integration.path or the uri; use one",
                ));
            }
            Ok(DefIntegration::HttpProxy {
                target,
                path: spec.path.clone().or(uri_path),
                method,
                request_headers,
                timeout_ms,
                request_parameters,
                response_parameters,
                mapping,
            })
        }
    }
}

/// The invoke path of a Lambda integration: `spec.integration.path`, else the uri's path, else
/// the Runtime Interface Emulator's; literal apart from stage variables.
fn invoke_path(
    spec: &IntegrationSpec,
    uri_path: Option<String>,
    kind: &str,
) -> Result<String, Problem> {
    let path = match (&spec.path, uri_path) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p,
        (None, None) => LAMBDA_INVOKE_PATH.to_string(),
    };
    if !path.starts_with('/') {
        return Err(Problem::invalid(
            reasons::INVALID,
            format!("spec.integration.path {path:?} must start with '/'"),
        ));
    }
    stage_variables(&path).map_err(|e| template_problem("spec.integration.path", e))?;
    if !Template::parse(&without_stage_variables(&path)).is_literal() {
        return Err(template_problem(
            "spec.integration.path",
            format!("a {kind} invoke path cannot use path parameters"),
        ));
    }
    Ok(path)
}

/// The integration timeout, checked.
fn timeout(spec: &IntegrationSpec) -> Result<u32, Problem> {
    let timeout_ms = spec
        .timeout_millis
        .unwrap_or(DEFAULT_INTEGRATION_TIMEOUT_MS);
    if !(MIN_INTEGRATION_TIMEOUT_MS..=MAX_INTEGRATION_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(Problem::invalid(
            reasons::INVALID,
            format!(
                "spec.integration.timeoutMillis {timeout_ms} is not in {MIN_INTEGRATION_TIMEOUT_MS}-{MAX_INTEGRATION_TIMEOUT_MS}"
            ),
        ));
    }
    Ok(timeout_ms)
}

/// The backend of an integration (Service or URL origin) and the path the uri gives, if any.
fn compile_target(
    spec: &IntegrationSpec,
    namespace: &str,
    params: &[String],
    cluster: &Cluster<'_>,
) -> Result<(DefTarget, Option<String>), Problem> {
    let invalid = |m: String| Problem::invalid(reasons::INVALID, m);
    let target = match (&spec.backend_ref, &spec.uri) {
        (Some(b), None) => {
            let field = "spec.integration.backendRef";
            let backend_ns = b.namespace.clone().unwrap_or_else(|| namespace.to_string());
            cluster.check_service_port(field, &backend_ns, &b.name, b.port)?;
            cluster.permit(
                field,
                namespace,
                &backend_ns,
                &b.name,
                spec.vpc_link_ref.as_ref(),
            )?;
            let scheme = match b.scheme {
                Some(BackendScheme::Https) => UpstreamScheme::Https,
                _ => UpstreamScheme::Http,
            };
            (
                DefTarget::Service {
                    namespace: backend_ns,
                    name: b.name.clone(),
                    port: b.port,
                    scheme,
                    vpc_link: spec.vpc_link_ref.clone(),
                },
                None,
            )
        }
        (None, Some(uri)) => {
            let field = "spec.integration.uri";
            stage_variables(uri).map_err(|e| template_problem(field, e))?;
            let split = split_uri(uri).map_err(|e| invalid(format!("{field}: {e}")))?;
            if !Template::parse(&without_stage_variables(&split.origin)).is_literal() {
                return Err(template_problem(
                    field,
                    "path parameters may appear only in the path of the uri".into(),
                ));
            }
            if stage_variables(&split.origin).is_ok_and(|v| v.is_empty()) {
                let origin =
                    parse_origin(&split.origin).map_err(|e| invalid(format!("{field}: {e}")))?;
                if let OriginGrant::Service((ns, name)) =
                    cluster.grant_origin(field, &origin, namespace, spec.vpc_link_ref.as_ref())?
                {
                    cluster.check_service_port(field, &ns, &name, origin.port)?;
                }
            }
            if let Some(path) = &split.path {
                check_template(field, path, params)?;
            }
            (
                DefTarget::Url {
                    origin: split.origin,
                    vpc_link: spec.vpc_link_ref.clone(),
                },
                split.path,
            )
        }
        _ => {
            return Err(invalid(
                "spec.integration: set exactly one of backendRef and uri".into(),
            ));
        }
    };
    Ok(target)
}
