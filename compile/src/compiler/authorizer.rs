//! Authorizers: JWT, REQUEST/TOKEN functions and SigV4, compiled to
//! [`causeway_snapshot::AuthorizerConfig`] with every default applied.
//!
//! - JWT: the algorithm allow-list never holds `none` or an HMAC algorithm (a public key must
//!   never be usable as an HMAC secret); default RS256 + ES256. Keys come from `jwksUri`, from
//!   OIDC discovery under the issuer, or inline from a Secret (`jwksSecretRef`) for clusters
//!   without egress; an inline JWKS is parsed here, so a broken one is reported on the object.
//! - REQUEST/TOKEN: the function is resolved like an integration (Service port through its
//!   EndpointSlices, or a URL); it lands in `Snapshot.backends` like any backend.
//! - SIGV4: the secret access keys are read from the Secret into the snapshot (the proxy must
//!   compute HMACs); the field is named so that `/config_dump` redacts it.
//! - SERVICE_ACCOUNT: projected service-account tokens checked like JWTs (issuer, at least one
//!   audience) with the cluster's keys inline — from `jwksSecretRef` or from the JWKS the
//!   controller reads from the API server (`CompileOptions::service_account_jwks`) — and allowed
//!   by namespace and name from `sub` (`system:serviceaccount:NS:NAME`).
//! - MTLS: the client certificate verified in the handshake of a mutual-TLS domain
//!   (`Stage.spec.domains[].clientCaSecretRef`), narrowed by `allowedSubjects` (subject CN or
//!   SANs). A second CA on the authorizer (`mtls.caSecretRef`) is not built yet and is refused
//!   with `UnsupportedFeature`.

use std::collections::BTreeMap;

use causeway_crds::Authorizer;
use causeway_crds::authorizer::{
    AuthorizerResponseFormat, AuthorizerSpec, AuthorizerType, FunctionAuthorizerSpec, JwtSpec,
    ServiceAccountSpec, SigV4Spec,
};
use causeway_crds::route::BackendScheme;
use causeway_snapshot::{
    AuthorizerConfig, AuthorizerSettings, Backend, DEFAULT_AUTHORIZER_TIMEOUT_MS,
    DEFAULT_AUTHORIZER_TTL_SECONDS, DEFAULT_FUNCTION_PATH, DEFAULT_JWT_LEEWAY_SECONDS,
    FunctionSettings, JwksSource, JwtSettings, MAX_AUTHORIZER_TTL_SECONDS, MtlsSettings,
    ResponseFormat, ServiceAccountSettings, Sigv4Settings, UpstreamScheme,
};

use super::Input;
use super::backend::Cluster;
use super::text::{parse_origin, split_uri};
use super::usage_plan::{secret_entries, secret_value};
use super::{Apis, ObjKey, Problem, Verdict, api_ref_problem, cel, obj_key};
use crate::CompileOptions;
use crate::reasons;
use crate::status::{Kind, ObjectStatus, StatusDetail};

/// Algorithms an authorizer may allow: asymmetric only.
const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];
/// The default allow-list.
const DEFAULT_ALGORITHMS: [&str; 2] = ["RS256", "ES256"];
/// The largest JWT leeway, seconds.
const MAX_LEEWAY_SECONDS: u32 = 600;
/// The default SigV4 region, service and clock skew.
const DEFAULT_SIGV4_REGION: &str = "us-east-1";
const DEFAULT_SIGV4_SERVICE: &str = "execute-api";
const DEFAULT_SIGV4_SKEW_SECONDS: u32 = 300;
/// Bounds of a function authorizer's timeout, milliseconds.
const MIN_FUNCTION_TIMEOUT_MS: u32 = 50;
const MAX_FUNCTION_TIMEOUT_MS: u32 = 30_000;
/// Headers a `forwardHeaders` entry may not set.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "x-request-id",
    "authorization",
];

/// One accepted authorizer.
#[derive(Debug, Clone)]
pub(crate) struct CompiledAuthorizer {
    /// The Api it belongs to.
    pub api: ObjKey,
    /// `JWT`, `REQUEST`, ...
    pub type_: AuthorizerType,
    /// What the snapshot carries.
    pub config: AuthorizerConfig,
    /// The function's backend, for REQUEST/TOKEN.
    pub backend: Option<(String, Backend)>,
    /// What the status reports beyond conditions (SERVICE_ACCOUNT: where the keys came from).
    pub detail: StatusDetail,
}

