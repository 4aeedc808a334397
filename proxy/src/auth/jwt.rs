//! JWT authorizers: keys from a JWKS (fetched by the proxy, or inline in the snapshot) and the
//! checks API Gateway makes — signature with an allowed algorithm, `exp`/`nbf`/`iat` with
//! leeway, `iss`, `aud`, then the route's scopes.
//!
//! JWKS refresh policy: a fetched key set is used for at most [`JWKS_MAX_AGE`] (1 h), then
//! fetched again on the next request. A token whose `kid` is not in the set triggers a refetch,
//! but fetches of one JWKS start at most once per [`JWKS_MIN_REFETCH`] (30 s), whatever the
//! outcome: a flood of random `kid`s costs at most two fetches a minute. Fetches are
//! single-flight (a tokio mutex per JWKS). The caches live in [`JwksCaches`], outside the
//! snapshot, so a swap neither refetches nor resets the rate limit. An issuer that cannot be
//! reached before any key set was fetched fails closed (500); a token nobody can verify is 401.
//! JWKS and discovery URLs may be `http://` or `https://` (system trust store).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use causeway_snapshot::{JwksSource, JwtSettings};
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{AuthError, AuthState, LiveAuthorizer, Principal, identity_values};
use crate::clock::Clock;

/// Longest time a fetched key set is used.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Shortest time between two fetches of one JWKS.
pub const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);
/// Timeout of one JWKS (or discovery document) fetch.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS or discovery document accepted.
const JWKS_MAX_BYTES: usize = 512 * 1024;

/// One verification key.
struct Key {
    kid: Option<String>,
    alg: Option<Algorithm>,
    family: AlgorithmFamily,
    key: DecodingKey,
}

/// A parsed key set.
struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    fn parse(document: &Value) -> Result<Self, String> {
        let keys = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no \"keys\" array")?;
        let mut out = Vec::new();
        for value in keys {
            // One odd key (an unknown type, an encryption key) does not spoil the set.
            let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
                AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
                AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
                // Never HMAC: a symmetric key in a JWKS is not a public key.
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            out.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                family,
                key,
            });
        }
        Ok(Self { keys: out })
    }

    /// Keys that may verify a token with this `kid` and `alg`.
    fn candidates<'k>(
        &'k self,
        kid: Option<&'k str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'k Key> + 'k {
        self.keys.iter().filter(move |k| {
            (kid.is_none() || k.kid.as_deref() == kid)
                && k.family == alg.family()
                && k.alg.is_none_or(|a| a == alg)
        })
    }
}

/// The fetched key set of one JWKS, with its fetch rate limit.
pub(crate) struct JwksCache {
    source: JwksSource,
    /// The key set and when it was fetched.
    keys: RwLock<Option<(Instant, Arc<KeySet>)>>,
    last_fetch: Mutex<Option<Instant>>,
    clock: Clock,
    single_flight: tokio::sync::Mutex<()>,
    /// Fetches started (for tests and metrics).
    pub fetches: AtomicU64,
}

