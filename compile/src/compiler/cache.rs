//! Response caching of a stage: `spec.cache` and the caching fields of `spec.routeSettings`.
//!
//! When the stage's cache is enabled every route is cached (the proxy caches only GET and HEAD
//! requests, as API Gateway enables caching for GET methods by default) unless its route
//! settings say `cachingEnabled: false`. A route's TTL is its own `cacheTtlSeconds`, else the
//! stage's `ttlSeconds`, else 300 s; key parameters are `querystring.NAME` or `header.NAME`
//! (API Gateway's `method.request.querystring.NAME` is accepted too). `shareAcrossPrincipals`
//! (default false) lets every caller of a route with an authorizer or API key share entries;
//! otherwise the proxy keeps them per caller.

use std::collections::BTreeMap;

use causeway_crds::stage::{CacheInvalidation, StageSpec};
use causeway_snapshot::{
    CacheInvalidationPolicy, DEFAULT_CACHE_CAPACITY_BYTES, DEFAULT_CACHE_TTL_SECONDS,
    MAX_CACHE_TTL_SECONDS, RouteCache, StageCache,
};

use super::Problem;
use crate::reasons;

/// The caching of a stage's routes.
#[derive(Debug, Default)]
pub(crate) struct CachePlan {
    /// The stage's cache, when enabled.
    pub stage: Option<StageCache>,
    default: Option<RouteCache>,
    by_route: BTreeMap<String, Option<RouteCache>>,
}

impl CachePlan {
    /// The caching of the route with this key.
    pub(crate) fn for_route(&self, key: &str) -> Option<RouteCache> {
        match self.by_route.get(key) {
            Some(settings) => settings.clone(),
            None => self.default.clone(),
        }
    }
}

fn invalid(message: String) -> Problem {
    Problem::invalid(reasons::INVALID, message)
}

fn ttl(field: &str, seconds: u32) -> Result<u32, Problem> {
    if seconds > MAX_CACHE_TTL_SECONDS {
        return Err(invalid(format!(
            "{field} {seconds} is not in 0-{MAX_CACHE_TTL_SECONDS}"
        )));
    }
    Ok(seconds)
}

/// Normalizes a cache key parameter.
fn key_parameter(field: &str, raw: &str) -> Result<String, Problem> {
    let p = raw.strip_prefix("method.request.").unwrap_or(raw);
    if let Some(name) = p.strip_prefix("header.")
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c))
    {
        return Ok(format!("header.{}", name.to_ascii_lowercase()));
    }
    if let Some(name) = p.strip_prefix("querystring.")
        && !name.is_empty()
        && !name.chars().any(|c| c.is_whitespace() || "&=#".contains(c))
    {
        return Ok(format!("querystring.{name}"));
    }
    Err(invalid(format!(
        "{field} {raw:?} is not querystring.NAME or header.NAME"
    )))
}

/// Reads a stage's cache settings.
pub(crate) fn plan(spec: &StageSpec) -> Result<CachePlan, Problem> {
    let Some(cache) = spec.cache.as_ref().filter(|c| c.enabled) else {
        return Ok(CachePlan::default());
    };
    let capacity_bytes = cache.capacity_bytes.unwrap_or(DEFAULT_CACHE_CAPACITY_BYTES);
    if capacity_bytes == 0 {
        return Err(invalid(
            "spec.cache.capacityBytes must be more than 0".into(),
        ));
    }
    let stage_ttl = ttl(
        "spec.cache.ttlSeconds",
        cache.ttl_seconds.unwrap_or(DEFAULT_CACHE_TTL_SECONDS),
    )?;
    let default = RouteCache {
        ttl_seconds: stage_ttl,
        key_parameters: vec![],
        invalidation: CacheInvalidationPolicy::Ignore,
    };
    let mut by_route = BTreeMap::new();
    for (i, settings) in spec.route_settings.iter().enumerate() {
        let field = format!("spec.routeSettings[{i}]");
        let touches_cache = settings.caching_enabled.is_some()
            || settings.cache_ttl_seconds.is_some()
            || !settings.cache_key_parameters.is_empty()
            || settings.cache_invalidation.is_some();
        if !touches_cache {
            continue;
        }
        let route = if settings.caching_enabled == Some(false) {
            None
        } else {
            let mut key_parameters = settings
                .cache_key_parameters
                .iter()
                .enumerate()
                .map(|(j, p)| key_parameter(&format!("{field}.cacheKeyParameters[{j}]"), p))
                .collect::<Result<Vec<_>, _>>()?;
            key_parameters.sort();
            key_parameters.dedup();
            Some(RouteCache {
                ttl_seconds: match settings.cache_ttl_seconds {
                    Some(s) => ttl(&format!("{field}.cacheTtlSeconds"), s)?,
                    None => stage_ttl,
                },
                key_parameters,
                invalidation: match settings.cache_invalidation {
                    Some(CacheInvalidation::Allow) => CacheInvalidationPolicy::Allow,
                    Some(CacheInvalidation::FailWith403) => CacheInvalidationPolicy::FailWith403,
                    Some(CacheInvalidation::Ignore) | None => CacheInvalidationPolicy::Ignore,
                },
            })
        };
        if by_route.insert(settings.route_key.clone(), route).is_some() {
            return Err(invalid(format!(
                "{field}: route key {:?} has cache settings twice",
                settings.route_key
            )));
        }
    }
    Ok(CachePlan {
        stage: Some(StageCache {
            capacity_bytes,
            status_header: cache.cache_status_header.unwrap_or(false),
            share_across_principals: cache.share_across_principals.unwrap_or(false),
        }),
        default: Some(default),
        by_route,
    })
}