/// Accepted authorizers by `(namespace, name)`.
pub(crate) type Authorizers = BTreeMap<ObjKey, CompiledAuthorizer>;

/// Whether the accepted authorizer with this snapshot id is of type `SIGV4`.
pub(crate) fn is_sigv4(authorizers: &Authorizers, id: &str) -> bool {
    authorizers
        .values()
        .any(|a| a.config.id == id && a.type_ == AuthorizerType::Sigv4)
}

/// Compiles every Authorizer; pushes one status each.
pub(crate) fn compile_authorizers(
    inventory: &Input<'_>,
    options: &CompileOptions,
    apis: &Apis,
    cluster: &Cluster<'_>,
    statuses: &mut Vec<ObjectStatus>,
) -> Authorizers {
    let mut out = Authorizers::new();
    for authorizer in &inventory.authorizers {
        let mut verdict = Verdict::default();
        let key = obj_key(&authorizer.metadata);
        if let Some(p) = api_ref_problem(apis, &key.0, &authorizer.spec.api_ref.name) {
            verdict.add(p);
        }
        let compiled = verdict.check(compile_authorizer(
            authorizer, &key, inventory, options, cluster,
        ));
        let mut detail = StatusDetail::None;
        if let Some(c) = compiled
            && verdict.is_ok()
        {
            detail = c.detail.clone();
            out.insert(key, c);
        }
        statuses.push(verdict.into_status(Kind::Authorizer, &authorizer.metadata, detail));
    }
    out
}

fn invalid(message: impl Into<String>) -> Problem {
    Problem::invalid(reasons::INVALID, message)
}

fn compile_authorizer(
    authorizer: &Authorizer,
    (namespace, name): &ObjKey,
    inventory: &Input<'_>,
    options: &CompileOptions,
    cluster: &Cluster<'_>,
) -> Result<CompiledAuthorizer, Problem> {
    cel::check(Kind::Authorizer, authorizer)?;
    let spec = &authorizer.spec;
    let mut backend = None;
    let mut detail = StatusDetail::None;
    let settings = match spec.type_ {
        AuthorizerType::Jwt => {
            let jwt = spec
                .jwt
                .as_ref()
                .ok_or_else(|| invalid("spec.jwt: type JWT needs jwt"))?;
            AuthorizerSettings::Jwt(jwt_settings(jwt, namespace, inventory)?)
        }
        AuthorizerType::Request | AuthorizerType::Token => {
            let function = spec
                .function
                .as_ref()
                .ok_or_else(|| invalid("spec.function: types REQUEST and TOKEN need function"))?;
            let (settings, b) = function_settings(spec, function, namespace, cluster)?;
            backend = Some(b);
            if spec.type_ == AuthorizerType::Token {
                AuthorizerSettings::Token(settings)
            } else {
                AuthorizerSettings::Request(settings)
            }
        }
        AuthorizerType::Sigv4 => {
            let sigv4 = spec
                .sigv4
                .as_ref()
                .ok_or_else(|| invalid("spec.sigv4: type SIGV4 needs sigv4"))?;
            AuthorizerSettings::Sigv4(sigv4_settings(sigv4, namespace, inventory)?)
        }
        AuthorizerType::ServiceAccount => {
            let sa = spec.service_account.as_ref().ok_or_else(|| {
                invalid("spec.serviceAccount: type SERVICE_ACCOUNT needs serviceAccount")
            })?;
            let (settings, keys) = service_account_settings(sa, namespace, inventory, options)?;
            detail = keys;
            AuthorizerSettings::ServiceAccount(settings)
        }
        AuthorizerType::Mtls => AuthorizerSettings::Mtls(mtls_settings(spec)?),
    };
    let identity_source = identity_source(spec)?;
    let forward_headers = forward_headers(spec)?;
    Ok(CompiledAuthorizer {
        api: (namespace.clone(), spec.api_ref.name.clone()),
        type_: spec.type_,
        config: AuthorizerConfig {
            id: format!("{namespace}/{name}"),
            api: format!("{namespace}/{}", spec.api_ref.name),
            identity_source,
            forward_headers,
            settings,
        },
        backend,
        detail,
    })
}