impl JwksCache {
    fn new(source: JwksSource, clock: Clock) -> Self {
        Self {
            source,
            keys: RwLock::new(None),
            last_fetch: Mutex::new(None),
            clock,
            single_flight: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        let now = self.clock.now();
        let keys = self.keys.read().ok()?;
        let (fetched, set) = keys.as_ref()?;
        (now.saturating_duration_since(*fetched) < JWKS_MAX_AGE).then(|| Arc::clone(set))
    }

    /// Claims the right to fetch now, if the last fetch started long enough ago.
    fn claim_fetch(&self) -> bool {
        let Ok(mut last) = self.last_fetch.lock() else {
            return false;
        };
        let now = self.clock.now();
        if last.is_some_and(|t| now.saturating_duration_since(t) < JWKS_MIN_REFETCH) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// The key set, fetched if there is none (or it is too old), or refetched because a token
    /// names a `kid` it lacks — within the rate limit.
    async fn keys(
        &self,
        state: &AuthState,
        authorizer: &str,
        seen_before: Option<&Arc<KeySet>>,
    ) -> Result<Arc<KeySet>, AuthError> {
        let _flight = self.single_flight.lock().await;
        if let Some(current) = self.current()
            && seen_before.is_none_or(|s| !Arc::ptr_eq(s, &current))
        {
            // Someone fetched while we waited.
            return Ok(current);
        }
        if !self.claim_fetch() {
            return match (self.current(), seen_before) {
                (Some(current), _) => Ok(current),
                (None, _) => Err(AuthError::AuthorizerFailed {
                    authorizer: authorizer.to_string(),
                    reason: "no JWKS fetched yet; the next fetch is rate limited".into(),
                }),
            };
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch(state).await {
            Ok(set) => {
                let set = Arc::new(set);
                if let Ok(mut keys) = self.keys.write() {
                    *keys = Some((self.clock.now(), Arc::clone(&set)));
                }
                Ok(set)
            }
            Err(reason) => {
                tracing::warn!(authorizer, %reason, "jwks fetch failed");
                self.current().ok_or(AuthError::AuthorizerFailed {
                    authorizer: authorizer.to_string(),
                    reason,
                })
            }
        }
    }

    async fn fetch(&self, state: &AuthState) -> Result<KeySet, String> {
        let url = match &self.source {
            JwksSource::Uri(url) => url.clone(),
            JwksSource::Discovery(url) => {
                let doc = state
                    .client
                    .get_json(url, JWKS_FETCH_TIMEOUT, JWKS_MAX_BYTES)
                    .await?;
                let jwks = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{url} has no jwks_uri"))?;
                check_discovered(url, jwks)?;
                jwks.to_string()
            }
            JwksSource::Inline(_) => return Err("an inline JWKS is never fetched".into()),
        };
        let document = state
            .client
            .get_json(&url, JWKS_FETCH_TIMEOUT, JWKS_MAX_BYTES)
            .await?;
        KeySet::parse(&document)
    }
}

/// A discovery document must not send the proxy somewhere the Authorizer did not name: compile
/// refused private JWKS and discovery URLs (unless `allowPrivateJwks`), so a `jwks_uri` on a
/// loopback, link-local or metadata address is accepted only on the discovery URL's own host.
fn check_discovered(discovery: &str, jwks: &str) -> Result<(), String> {
    let host = |url: &str| {
        url.parse::<http::Uri>().ok().and_then(|u| {
            u.host()
                .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
        })
    };
    let Some(target) = host(jwks) else {
        return Err(format!("{discovery}: jwks_uri {jwks:?} is not a URL"));
    };
    if host(discovery).as_deref() == Some(target.as_str()) || !is_private_host(&target) {
        return Ok(());
    }
    Err(format!(
        "{discovery}: jwks_uri {jwks:?} points at a private address on another host"
    ))
}

/// Loopback, link-local (where cloud metadata lives), unspecified, or a metadata name.
fn is_private_host(host: &str) -> bool {
    use std::net::IpAddr;
    let host = host.trim_end_matches('.');
    if host == "localhost"
        || host.ends_with(".localhost")
        || host == "metadata"
        || host == "metadata.google.internal"
    {
        return true;
    }
    let ip = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        Ok(ip) => ip,
        Err(_) => return false,
    };
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unicast_link_local()
                || v6.is_unspecified()
                || v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254]
        }
    }
}

/// JWKS caches by authorizer id and source; they outlive snapshots.
pub(crate) struct JwksCaches {
    caches: Mutex<HashMap<(String, String), Arc<JwksCache>>>,
    clock: Clock,
}

impl JwksCaches {
    /// No cache yet; each reads the time from `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            caches: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// The cache of one authorizer's JWKS (created on first use).
    pub fn get(&self, authorizer: &str, source: &JwksSource) -> Option<Arc<JwksCache>> {
        let url = match source {
            JwksSource::Uri(u) | JwksSource::Discovery(u) => u.clone(),
            JwksSource::Inline(_) => return None,
        };
        let mut caches = self.caches.lock().ok()?;
        Some(Arc::clone(
            caches
                .entry((authorizer.to_string(), url))
                .or_insert_with(|| Arc::new(JwksCache::new(source.clone(), self.clock.clone()))),
        ))
    }
}

/// A JWT authorizer, ready to check tokens.
pub(crate) struct JwtAuthorizer {
    id: String,
    settings: JwtSettings,
    algorithms: Vec<Algorithm>,
    /// The keys of an inline JWKS (parsed once per snapshot).
    inline: Option<Arc<KeySet>>,
}

