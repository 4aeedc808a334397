//! Response caching per stage: lookup before the integration, store while the answer streams.
//!
//! A stage with a cache has one bounded store (moka, weighed in bytes: key + headers + body), so
//! memory stays under `capacityBytes` whatever the traffic; entries expire after their route's
//! TTL, on the proxy's [`Clock`] (moka's own expiry, on the system clock, frees the memory).
//!
//! The key is stage + host as the backend sees it (`X-Forwarded-Host`, port included) + method +
//! normalized path + the route's declared key parameters (`querystring.NAME`, `header.NAME`);
//! canary requests get their own entries unless the canary `useStageCache`. On a route with an
//! authorizer or an API key the caller (principal id and API key id) joins the key, unless the
//! stage shares entries across principals; a caller with neither is not cached there at all.
//! A response's `Vary` names join the key with the request's values of those headers: the store
//! remembers the names under the key without them, and keeps the response under the key with
//! them.
//!
//! Only GET and HEAD requests without `Range` are served from or stored in the cache, and only
//! 2xx responses other than 206 without `Set-Cookie`, without `Cache-Control: private` /
//! `no-store` and without `Vary: *` are stored, while they stream to the client (a body larger
//! than [`MAX_ENTRY_BYTES`] is not kept).
//!
//! A client's `Cache-Control: max-age=0` refreshes the entry only when the route allows it
//! (`ALLOW`); `IGNORE` (the default) serves from the cache anyway, `FAIL_WITH_403` refuses.
//!
//! Stores outlive snapshots like the token buckets of `limits`: a registry keyed by stage id and
//! cache settings, held weakly, hands an unchanged stage its old store on a swap.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use causeway_snapshot::{CacheInvalidationPolicy, RouteCache, StageCache};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use moka::notification::RemovalCause;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::body::{BoxError, ProxyBody, full};
use crate::clock::Clock;
use crate::error::RequestError;

/// `X-Cache: Hit` / `Miss`, when the stage asks for it.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// The largest response kept (API Gateway's cache entry limit, 1 MiB).
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

// ---------------------------------------------------------------- metrics

/// Labels of the cache metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CacheLabels {
    pub api: String,
    pub stage: String,
}

/// `causeway_proxy_cache_*`: hits, misses, evictions (for lack of room) and bytes held.
#[derive(Clone, Default)]
pub(crate) struct CacheMetrics {
    hits: Family<CacheLabels, Counter>,
    misses: Family<CacheLabels, Counter>,
    evictions: Family<CacheLabels, Counter>,
    bytes: Family<CacheLabels, Gauge>,
}

impl CacheMetrics {
    /// Creates the metrics and registers them.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "causeway_proxy_cache_hits",
            "Responses served from a stage cache",
            m.hits.clone(),
        );
        registry.register(
            "causeway_proxy_cache_misses",
            "Cacheable requests not found in the stage cache",
            m.misses.clone(),
        );
        registry.register(
            "causeway_proxy_cache_evictions",
            "Cache entries evicted to stay within the stage's capacity",
            m.evictions.clone(),
        );
        registry.register(
            "causeway_proxy_cache_bytes",
            "Bytes held by a stage cache (weighed entries)",
            m.bytes.clone(),
        );
        m
    }
}

// ---------------------------------------------------------------- stores

/// One cached response.
pub(crate) struct Entry {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    ttl: Duration,
}

/// What the store holds under a key.
pub(crate) enum Cached {
    /// A response.
    Response(Entry),
    /// The responses under this key vary by these request headers (sorted, lowercase): each is
    /// kept under the key with their values ([`variant_key`]).
    Vary {
        names: Vec<HeaderName>,
        ttl: Duration,
    },
}

impl Cached {
    fn ttl(&self) -> Duration {
        match self {
            Self::Response(e) => e.ttl,
            Self::Vary { ttl, .. } => *ttl,
        }
    }
}

/// What the store keeps under a key, and until when (on the proxy's clock) it is served.
pub(crate) struct Stored {
    cached: Cached,
    expires: Instant,
}

struct PerEntryTtl;

impl moka::Expiry<String, Arc<Stored>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.cached.ttl())
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Stored>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.cached.ttl())
    }
}

/// The weight of an entry: what it holds in memory, roughly.
fn weight(key: &str, cached: &Cached) -> u32 {
    let held = match cached {
        Cached::Response(entry) => {
            let headers: usize = entry
                .headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 32)
                .sum();
            headers + entry.body.len()
        }
        Cached::Vary { names, .. } => names.iter().map(|n| n.as_str().len() + 32).sum(),
    };
    u32::try_from(key.len() + held + 128).unwrap_or(u32::MAX)
}