/// Normalizes `$request.header.X` / `$request.querystring.x` (and the REST forms
/// `method.request.header.X`) to `header.x` / `querystring.x`.
fn identity_source(spec: &AuthorizerSpec) -> Result<Vec<String>, Problem> {
    let mut out = Vec::new();
    for (i, source) in spec.identity_source.iter().enumerate() {
        let s = source.trim();
        let rest = s
            .strip_prefix("$request.")
            .or_else(|| s.strip_prefix("method.request."));
        let normalized = match rest {
            Some(r) if r.starts_with("header.") && r.len() > "header.".len() => {
                let name = &r["header.".len()..];
                if http_token(name) {
                    Some(format!("header.{}", name.to_ascii_lowercase()))
                } else {
                    None
                }
            }
            Some(r) if r.starts_with("querystring.") && r.len() > "querystring.".len() => {
                Some(r.to_string())
            }
            _ => None,
        };
        let Some(n) = normalized else {
            return Err(invalid(format!(
                "spec.identitySource[{i}]: {source:?} must be $request.header.NAME or $request.querystring.NAME"
            )));
        };
        if !out.contains(&n) {
            out.push(n);
        }
    }
    match spec.type_ {
        AuthorizerType::Jwt | AuthorizerType::Token | AuthorizerType::ServiceAccount
            if out.is_empty() =>
        {
            out.push("header.authorization".to_string());
        }
        AuthorizerType::Jwt | AuthorizerType::Token | AuthorizerType::ServiceAccount
            if out.len() > 1 =>
        {
            return Err(invalid(
                "spec.identitySource: JWT, TOKEN and SERVICE_ACCOUNT authorizers read exactly one source",
            ));
        }
        AuthorizerType::Token if !out[0].starts_with("header.") => {
            return Err(invalid(
                "spec.identitySource: a TOKEN authorizer reads a header",
            ));
        }
        _ => {}
    }
    Ok(out)
}

fn http_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c))
}

fn forward_headers(spec: &AuthorizerSpec) -> Result<BTreeMap<String, String>, Problem> {
    let mut out = BTreeMap::new();
    for (name, value) in &spec.forward_headers {
        let lower = name.to_ascii_lowercase();
        if !http_token(name) || RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(invalid(format!(
                "spec.forwardHeaders: {name:?} is not a header name the gateway may set"
            )));
        }
        if value.chars().any(|c| c.is_control()) {
            return Err(invalid(format!(
                "spec.forwardHeaders[{name:?}]: the value may not hold control characters"
            )));
        }
        if out.insert(lower, value.clone()).is_some() {
            return Err(invalid(format!(
                "spec.forwardHeaders: {name:?} is listed twice (header names ignore case)"
            )));
        }
    }
    Ok(out)
}