impl JwtAuthorizer {
    pub fn build(id: &str, settings: &JwtSettings) -> Result<Self, String> {
        let mut algorithms = Vec::new();
        for name in &settings.algorithms {
            let alg: Algorithm = name
                .parse()
                .map_err(|_| format!("algorithm {name:?} is not supported"))?;
            if alg.family() == AlgorithmFamily::Hmac {
                return Err(format!("algorithm {name:?} is refused (HMAC)"));
            }
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err("no algorithm is allowed".into());
        }
        let inline = match &settings.jwks {
            JwksSource::Inline(text) => {
                let doc: Value =
                    serde_json::from_str(text).map_err(|e| format!("inline JWKS: {e}"))?;
                Some(Arc::new(KeySet::parse(&doc)?))
            }
            _ => None,
        };
        Ok(Self {
            id: id.to_string(),
            settings: settings.clone(),
            algorithms,
            inline,
        })
    }

    /// Checks the bearer token of a request; returns the principal (`sub`, claims).
    pub async fn authorize(
        &self,
        state: &AuthState,
        authorizer: &LiveAuthorizer,
        headers: &HeaderMap,
        uri: &http::Uri,
        scopes: &[String],
    ) -> Result<Principal, AuthError> {
        let raw = identity_values(&authorizer.identity_source, headers, uri)?
            .into_iter()
            .next()
            .unwrap_or_default();
        let token = bearer(&raw);
        let claims = self.verify(state, token).await?;
        if !scopes.is_empty() {
            let held = token_scopes(&claims);
            if !scopes.iter().any(|s| held.contains(s.as_str())) {
                return Err(AuthError::Denied(format!(
                    "the token holds none of the scopes {scopes:?}"
                )));
            }
        }
        Ok(Principal {
            principal_id: claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string),
            claims,
            ..Principal::default()
        })
    }

    /// Verifies a token: header, key, signature, then claims.
    pub async fn verify(
        &self,
        state: &AuthState,
        token: &str,
    ) -> Result<Map<String, Value>, AuthError> {
        let unauthorized = |m: String| AuthError::Unauthorized(m);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthorized(format!("malformed token header: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(unauthorized(format!(
                "algorithm {:?} is not allowed",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let set = match (&self.inline, state.jwks.get(&self.id, &self.settings.jwks)) {
            (Some(inline), _) => Arc::clone(inline),
            (None, Some(cache)) => {
                let set = match cache.current() {
                    Some(set) => set,
                    None => cache.keys(state, &self.id, None).await?,
                };
                if set.candidates(kid, header.alg).next().is_some() {
                    set
                } else {
                    // Unknown kid: maybe the issuer rotated keys. Rate limited.
                    cache.keys(state, &self.id, Some(&set)).await?
                }
            }
            (None, None) => {
                return Err(AuthError::AuthorizerFailed {
                    authorizer: self.id.clone(),
                    reason: "no key source".into(),
                });
            }
        };
        let mut last = unauthorized(format!("no key matches kid {kid:?}"));
        for key in set.candidates(kid, header.alg) {
            match self.decode(token, header.alg, &key.key) {
                Ok(claims) => return Ok(claims),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn decode(
        &self,
        token: &str,
        alg: Algorithm,
        key: &DecodingKey,
    ) -> Result<Map<String, Value>, AuthError> {
        let leeway = u64::from(self.settings.leeway_seconds);
        let mut validation = Validation::new(alg);
        validation.leeway = leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.settings.issuer.as_str()]);
        // The audience is checked below, where `client_id` can stand in for an absent `aud`.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(|e| {
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired".to_string(),
                    ErrorKind::ImmatureSignature => "token not valid yet (nbf)".to_string(),
                    ErrorKind::InvalidIssuer => "wrong issuer".to_string(),
                    ErrorKind::InvalidAudience => "wrong audience".to_string(),
                    ErrorKind::InvalidSignature => "bad signature".to_string(),
                    ErrorKind::MissingRequiredClaim(c) => format!("claim {c} missing"),
                    other => format!("{other:?}"),
                };
                AuthError::Unauthorized(why)
            })?;
        check_audience(&data.claims, &self.settings.audiences)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(iat) = data.claims.get("iat") {
            let iat = iat
                .as_u64()
                .ok_or_else(|| AuthError::Unauthorized("iat is not a number".into()))?;
            if iat > now.saturating_add(leeway) {
                return Err(AuthError::Unauthorized("token issued in the future".into()));
            }
        }
        Ok(data.claims)
    }
}

