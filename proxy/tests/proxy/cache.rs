//! Stage response caching: hits and misses, TTL, key parameters and hosts, invalidation, what
//! is never stored, bounded memory, and survival across snapshot swaps.

use std::time::Duration;

use causeway_snapshot::{
    BasePathMapping, CacheInvalidationPolicy, HostConfig, RouteCache, RouteConfig, Snapshot,
    StageCache,
};
use http::{Method, StatusCode};

use crate::support::*;

const OTHER_HOST: &str = "other.test";

fn cached(
    route: impl Into<RouteConfig>,
    ttl: u32,
    keys: &[&str],
    inv: CacheInvalidationPolicy,
) -> RouteConfig {
    let mut route = route.into();
    route.cache = Some(RouteCache {
        ttl_seconds: ttl,
        key_parameters: keys.iter().map(|k| k.to_string()).collect(),
        invalidation: inv,
    });
    route
}

/// A stage with a cache of `capacity` bytes and `X-Cache`, on two hosts, with the routes.
fn snapshot(upstream: &Upstream, capacity: u64, routes: Vec<RouteConfig>) -> Snapshot {
    let mut builder = SnapshotBuilder::new().backend("up", &[upstream.endpoint()]);
    for r in routes {
        builder = builder.route(r);
    }
    let mut snapshot = builder.build();
    snapshot.stages[0].cache = Some(StageCache {
        capacity_bytes: capacity,
        status_header: true,
        share_across_principals: false,
    });
    snapshot.hosts.push(HostConfig {
        hostname: OTHER_HOST.to_string(),
        redirect_to_https: false,
        rules: vec![],
        mappings: vec![BasePathMapping {
            base_path: String::new(),
            stage: STAGE.to_string(),
        }],
    });
    snapshot.seal()
}

/// An upstream that numbers its answers, so a cached answer is recognisable.
async fn counting_upstream() -> Upstream {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Upstream::with_handler(move |r| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let answer = Reply::ok(format!("answer {i} for {}", r.path));
        match r.path.as_str() {
            "/cookie" => answer.header("set-cookie", "s=1"),
            "/private" => answer.header("cache-control", "private, max-age=60"),
            "/nostore" => answer.header("cache-control", "no-store"),
            "/error" => answer.status(500),
            "/partial" => answer.status(206).header("content-range", "bytes 0-3/10"),
            "/varystar" => answer.header("vary", "*"),
            "/vary" => answer.header("vary", "Accept-Language, accept-encoding"),
            _ => answer,
        }
    })
    .await
}

async fn fetch(proxy: &TestProxy, path: &str, host: &str, headers: &[(&str, &str)]) -> RawAnswer {
    exchange(Method::GET, &proxy.url(path), host, headers, Vec::new()).await
}

fn x_cache(a: &RawAnswer) -> String {
    a.header("x-cache").unwrap_or_default()
}