fn jwt_settings(
    jwt: &JwtSpec,
    namespace: &str,
    inventory: &Input<'_>,
) -> Result<JwtSettings, Problem> {
    if jwt.issuer.trim().is_empty() {
        return Err(invalid("spec.jwt.issuer must not be empty"));
    }
    if jwt.audiences.iter().all(|a| a.trim().is_empty()) {
        // Without an audience, any token of the issuer passes: one minted for another client
        // of the same identity provider would open this Api.
        return Err(Problem::invalid(
            reasons::AUDIENCE_REQUIRED,
            "spec.jwt.audiences: name at least one audience (matched against aud, or client_id when aud is absent)",
        ));
    }
    let allow_private = jwt.allow_private_jwks.unwrap_or(false);
    let mut algorithms = Vec::new();
    let requested: Vec<&str> = if jwt.algorithms.is_empty() {
        DEFAULT_ALGORITHMS.to_vec()
    } else {
        jwt.algorithms.iter().map(String::as_str).collect()
    };
    for alg in requested {
        if alg.eq_ignore_ascii_case("none") || alg.to_ascii_uppercase().starts_with("HS") {
            return Err(invalid(format!(
                "spec.jwt.algorithms: {alg:?} is refused: only asymmetric algorithms are allowed (never none or HMAC)"
            )));
        }
        if !ASYMMETRIC_ALGORITHMS.contains(&alg) {
            return Err(invalid(format!(
                "spec.jwt.algorithms: {alg:?} is not one of {}",
                ASYMMETRIC_ALGORITHMS.join(", ")
            )));
        }
        if !algorithms.iter().any(|a| a == alg) {
            algorithms.push(alg.to_string());
        }
    }
    algorithms.sort();
    let leeway_seconds = jwt.leeway_seconds.unwrap_or(DEFAULT_JWT_LEEWAY_SECONDS);
    if leeway_seconds > MAX_LEEWAY_SECONDS {
        return Err(invalid(format!(
            "spec.jwt.leewaySeconds must be at most {MAX_LEEWAY_SECONDS}"
        )));
    }
    let jwks = match (&jwt.jwks_uri, &jwt.jwks_secret_ref) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "spec.jwt: set at most one of jwksUri and jwksSecretRef",
            ));
        }
        (Some(uri), None) => {
            check_url("spec.jwt.jwksUri", uri)?;
            check_public("spec.jwt.jwksUri", uri, allow_private)?;
            JwksSource::Uri(uri.clone())
        }
        (None, Some(secret)) => {
            let field = "spec.jwt.jwksSecretRef";
            let bytes = secret_value(inventory, field, namespace, secret)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| invalid(format!("{field}: the JWKS is not UTF-8")))?;
            check_jwks(field, &text)?;
            JwksSource::Inline(text)
        }
        (None, None) => {
            let issuer = jwt.issuer.trim_end_matches('/');
            check_url("spec.jwt.issuer (used for OIDC discovery)", issuer)?;
            check_public(
                "spec.jwt.issuer (used for OIDC discovery)",
                issuer,
                allow_private,
            )?;
            JwksSource::Discovery(format!("{issuer}/.well-known/openid-configuration"))
        }
    };
    Ok(JwtSettings {
        issuer: jwt.issuer.clone(),
        audiences: jwt.audiences.clone(),
        algorithms,
        leeway_seconds,
        jwks,
    })
}

fn check_url(field: &str, url: &str) -> Result<(), Problem> {
    let split = split_uri(url).map_err(|e| invalid(format!("{field}: {e}")))?;
    parse_origin(&split.origin).map_err(|e| invalid(format!("{field}: {e}")))?;
    Ok(())
}

/// The proxy's admin port (`causeway proxy --admin`'s default): a JWKS fetched from it would
/// let an Authorizer read `/config_dump` or `/metrics` through the proxy's own fetcher.
pub(crate) const PROXY_ADMIN_PORT: u16 = 9901;

/// Refuses a JWKS or discovery URL the proxy must not fetch from unless the Authorizer says
/// `allowPrivateJwks: true`: loopback, link-local (169.254.0.0/16 and fe80::/10, where the
/// cloud metadata services live), the unspecified address, well-known metadata names, and the
/// proxy's admin port. Only what is written is checked: compile is pure and resolves no names.
fn check_public(field: &str, url: &str, allow_private: bool) -> Result<(), Problem> {
    if allow_private {
        return Ok(());
    }
    let Ok(split) = split_uri(url) else {
        return Ok(());
    };
    let Ok(origin) = parse_origin(&split.origin) else {
        return Ok(());
    };
    match private_target(&origin.host, origin.port) {
        None => Ok(()),
        Some(why) => Err(Problem::invalid(
            reasons::PRIVATE_JWKS,
            format!(
                "{field}: {url:?} points at {why}; set spec.jwt.allowPrivateJwks: true if this is intended"
            ),
        )),
    }
}

/// Why a host and port are private to the proxy, or `None`.
pub(crate) fn private_target(host: &str, port: u16) -> Option<&'static str> {
    use std::net::IpAddr;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    if port == PROXY_ADMIN_PORT {
        return Some("the proxy's admin port");
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return Some("a loopback name");
    }
    if name == "metadata" || name == "metadata.google.internal" || name == "instance-data" {
        return Some("a cloud metadata service");
    }
    let ip: IpAddr = match name.parse() {
        Ok(ip) => ip,
        Err(_) => return None,
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => Some("a loopback address"),
        IpAddr::V4(v4) if v4.is_link_local() => {
            Some("a link-local address (cloud metadata lives at 169.254.169.254)")
        }
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_broadcast() => {
            Some("an unspecified address")
        }
        IpAddr::V6(v6) if v6.is_loopback() => Some("a loopback address"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("a link-local address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("an unspecified address"),
        // AWS's IPv6 instance metadata endpoint.
        IpAddr::V6(v6) if v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] => {
            Some("a cloud metadata service")
        }
        _ => None,
    }
}