/// One of `audiences` must be in `aud` (a string or an array); a token without `aud` may name
/// its audience in `client_id` instead (Cognito access tokens do), as API Gateway accepts.
/// A Cognito token says which kind it is in `token_use`: an `id` token is checked by its `aud`
/// only, an `access` token by its `client_id` only, and any other kind (a refresh token) is
/// refused. With no audiences configured (compile refuses that; a hand-built snapshot may have
/// it) the audience is not checked.
fn check_audience(claims: &Map<String, Value>, audiences: &[String]) -> Result<(), AuthError> {
    if audiences.is_empty() {
        return Ok(());
    }
    let matches = |v: &Value| v.as_str().is_some_and(|a| audiences.iter().any(|x| x == a));
    let (aud, client_id) = match claims.get("token_use") {
        None => (claims.get("aud"), claims.get("client_id")),
        Some(Value::String(kind)) if kind == "id" => (claims.get("aud"), None),
        Some(Value::String(kind)) if kind == "access" => (None, claims.get("client_id")),
        Some(other) => {
            return Err(AuthError::Unauthorized(format!(
                "token_use {other} is neither id nor access"
            )));
        }
    };
    let ok = match (aud, client_id) {
        (Some(Value::Array(auds)), _) => auds.iter().any(matches),
        (Some(aud), _) => matches(aud),
        (None, Some(client_id)) => matches(client_id),
        (None, None) => return Err(AuthError::Unauthorized("claim aud missing".into())),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::Unauthorized("wrong audience".into()))
    }
}

/// `Bearer xyz` → `xyz` (the scheme is optional, as API Gateway accepts both).
fn bearer(value: &str) -> &str {
    let v = value.trim();
    match v.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => v,
    }
}

/// Scopes of a token: `scope` (space separated) or `scp` (array or string).
fn token_scopes(claims: &Map<String, Value>) -> HashSet<&str> {
    let mut out = HashSet::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split_whitespace()),
            Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_read_from_scope_strings_and_scp_arrays() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"scope":"read write","scp":["admin"]}"#).expect("json");
        let scopes = token_scopes(&claims);
        assert!(scopes.contains("read") && scopes.contains("write") && scopes.contains("admin"));
        assert!(!scopes.contains("delete"));
    }

    #[test]
    fn the_bearer_scheme_is_optional_and_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), "abc");
        assert_eq!(bearer("bearer  abc "), "abc");
        assert_eq!(bearer("abc"), "abc");
    }

    #[test]
    fn a_discovery_document_cannot_point_the_proxy_at_a_private_address_on_another_host() {
        let public = "https://issuer.example.com/.well-known/openid-configuration";
        for jwks in [
            "http://169.254.169.254/latest/meta-data/iam",
            "http://[fe80::1]/keys",
            "http://127.0.0.1:9901/config_dump",
            "http://localhost/keys",
            "http://[::ffff:169.254.169.254]/keys",
            "http://metadata.google.internal/computeMetadata/v1",
        ] {
            assert!(check_discovered(public, jwks).is_err(), "{jwks}");
        }
        assert!(check_discovered(public, "https://keys.example.com/jwks.json").is_ok());
        assert!(check_discovered(public, "http://10.0.0.7/jwks.json").is_ok());
        // A local identity provider (allowed on the Authorizer) may name itself.
        let local = "http://127.0.0.1:5556/.well-known/openid-configuration";
        assert!(check_discovered(local, "http://127.0.0.1:5556/keys").is_ok());
        assert!(check_discovered(local, "http://169.254.169.254/keys").is_err());
        assert!(check_discovered(public, "not a url").is_err());
    }

    #[test]
    fn symmetric_keys_in_a_jwks_are_never_used() {
        let doc = serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]});
        let set = KeySet::parse(&doc).expect("parses");
        assert!(set.keys.is_empty());
    }
}