/// A stage's store.
pub(crate) struct StageStore {
    cache: moka::sync::Cache<String, Arc<Stored>>,
    clock: Clock,
    capacity: u64,
    status_header: bool,
    share_across_principals: bool,
    /// This store's series, looked up once (a lookup hashes the labels).
    hits: Counter,
    misses: Counter,
    bytes: Gauge,
}

impl StageStore {
    fn new(
        settings: &StageCache,
        labels: CacheLabels,
        metrics: CacheMetrics,
        clock: Clock,
    ) -> Self {
        let evictions = metrics.evictions.get_or_create(&labels).clone();
        let hits = metrics.hits.get_or_create(&labels).clone();
        let misses = metrics.misses.get_or_create(&labels).clone();
        let bytes = metrics.bytes.get_or_create(&labels).clone();
        let cache = moka::sync::Cache::builder()
            .max_capacity(settings.capacity_bytes)
            .weigher(|k: &String, v: &Arc<Stored>| weight(k, &v.cached))
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_k, _v, cause| {
                if cause == RemovalCause::Size {
                    evictions.inc();
                }
            })
            .build();
        Self {
            cache,
            clock,
            capacity: settings.capacity_bytes,
            status_header: settings.status_header,
            share_across_principals: settings.share_across_principals,
            hits,
            misses,
            bytes,
        }
    }

    fn insert(&self, key: String, cached: Cached) {
        // `checked_add`: a TTL from a hand-built snapshot must not panic the proxy.
        let now = self.clock.now();
        let expires = now.checked_add(cached.ttl()).unwrap_or(now);
        self.cache.insert(key, Arc::new(Stored { cached, expires }));
        if self.cache.weighted_size() > self.capacity {
            self.cache.run_pending_tasks();
        }
        self.bytes
            .set(i64::try_from(self.cache.weighted_size()).unwrap_or(i64::MAX));
    }

    /// The value under `key`, unless it has expired on the proxy's clock (then it is dropped).
    fn get(&self, key: &str) -> Option<Arc<Stored>> {
        let stored = self.cache.get(key)?;
        if stored.expires > self.clock.now() {
            return Some(stored);
        }
        self.cache.invalidate(key);
        None
    }

    /// Bytes held now, after pending maintenance (for tests).
    #[cfg(test)]
    fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct StoreKey {
    stage: String,
    settings: StageCache,
}

/// The registry of live stores (see the module docs).
pub(crate) struct Caches {
    stores: Mutex<HashMap<StoreKey, Weak<StageStore>>>,
    metrics: CacheMetrics,
    clock: Clock,
}

impl Caches {
    /// No store yet; stores read the time from `clock`.
    pub(crate) fn new(metrics: CacheMetrics, clock: Clock) -> Self {
        Self {
            stores: Mutex::new(HashMap::new()),
            metrics,
            clock,
        }
    }

    /// The store of a stage with these settings: the live one if any, else a new, empty one.
    pub(crate) fn store(
        &self,
        stage_id: &str,
        settings: &StageCache,
        labels: CacheLabels,
    ) -> Arc<StageStore> {
        let key = StoreKey {
            stage: stage_id.to_string(),
            settings: settings.clone(),
        };
        let mut stores = self
            .stores
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(live) = stores.get(&key).and_then(Weak::upgrade) {
            return live;
        }
        let store = Arc::new(StageStore::new(
            settings,
            labels,
            self.metrics.clone(),
            self.clock.clone(),
        ));
        stores.insert(key, Arc::downgrade(&store));
        store
    }

    /// Forgets stores no table holds any more.
    pub(crate) fn prune(&self) {
        let mut stores = self
            .stores
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        stores.retain(|_, weak| weak.strong_count() > 0);
    }
}

// ---------------------------------------------------------------- the request side

/// What the lookup step leaves for the store step: where to keep the response.
pub(crate) struct Pending {
    store: Arc<StageStore>,
    /// The key without the response's `Vary` headers.
    key: String,
    ttl: Duration,
    /// The request's headers, for the values of the response's `Vary` names.
    request_headers: HeaderMap,
}

/// The outcome of a lookup.
pub(crate) enum Lookup {
    /// Answer from the cache.
    Hit(Response<ProxyBody>),
    /// Call the integration; keep its response if it qualifies (`None`: do not).
    Miss(Option<Pending>),
}

fn is_max_age_zero(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim().to_ascii_lowercase();
            d == "max-age=0" || d == "no-cache"
        })
}

/// Normalizes a path for the key: repeated slashes collapsed, percent-escapes upper case.
fn normalize_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
        if c == '%' {
            for _ in 0..2 {
                if let Some(h) = chars.next() {
                    out.push(h.to_ascii_uppercase());
                }
            }
        }
    }
    out
}