/// A JWKS must be `{"keys": [...]}` with at least one non-HMAC key.
fn check_jwks(field: &str, text: &str) -> Result<(), Problem> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| invalid(format!("{field}: the JWKS is not JSON: {e}")))?;
    let keys = value
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| invalid(format!("{field}: the JWKS has no \"keys\" array")))?;
    let usable = keys
        .iter()
        .filter(|k| {
            matches!(
                k.get("kty").and_then(|t| t.as_str()),
                Some("RSA" | "EC" | "OKP")
            )
        })
        .count();
    if usable == 0 {
        return Err(invalid(format!(
            "{field}: the JWKS has no RSA, EC or OKP key"
        )));
    }
    Ok(())
}

fn function_settings(
    spec: &AuthorizerSpec,
    function: &FunctionAuthorizerSpec,
    namespace: &str,
    cluster: &Cluster<'_>,
) -> Result<(FunctionSettings, (String, Backend)), Problem> {
    let (backend, uri_path) = match (&function.backend_ref, &function.uri) {
        (Some(b), None) => {
            let field = "spec.function.backendRef";
            let ns = b.namespace.clone().unwrap_or_else(|| namespace.to_string());
            cluster.check_service_port(field, &ns, &b.name, b.port)?;
            cluster.permit(field, namespace, &ns, &b.name, None)?;
            let scheme = match b.scheme {
                Some(BackendScheme::Https) => UpstreamScheme::Https,
                _ => UpstreamScheme::Http,
            };
            (cluster.service_backend(&ns, &b.name, b.port, scheme), None)
        }
        (None, Some(uri)) => {
            let field = "spec.function.uri";
            if uri.contains("${") {
                return Err(invalid(format!(
                    "{field}: stage variables are not available to authorizers"
                )));
            }
            let split = split_uri(uri).map_err(|e| invalid(format!("{field}: {e}")))?;
            let origin =
                parse_origin(&split.origin).map_err(|e| invalid(format!("{field}: {e}")))?;
            (
                cluster.origin_backend(field, &origin, namespace, None)?,
                split.path,
            )
        }
        _ => {
            return Err(invalid(
                "spec.function: set exactly one of backendRef and uri",
            ));
        }
    };
    let path = function
        .path
        .clone()
        .or(uri_path)
        .unwrap_or_else(|| DEFAULT_FUNCTION_PATH.to_string());
    if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
        return Err(invalid(format!(
            "spec.function.path {path:?} must be an absolute path without query"
        )));
    }
    let timeout_ms = function
        .timeout_millis
        .unwrap_or(DEFAULT_AUTHORIZER_TIMEOUT_MS);
    if !(MIN_FUNCTION_TIMEOUT_MS..=MAX_FUNCTION_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(invalid(format!(
            "spec.function.timeoutMillis must be between {MIN_FUNCTION_TIMEOUT_MS} and {MAX_FUNCTION_TIMEOUT_MS}"
        )));
    }
    let mut ttl_seconds = function
        .result_ttl_seconds
        .unwrap_or(DEFAULT_AUTHORIZER_TTL_SECONDS);
    if ttl_seconds > MAX_AUTHORIZER_TTL_SECONDS {
        return Err(invalid(format!(
            "spec.function.resultTtlSeconds must be at most {MAX_AUTHORIZER_TTL_SECONDS}"
        )));
    }
    if spec.identity_source.is_empty() && spec.type_ == AuthorizerType::Request {
        // Nothing to key a cached decision by: every request asks the function.
        ttl_seconds = 0;
    }
    let identity_validation = match &function.identity_validation_expression {
        None => None,
        Some(_) if spec.type_ != AuthorizerType::Token => {
            return Err(invalid(
                "spec.function.identityValidationExpression applies to TOKEN authorizers only",
            ));
        }
        Some(expr) => {
            regex::Regex::new(&format!("^(?:{expr})$")).map_err(|e| {
                invalid(format!(
                    "spec.function.identityValidationExpression is not a valid regular expression: {e}"
                ))
            })?;
            Some(expr.clone())
        }
    };
    let response_format = match function.response_format {
        None => ResponseFormat::Any,
        Some(AuthorizerResponseFormat::Simple) => ResponseFormat::Simple,
        Some(AuthorizerResponseFormat::Iam) => ResponseFormat::Iam,
    };
    Ok((
        FunctionSettings {
            backend: backend.0.clone(),
            path,
            timeout_ms,
            ttl_seconds,
            identity_validation,
            response_format,
        },
        backend,
    ))
}