#[tokio::test]
async fn a_second_request_within_the_ttl_is_a_hit_and_after_the_ttl_a_miss() {
    let upstream = counting_upstream().await;
    let routes = vec![cached(
        proxy_to("GET /pets", "up"),
        1,
        &[],
        CacheInvalidationPolicy::Ignore,
    )];
    let (proxy, clock) = TestProxy::with_manual_clock(snapshot(&upstream, 1 << 20, routes)).await;
    let first = fetch(&proxy, "/pets", HOST, &[]).await;
    let second = fetch(&proxy, "/pets", HOST, &[]).await;
    assert_eq!(
        (x_cache(&first).as_str(), x_cache(&second).as_str()),
        ("Miss", "Hit")
    );
    assert_eq!(first.text(), "answer 0 for /pets");
    assert_eq!(second.text(), first.text());
    assert_ne!(
        first.header("x-request-id"),
        second.header("x-request-id"),
        "a hit still gets its own request id"
    );
    assert_eq!(upstream.calls(), 1);
    clock.advance(Duration::from_millis(1_100));
    let third = fetch(&proxy, "/pets", HOST, &[]).await;
    assert_eq!(x_cache(&third), "Miss");
    assert_eq!(third.text(), "answer 1 for /pets");
    let metrics = exchange(
        Method::GET,
        &proxy.admin_url("/metrics"),
        "admin",
        &[],
        Vec::new(),
    )
    .await;
    let text = metrics.text();
    assert!(
        text.contains(r#"causeway_proxy_cache_hits_total{api="pets",stage="prod"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"causeway_proxy_cache_misses_total{api="pets",stage="prod"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn key_parameters_and_hosts_make_separate_entries_and_other_parameters_do_not() {
    let upstream = counting_upstream().await;
    let routes = vec![cached(
        proxy_to("GET /pets", "up"),
        300,
        &["querystring.kind", "header.x-api-key"],
        CacheInvalidationPolicy::Ignore,
    )];
    let proxy = TestProxy::with_snapshot(snapshot(&upstream, 1 << 20, routes)).await;
    let a = fetch(&proxy, "/pets?kind=dog", HOST, &[("x-api-key", "key-a")]).await;
    let b = fetch(&proxy, "/pets?kind=dog", HOST, &[("x-api-key", "key-b")]).await;
    assert_eq!(
        x_cache(&b),
        "Miss",
        "another API key never sees key-a's entry"
    );
    assert_ne!(a.text(), b.text());
    let cat = fetch(&proxy, "/pets?kind=cat", HOST, &[("x-api-key", "key-a")]).await;
    assert_eq!(x_cache(&cat), "Miss", "another key parameter value");
    let other_host = fetch(
        &proxy,
        "/pets?kind=dog",
        OTHER_HOST,
        &[("x-api-key", "key-a")],
    )
    .await;
    assert_eq!(x_cache(&other_host), "Miss", "another host");
    let again = fetch(
        &proxy,
        "/pets?kind=dog&page=9",
        HOST,
        &[("x-api-key", "key-a")],
    )
    .await;
    assert_eq!(
        x_cache(&again),
        "Hit",
        "an undeclared parameter is not part of the key"
    );
    assert_eq!(again.text(), a.text());
    assert_eq!(upstream.calls(), 4);
}

#[tokio::test]
async fn a_client_invalidation_is_honoured_only_where_the_route_allows_it() {
    let upstream = counting_upstream().await;
    let routes = vec![
        cached(
            proxy_to("GET /allow", "up"),
            300,
            &[],
            CacheInvalidationPolicy::Allow,
        ),
        cached(
            proxy_to("GET /ignore", "up"),
            300,
            &[],
            CacheInvalidationPolicy::Ignore,
        ),
        cached(
            proxy_to("GET /refuse", "up"),
            300,
            &[],
            CacheInvalidationPolicy::FailWith403,
        ),
    ];
    let proxy = TestProxy::with_snapshot(snapshot(&upstream, 1 << 20, routes)).await;
    let bypass = [("cache-control", "max-age=0")];
    for path in ["/allow", "/ignore", "/refuse"] {
        assert_eq!(
            x_cache(&fetch(&proxy, path, HOST, &[]).await),
            "Miss",
            "{path}"
        );
    }
    let allowed = fetch(&proxy, "/allow", HOST, &bypass).await;
    assert_eq!(x_cache(&allowed), "Miss");
    assert_eq!(
        allowed.text(),
        "answer 3 for /allow",
        "refreshed from the backend"
    );
    let after = fetch(&proxy, "/allow", HOST, &[]).await;
    assert_eq!(
        (x_cache(&after).as_str(), after.text()),
        ("Hit", allowed.text()),
        "the refreshed entry is kept"
    );
    let ignored = fetch(&proxy, "/ignore", HOST, &bypass).await;
    assert_eq!(
        (x_cache(&ignored).as_str(), ignored.text().as_str()),
        ("Hit", "answer 1 for /ignore")
    );
    let refused = fetch(&proxy, "/refuse", HOST, &bypass).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(upstream.calls(), 4);
}

#[tokio::test]
async fn cookies_private_no_store_errors_and_posts_are_never_served_from_the_cache() {
    let upstream = counting_upstream().await;
    let mut routes: Vec<RouteConfig> = ["/cookie", "/private", "/nostore", "/error"]
        .iter()
        .map(|p| {
            cached(
                proxy_to(&format!("GET {p}"), "up"),
                300,
                &[],
                CacheInvalidationPolicy::Ignore,
            )
        })
        .collect();
    routes.push(cached(
        proxy_to("POST /pets", "up"),
        300,
        &[],
        CacheInvalidationPolicy::Ignore,
    ));
    let proxy = TestProxy::with_snapshot(snapshot(&upstream, 1 << 20, routes)).await;
    for path in ["/cookie", "/private", "/nostore", "/error"] {
        for _ in 0..2 {
            let a = fetch(&proxy, path, HOST, &[]).await;
            assert_eq!(x_cache(&a), "Miss", "{path}");
        }
    }
    for _ in 0..2 {
        let a = exchange(Method::POST, &proxy.url("/pets"), HOST, &[], "x").await;
        assert!(
            a.header("x-cache").is_none(),
            "a POST is not cacheable at all"
        );
    }
    assert_eq!(upstream.calls(), 10);
}

#[tokio::test]
async fn memory_stays_under_the_capacity_under_a_load_of_unique_urls() {
    let upstream = counting_upstream().await;
    let capacity = 32 * 1024;
    let routes = vec![cached(
        proxy_to("GET /items/{id}", "up"),
        300,
        &[],
        CacheInvalidationPolicy::Ignore,
    )];
    let proxy = TestProxy::with_snapshot(snapshot(&upstream, capacity, routes)).await;
    for i in 0..400 {
        let a = fetch(&proxy, &format!("/items/{i}"), HOST, &[]).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    let metrics = exchange(
        Method::GET,
        &proxy.admin_url("/metrics"),
        "admin",
        &[],
        Vec::new(),
    )
    .await;
    let text = metrics.text();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    let bytes = value("causeway_proxy_cache_bytes{");
    assert!(
        bytes > 0.0 && bytes <= capacity as f64,
        "held {bytes} of {capacity}: {text}"
    );
    assert!(
        value("causeway_proxy_cache_evictions_total{") > 0.0,
        "{text}"
    );
    // The newest entries are still served from the cache.
    assert_eq!(
        x_cache(&fetch(&proxy, "/items/399", HOST, &[]).await),
        "Hit"
    );
}

#[tokio::test]
async fn the_cache_survives_a_swap_that_keeps_its_settings_and_canaries_keep_their_own_entries() {
    let upstream = counting_upstream().await;
    let route = || {
        cached(
            proxy_to("GET /pets", "up"),
            300,
            &[],
            CacheInvalidationPolicy::Ignore,
        )
    };
    let proxy = TestProxy::with_snapshot(snapshot(&upstream, 1 << 20, vec![route()])).await;
    assert_eq!(x_cache(&fetch(&proxy, "/pets", HOST, &[]).await), "Miss");
    // A new snapshot (another route added) with the same cache settings keeps the entry.
    let swapped = snapshot(&upstream, 1 << 20, vec![route(), mock("GET /new", "n")]);
    proxy.proxy.apply(swapped);
    assert_eq!(x_cache(&fetch(&proxy, "/pets", HOST, &[]).await), "Hit");
    // Changed settings start an empty cache.
    proxy
        .proxy
        .apply(snapshot(&upstream, 2 << 20, vec![route()]));
    assert_eq!(x_cache(&fetch(&proxy, "/pets", HOST, &[]).await), "Miss");
    assert_eq!(upstream.calls(), 2);

    // A canary taking every request does not see the stage's entries...
    let mut canary = snapshot(&upstream, 2 << 20, vec![route()]);
    let canary_route = route();
    canary.stages[0].canary = Some(causeway_snapshot::CanaryConfig {
        percent: 100.0,
        deployment: causeway_snapshot::DeploymentConfig {
            deployment_id: "canary".into(),
            variables: Default::default(),
            routes: vec![canary_route],
        },
        sticky: None,
        use_stage_cache: false,
    });
    proxy.proxy.apply(canary.clone().seal());
    let c = fetch(&proxy, "/pets", HOST, &[]).await;
    assert_eq!(
        (
            x_cache(&c).as_str(),
            c.header("x-causeway-canary").as_deref()
        ),
        ("Miss", Some("true"))
    );
    // ...unless it uses the stage cache.
    if let Some(k) = canary.stages[0].canary.as_mut() {
        k.use_stage_cache = true;
    }
    proxy.proxy.apply(canary.seal());
    let shared = fetch(&proxy, "/pets", HOST, &[]).await;
    assert_eq!(x_cache(&shared), "Hit");
    assert_eq!(shared.text(), "answer 1 for /pets", "the stage's entry");
}

/// A stage cache on `GET /me` (needs an API key of plan `gold`: alice or bob), shared across
/// callers or not.
fn keyed(upstream: &Upstream, share: bool) -> Snapshot {
    use causeway_snapshot::{ApiKeyConfig, PlanStage, UsagePlanConfig};
    use sha2::{Digest, Sha256};
    let mut me = cached(
        proxy_to("GET /me", "up"),
        300,
        &[],
        CacheInvalidationPolicy::Ignore,
    );
    me.api_key_required = true;
    let mut snapshot = snapshot(upstream, 1 << 20, vec![me]);
    if let Some(cache) = snapshot.stages[0].cache.as_mut() {
        cache.share_across_principals = share;
    }
    let key = |id: &str| ApiKeyConfig {
        id: id.to_string(),
        sha256: hex::encode(Sha256::digest(format!("{id}-raw-key").as_bytes())),
        enabled: true,
        throttle: None,
        quota: None,
    };
    snapshot.usage_plans = vec![UsagePlanConfig {
        id: "default/gold".into(),
        stages: vec![PlanStage {
            stage: STAGE.into(),
            route_throttles: Default::default(),
        }],
        throttle: None,
        quota: None,
        fail_closed: true,
        rate_limit_headers: false,
        keys: vec![key("alice"), key("bob")],
    }];
    snapshot.seal()
}

#[tokio::test]
async fn on_a_keyed_route_each_caller_has_its_own_entries_unless_the_stage_shares_them() {
    let upstream = counting_upstream().await;
    let proxy = TestProxy::with_snapshot(keyed(&upstream, false)).await;
    let alice = [("x-api-key", "alice-raw-key")];
    let bob = [("x-api-key", "bob-raw-key")];
    let first = fetch(&proxy, "/me", HOST, &alice).await;
    assert_eq!(
        (first.status, x_cache(&first).as_str()),
        (StatusCode::OK, "Miss")
    );
    let other = fetch(&proxy, "/me", HOST, &bob).await;
    assert_eq!(x_cache(&other), "Miss", "bob never sees alice's answer");
    assert_ne!(other.text(), first.text());
    let again = fetch(&proxy, "/me", HOST, &alice).await;
    assert_eq!(
        (x_cache(&again).as_str(), again.text()),
        ("Hit", first.text())
    );
    assert_eq!(upstream.calls(), 2);

    proxy.proxy.apply(keyed(&upstream, true));
    let a = fetch(&proxy, "/me", HOST, &alice).await;
    let b = fetch(&proxy, "/me", HOST, &bob).await;
    assert_eq!(
        (x_cache(&a).as_str(), x_cache(&b).as_str()),
        ("Miss", "Hit")
    );
    assert_eq!(b.text(), a.text(), "a shared entry serves every caller");
}

#[tokio::test]
async fn ranges_partial_answers_and_vary_star_are_never_stored_and_vary_headers_join_the_key() {
    let upstream = counting_upstream().await;
    let routes = ["/pets", "/partial", "/varystar", "/vary"]
        .iter()
        .map(|p| {
            cached(
                proxy_to(&format!("GET {p}"), "up"),
                300,
                &[],
                CacheInvalidationPolicy::Ignore,
            )
        })
        .collect();
    let proxy = TestProxy::with_snapshot(snapshot(&upstream, 1 << 20, routes)).await;
    for _ in 0..2 {
        let ranged = fetch(&proxy, "/pets", HOST, &[("range", "bytes=0-3")]).await;
        assert!(
            ranged.header("x-cache").is_none(),
            "a Range request bypasses the cache"
        );
        assert_eq!(x_cache(&fetch(&proxy, "/partial", HOST, &[]).await), "Miss");
        assert_eq!(
            x_cache(&fetch(&proxy, "/varystar", HOST, &[]).await),
            "Miss"
        );
    }
    assert_eq!(
        x_cache(&fetch(&proxy, "/pets", HOST, &[]).await),
        "Miss",
        "nothing kept"
    );
    assert_eq!(upstream.calls(), 7);

    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    let first_en = fetch(&proxy, "/vary", HOST, &en).await;
    let first_fr = fetch(&proxy, "/vary", HOST, &fr).await;
    assert_eq!(
        (x_cache(&first_en).as_str(), x_cache(&first_fr).as_str()),
        ("Miss", "Miss"),
        "another Accept-Language is another entry"
    );
    let again_en = fetch(&proxy, "/vary", HOST, &en).await;
    let again_fr = fetch(&proxy, "/vary", HOST, &fr).await;
    assert_eq!(
        (again_en.text(), again_fr.text()),
        (first_en.text(), first_fr.text())
    );
    assert_eq!(
        (x_cache(&again_en).as_str(), x_cache(&again_fr).as_str()),
        ("Hit", "Hit")
    );
    assert_eq!(upstream.calls(), 9);
}

#[tokio::test]
async fn the_host_key_includes_the_port_the_backend_sees() {
    let upstream = counting_upstream().await;
    let routes = vec![cached(
        proxy_to("GET /pets", "up"),
        300,
        &[],
        CacheInvalidationPolicy::Ignore,
    )];
    let proxy = TestProxy::with_snapshot(snapshot(&upstream, 1 << 20, routes)).await;
    let on_8080 = fetch(&proxy, "/pets", "api.test:8080", &[]).await;
    let on_9090 = fetch(&proxy, "/pets", "api.test:9090", &[]).await;
    assert_eq!(
        (x_cache(&on_8080).as_str(), x_cache(&on_9090).as_str()),
        ("Miss", "Miss")
    );
    let again = fetch(&proxy, "/pets", "API.test:8080", &[]).await;
    assert_eq!(
        (x_cache(&again).as_str(), again.text()),
        ("Hit", on_8080.text())
    );
    assert_eq!(upstream.calls(), 2);
}