/// The cache key of a request.
fn key(
    stage_scope: &str,
    host: &str,
    method: &Method,
    stage_path: &str,
    route: &RouteCache,
    request: &Request<ProxyBody>,
) -> String {
    let mut key = format!(
        "{stage_scope}\n{host}\n{method}\n{}",
        normalize_path(stage_path)
    );
    if route.key_parameters.is_empty() {
        return key;
    }
    let query = crate::context::query_pairs(request.uri().query());
    for p in &route.key_parameters {
        key.push('\n');
        key.push_str(p);
        key.push('=');
        if let Some(name) = p.strip_prefix("querystring.") {
            let mut values: Vec<&str> = query
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect();
            values.sort_unstable();
            key.push_str(&format!("{values:?}"));
        } else if let Some(name) = p.strip_prefix("header.") {
            let values: Vec<String> = request
                .headers()
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            key.push_str(&format!("{values:?}"));
        }
    }
    key
}

/// What the lookup needs to know about where the request goes and who sent it.
pub(crate) struct Place<'a> {
    pub stage_id: &'a str,
    /// The request was sent to a canary that does not use the stage's entries.
    pub separate_canary: bool,
    /// The host as the backend sees it (`X-Forwarded-Host`): lowercase, port included.
    pub host: &'a str,
    pub stage_path: &'a str,
    /// The route has an authorizer or requires an API key.
    pub protected: bool,
    /// Who the caller is, once authorized: the principal id, or the authorizer's context.
    pub principal_id: Option<&'a str>,
    /// The caller's API key id, once checked.
    pub api_key_id: Option<&'a str>,
}

/// The key of the variant of `key` whose `Vary` headers (`names`) have the request's values.
fn variant_key(key: &str, names: &[HeaderName], headers: &HeaderMap) -> String {
    let mut out = key.to_string();
    for name in names {
        let values: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
        out.push_str(&format!("\nvary {name}={values:?}"));
    }
    out
}

/// The request headers a response varies by (sorted, lowercase, deduplicated); `None` for
/// `Vary: *` (no request can be matched to it).
fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for token in headers
        .get_all(header::VARY)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
    {
        let token = token.trim_ascii();
        if token == b"*" {
            return None;
        }
        if let Ok(name) = HeaderName::from_bytes(token) {
            names.push(name);
        }
    }
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names)
}

/// serves a hit, or says where to keep the response of a miss.
pub(crate) fn lookup(
    store: Option<&Arc<StageStore>>,
    route: Option<&RouteCache>,
    place: &Place<'_>,
    request: &Request<ProxyBody>,
) -> Result<Lookup, RequestError> {
    let (Some(store), Some(route)) = (store, route) else {
        return Ok(Lookup::Miss(None));
    };
    let method = request.method();
    if !(method == Method::GET || method == Method::HEAD)
        || route.ttl_seconds == 0
        || request.headers().contains_key(header::RANGE)
    {
        return Ok(Lookup::Miss(None));
    }
    let scope = if place.separate_canary {
        format!("{} canary", place.stage_id)
    } else {
        place.stage_id.to_string()
    };
    let mut key = key(&scope, place.host, method, place.stage_path, route, request);
    if place.protected && !store.share_across_principals {
        if place.principal_id.is_none() && place.api_key_id.is_none() {
            // Callers that cannot be told apart must not see each other's answers.
            return Ok(Lookup::Miss(None));
        }
        key.push_str(&format!(
            "\nprincipal={:?}\napi-key={:?}",
            place.principal_id, place.api_key_id
        ));
    }
    let refresh = is_max_age_zero(request.headers());
    let bypass = match (refresh, route.invalidation) {
        (false, _) | (true, CacheInvalidationPolicy::Ignore) => false,
        (true, CacheInvalidationPolicy::Allow) => true,
        (true, CacheInvalidationPolicy::FailWith403) => {
            return Err(RequestError::CacheInvalidationForbidden);
        }
    };
    let found = match store.get(&key) {
        _ if bypass => None,
        Some(stored) => match &stored.cached {
            Cached::Vary { names, .. } => store.get(&variant_key(&key, names, request.headers())),
            Cached::Response(_) => Some(stored),
        },
        None => None,
    };
    if let Some(stored) = found
        && let Cached::Response(entry) = &stored.cached
    {
        store.hits.inc();
        let mut response = Response::new(full(entry.body.clone()));
        *response.status_mut() = entry.status;
        *response.headers_mut() = entry.headers.clone();
        if store.status_header {
            response
                .headers_mut()
                .insert(X_CACHE, HeaderValue::from_static("Hit"));
        }
        return Ok(Lookup::Hit(response));
    }
    store.misses.inc();
    Ok(Lookup::Miss(Some(Pending {
        store: Arc::clone(store),
        key,
        ttl: Duration::from_secs(u64::from(route.ttl_seconds)),
        request_headers: request.headers().clone(),
    })))
}