fn sigv4_settings(
    sigv4: &SigV4Spec,
    namespace: &str,
    inventory: &Input<'_>,
) -> Result<Sigv4Settings, Problem> {
    let field = "spec.sigv4.credentialsSecretRef";
    let entries = secret_entries(
        inventory,
        field,
        namespace,
        &sigv4.credentials_secret_ref.name,
    )?;
    let mut secret_access_keys = BTreeMap::new();
    for (id, value) in entries {
        let secret = String::from_utf8(value).map_err(|_| {
            invalid(format!(
                "{field}: the secret of access key {id:?} is not UTF-8"
            ))
        })?;
        let secret = secret.trim_end_matches(['\n', '\r']).to_string();
        if id.is_empty() || secret.is_empty() {
            return Err(invalid(format!(
                "{field}: access key {id:?} has an empty id or secret"
            )));
        }
        secret_access_keys.insert(id, secret);
    }
    if secret_access_keys.is_empty() {
        return Err(Problem::unresolved(
            reasons::SECRET_NOT_FOUND,
            format!(
                "{field}: Secret {namespace}/{} holds no access keys",
                sigv4.credentials_secret_ref.name
            ),
        ));
    }
    let max_skew_seconds = sigv4.max_skew_seconds.unwrap_or(DEFAULT_SIGV4_SKEW_SECONDS);
    if !(1..=900).contains(&max_skew_seconds) {
        return Err(invalid(
            "spec.sigv4.maxSkewSeconds must be between 1 and 900",
        ));
    }
    let scope_part = |field: &str, v: &str| -> Result<String, Problem> {
        if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid(format!(
                "{field} {v:?} may hold letters, digits and '-' only"
            )));
        }
        Ok(v.to_string())
    };
    Ok(Sigv4Settings {
        region: scope_part(
            "spec.sigv4.region",
            sigv4.region.as_deref().unwrap_or(DEFAULT_SIGV4_REGION),
        )?,
        service: scope_part(
            "spec.sigv4.service",
            sigv4.service.as_deref().unwrap_or(DEFAULT_SIGV4_SERVICE),
        )?,
        max_skew_seconds,
        secret_access_keys,
    })
}

/// MTLS: who may call, by the names of the verified client certificate.
fn mtls_settings(spec: &AuthorizerSpec) -> Result<MtlsSettings, Problem> {
    if !spec.identity_source.is_empty() {
        return Err(invalid(
            "spec.identitySource: an MTLS authorizer reads the client certificate; leave identitySource empty",
        ));
    }
    let mtls = spec.mtls.clone().unwrap_or_default();
    if mtls.ca_secret_ref.is_some() {
        return Err(Problem::invalid(
            reasons::UNSUPPORTED_FEATURE,
            "spec.mtls.caSecretRef: a second CA on the authorizer is not built yet; set the CA on the Stage's domain (clientCaSecretRef)",
        ));
    }
    let mut allowed_subjects = Vec::new();
    for (i, subject) in mtls.allowed_subjects.iter().enumerate() {
        let pattern = subject.trim();
        let wildcard_ok = match pattern.strip_prefix("*.") {
            Some(rest) => !rest.is_empty() && !rest.contains('*'),
            None => !pattern.contains('*'),
        };
        if pattern.is_empty() || !wildcard_ok || pattern.chars().any(char::is_control) {
            return Err(invalid(format!(
                "spec.mtls.allowedSubjects[{i}]: {subject:?} must be a name, or *.suffix"
            )));
        }
        allowed_subjects.push(pattern.to_string());
    }
    allowed_subjects.sort();
    allowed_subjects.dedup();
    Ok(MtlsSettings { allowed_subjects })
}