/// Whether a response may be kept.
fn storable(response: &Response<ProxyBody>) -> bool {
    if !response.status().is_success()
        || response.status() == StatusCode::PARTIAL_CONTENT
        || response.headers().contains_key(header::SET_COOKIE)
        || vary_names(response.headers()).is_none()
    {
        return false;
    }
    let forbidden = response
        .headers()
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim().to_ascii_lowercase();
            d == "private" || d == "no-store" || d.starts_with("private=")
        });
    if forbidden {
        return false;
    }
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    declared.is_none_or(|n| n <= MAX_ENTRY_BYTES)
}

/// marks a miss (`X-Cache: Miss`) and keeps the response as it streams to the client,
/// if it qualifies.
pub(crate) fn store(
    pending: Option<Pending>,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let Some(pending) = pending else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    if pending.store.status_header {
        parts
            .headers
            .insert(X_CACHE, HeaderValue::from_static("Miss"));
    }
    let probe = Response::from_parts(parts, body);
    if !storable(&probe) {
        return probe;
    }
    let (parts, body) = probe.into_parts();
    let mut headers = parts.headers.clone();
    headers.remove(X_CACHE);
    headers.remove(crate::upstream::X_REQUEST_ID);
    let keeper = Keeper {
        pending: Some(pending),
        status: parts.status,
        headers,
        buffer: BytesMut::new(),
    };
    let body = TeeBody {
        inner: body,
        keeper,
    }
    .boxed_unsync();
    Response::from_parts(parts, body)
}

struct Keeper {
    pending: Option<Pending>,
    status: StatusCode,
    headers: HeaderMap,
    buffer: BytesMut,
}

impl Keeper {
    fn push(&mut self, data: &Bytes) {
        if self.pending.is_none() {
            return;
        }
        if self.buffer.len() + data.len() > MAX_ENTRY_BYTES {
            self.pending = None;
            self.buffer = BytesMut::new();
            return;
        }
        self.buffer.extend_from_slice(data);
    }

    fn complete(&mut self) {
        if let Some(p) = self.pending.take() {
            let names = vary_names(&self.headers).unwrap_or_default();
            let entry = Entry {
                status: self.status,
                headers: std::mem::take(&mut self.headers),
                body: std::mem::take(&mut self.buffer).freeze(),
                ttl: p.ttl,
            };
            if names.is_empty() {
                p.store.insert(p.key, Cached::Response(entry));
                return;
            }
            let variant = variant_key(&p.key, &names, &p.request_headers);
            p.store.insert(p.key, Cached::Vary { names, ttl: p.ttl });
            p.store.insert(variant, Cached::Response(entry));
        }
    }
}

/// A body that copies what it streams, and keeps it when the stream ends normally.
struct TeeBody {
    inner: ProxyBody,
    keeper: Keeper,
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    self.keeper.push(&data);
                }
                if self.inner.is_end_stream() {
                    self.keeper.complete();
                }
            }
            Poll::Ready(Some(Err(_))) => self.keeper.pending = None,
            Poll::Ready(None) => self.keeper.complete(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(capacity: u64) -> StageCache {
        StageCache {
            capacity_bytes: capacity,
            status_header: true,
            share_across_principals: false,
        }
    }

    fn labels() -> CacheLabels {
        CacheLabels {
            api: "a".into(),
            stage: "s".into(),
        }
    }

    #[test]
    fn the_registry_keeps_a_store_while_its_settings_are_unchanged() {
        let caches = Caches::new(CacheMetrics::default(), Clock::system());
        let first = caches.store("st", &settings(1000), labels());
        let same = caches.store("st", &settings(1000), labels());
        assert!(Arc::ptr_eq(&first, &same));
        let changed = caches.store("st", &settings(2000), labels());
        assert!(!Arc::ptr_eq(&first, &changed));
    }

    #[test]
    fn a_store_never_holds_more_than_its_capacity_of_unique_entries() {
        let store = StageStore::new(
            &settings(64 * 1024),
            labels(),
            CacheMetrics::default(),
            Clock::system(),
        );
        for i in 0..2_000 {
            store.insert(
                format!("key-{i}"),
                Cached::Response(Entry {
                    status: StatusCode::OK,
                    headers: HeaderMap::new(),
                    body: Bytes::from(vec![b'x'; 500]),
                    ttl: Duration::from_secs(60),
                }),
            );
        }
        let held = store.weighted_size();
        assert!(held <= 64 * 1024, "held {held} bytes");
        assert!(held > 32 * 1024, "the store is used, not emptied: {held}");
    }

    #[test]
    fn paths_are_normalized_for_the_key() {
        assert_eq!(normalize_path("//a///b%2f"), "/a/b%2F");
    }
}