/// The issuer of service-account tokens when neither the Authorizer nor the controller names
/// one (the API server's default `--service-account-issuer`).
const DEFAULT_SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// SERVICE_ACCOUNT: a JWT check with the cluster's keys (inline: proxies have no cluster
/// credentials), plus who may call; and the status detail saying where the keys came from.
fn service_account_settings(
    sa: &ServiceAccountSpec,
    namespace: &str,
    inventory: &Input<'_>,
    options: &CompileOptions,
) -> Result<(ServiceAccountSettings, StatusDetail), Problem> {
    if sa.audiences.is_empty() {
        // Without an audience any token of the cluster (for example one meant for the API
        // server) would be accepted.
        return Err(invalid(
            "spec.serviceAccount.audiences: name at least one audience",
        ));
    }
    if sa.allow.is_empty() {
        return Err(invalid(
            "spec.serviceAccount.allow: name at least one service account (name '*' for a whole namespace)",
        ));
    }
    let (jwks, source, secret_name) = match (&sa.jwks_secret_ref, &options.service_account_jwks) {
        (Some(secret), _) => {
            let field = "spec.serviceAccount.jwksSecretRef";
            let bytes = secret_value(inventory, field, namespace, secret)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| invalid(format!("{field}: the JWKS is not UTF-8")))?;
            check_jwks(field, &text)?;
            (text, "Secret", Some(format!("{namespace}/{}", secret.name)))
        }
        (None, Some(jwks)) => {
            check_jwks("the cluster's service-account JWKS", jwks)?;
            (jwks.clone(), "APIServer", None)
        }
        (None, None) => {
            return Err(Problem::unresolved(
                reasons::SERVICE_ACCOUNT_KEYS_NOT_FOUND,
                "spec.serviceAccount: no cluster keys: the controller delivers them, or set jwksSecretRef (kubectl get --raw /openid/v1/jwks)",
            ));
        }
    };
    let issuer = sa
        .issuer
        .clone()
        .or_else(|| options.service_account_issuer.clone())
        .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT_ISSUER.to_string());
    let mut allow: Vec<(String, String)> = sa
        .allow
        .iter()
        .map(|r| {
            (
                r.namespace.clone().unwrap_or_else(|| namespace.to_string()),
                r.name.clone(),
            )
        })
        .collect();
    allow.sort();
    allow.dedup();
    let detail = StatusDetail::ServiceAccount {
        source: source.to_string(),
        secret: secret_name,
        issuer: issuer.clone(),
        key_ids: key_ids(&jwks),
    };
    Ok((
        ServiceAccountSettings {
            jwt: JwtSettings {
                issuer,
                audiences: sa.audiences.clone(),
                algorithms: vec!["ES256".into(), "RS256".into()],
                leeway_seconds: DEFAULT_JWT_LEEWAY_SECONDS,
                jwks: JwksSource::Inline(jwks),
            },
            allow,
        },
        detail,
    ))
}

/// The `kid`s of a (checked) JWKS, sorted.
fn key_ids(jwks: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(jwks).unwrap_or_default();
    let mut ids: Vec<String> = value
        .get("keys")
        .and_then(|k| k.as_array())
        .into_iter()
        .flatten()
        .filter_map(|k| k.get("kid").and_then(|v| v.as_str()).map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Resolves a Route's `authorizerRef`: the authorizer must exist, be accepted and belong to the
/// route's Api. `scopes` need a JWT authorizer.
pub(crate) fn resolve(
    authorizers: &Authorizers,
    route_namespace: &str,
    api: &str,
    reference: &causeway_crds::common::ObjectRef,
    scopes: &[String],
) -> Result<causeway_snapshot::RouteAuthorization, Problem> {
    let ns = reference.namespace.as_deref().unwrap_or(route_namespace);
    let not_found = |what: &str| {
        Problem::unresolved(
            reasons::AUTHORIZER_NOT_FOUND,
            format!(
                "spec.authorizerRef: Authorizer {ns}/{} {what}",
                reference.name
            ),
        )
    };
    if ns != route_namespace {
        return Err(not_found(
            "is in another namespace; authorizers serve their own Api only",
        ));
    }
    let Some(found) = authorizers.get(&(ns.to_string(), reference.name.clone())) else {
        return Err(not_found("does not exist or is not accepted"));
    };
    if found.api.1 != api {
        return Err(not_found(&format!(
            "belongs to Api {}/{}, not to {ns}/{api}",
            found.api.0, found.api.1
        )));
    }
    if !scopes.is_empty() && found.type_ != AuthorizerType::Jwt {
        return Err(invalid(
            "spec.authorizationScopes: scopes need a JWT authorizer",
        ));
    }
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    Ok(causeway_snapshot::RouteAuthorization {
        authorizer: found.config.id.clone(),
        scopes,
    })
}
