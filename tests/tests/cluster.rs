//! Causeway in a real cluster: a private kube-apiserver 1.20 from kube-local per test
//! ([`KubeLocal::required`]: never skipped; a missing kube-local fails with the command that
//! builds it), the `causeway controller` and `causeway proxy` binaries as real processes.
//!
//! - service-account tokens issued by the API server (TokenRequest) verified by the proxy with
//!   the keys the controller read from the API server;
//! - GitOps: after the controller reconciled every example, neither `kubectl diff` (Argo CD's
//!   client-side view) nor a server-side dry-run apply changes a `spec`, and the Argo CD health
//!   check in `deploy/gitops/` (run with Debian's `lua5.4`) reads the real statuses right;
//! - leader failover between two controllers;
//! - 1,000 Routes applied at once, timed to `Programmed=True`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use causeway_e2e::kube_local::KubeLocal;
use causeway_e2e::processes::{Controller, Proxy};
use causeway_e2e::{eventually, get, repo_root};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// `causeway controller` against the cluster, as `identity`, in `system_ns`.
async fn start_controller(
    kube: &KubeLocal,
    work: &Path,
    identity: &str,
    system_ns: &str,
) -> Controller {
    start_controller_with(kube, work, identity, system_ns, &[]).await
}

/// [`start_controller`] with more flags.
async fn start_controller_with(
    kube: &KubeLocal,
    work: &Path,
    identity: &str,
    system_ns: &str,
    extra: &[&str],
) -> Controller {
    let kubeconfig = kube.kubeconfig.display().to_string();
    let mut args = vec![
        "--kubeconfig",
        &kubeconfig,
        "--controller-namespace",
        system_ns,
        "--identity",
        identity,
        "--debounce-millis",
        "200",
    ];
    args.extend_from_slice(extra);
    Controller::start(work, &args, WAIT).await
}

/// A proxy connected to `controller` that applied a snapshot.
async fn connected_proxy(work: &Path, id: &str, controller: SocketAddr, tls: &Path) -> Proxy {
    let state = work.join(format!("{id}.json")).display().to_string();
    let more = ["--state-file", &state, "--access-log", "off"];
    let proxy = Proxy::start(work, id, controller, tls, &more, WAIT).await;
    proxy.wait_ready().await;
    proxy
}

/// Waits until `GET host path` (with a bearer `token`) answers `status` on `proxy`; returns
/// the body.
async fn wait_status(
    proxy: &Proxy,
    host: &str,
    path: &str,
    token: Option<&str>,
    status: u16,
) -> String {
    let found = eventually(WAIT, || async {
        let r = get_with_token(proxy.traffic, host, path, token)
            .await
            .ok()?;
        (r.0 == status).then_some(r.1)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "GET {host}{path} never answered {status}; proxy stderr:\n{}",
            proxy.process.stderr()
        )
    })
}

/// GET with an optional bearer token: (status, body).
async fn get_with_token(
    addr: SocketAddr,
    host: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut req = http::Request::get(format!("http://{addr}{path}")).header("host", host);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Installs the CRDs and creates `namespaces`.
fn prepare(kube: &KubeLocal, namespaces: &[&str]) {
    let crds = repo_root().join("deploy/crds/causeway.dev.yaml");
    kube.run(&[
        "apply",
        "--validate=false",
        "-f",
        &crds.display().to_string(),
    ]);
    kube.run(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ]);
    for ns in namespaces {
        kube.run(&["create", "namespace", ns]);
    }
}

/// The proxy's push certificates from the Secret the controller made, into `dir`.
async fn proxy_certs(kube: &KubeLocal, system_ns: &str, dir: &Path) {
    std::fs::create_dir_all(dir).expect("dir");
    let made = eventually(WAIT, || async {
        let out = kube.kubectl(&["get", "secret", "causeway-proxy-tls", "-n", system_ns]);
        out.status.success().then_some(())
    })
    .await;
    assert!(
        made.is_some(),
        "the controller never made causeway-proxy-tls"
    );
    for key in ["ca.crt", "tls.crt", "tls.key"] {
        let template = format!("go-template={{{{index .data \"{key}\" | base64decode}}}}");
        let pem = kube.run(&[
            "get",
            "secret",
            "causeway-proxy-tls",
            "-n",
            system_ns,
            "-o",
            &template,
        ]);
        std::fs::write(dir.join(key), pem).expect("write pem");
    }
}

/// Polls `kubectl args` until its stdout satisfies `check`; returns it.
async fn wait_for(
    kube: &KubeLocal,
    args: &[&str],
    what: &str,
    timeout: Duration,
    check: impl Fn(&str) -> bool,
    stderr: &dyn Fn() -> String,
) -> String {
    let found = eventually(timeout, || async {
        let out = kube.kubectl(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && check(&text)).then_some(text)
    })
    .await;
    found.unwrap_or_else(|| panic!("{what} never happened; controller stderr:\n{}", stderr()))
}

/// A number no earlier call of this process returned, for file names in a work directory.
fn unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `kubectl apply -f -` of `yaml`.
fn apply_text(kube: &KubeLocal, work: &Path, yaml: &str) {
    let file = work.join(format!("apply-{}.yaml", unique()));
    std::fs::write(&file, yaml).expect("write yaml");
    kube.run(&[
        "apply",
        "--validate=false",
        "-f",
        &file.display().to_string(),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Service-account authorizer

/// A token for `ns/account` with `audience`, issued by the API server (TokenRequest API:
/// kubectl 1.20 has no `create token`).
fn token(kube: &KubeLocal, work: &Path, ns: &str, account: &str, audience: &str) -> String {
    let request = work.join(format!("token-{account}-{audience}.json"));
    std::fs::write(
        &request,
        format!(
            r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{{"audiences":["{audience}"],"expirationSeconds":3600}}}}"#
        ),
    )
    .expect("write request");
    let out = kube.run(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/serviceaccounts/{account}/token"),
        "-f",
        &request.display().to_string(),
    ]);
    let reply: Value = serde_json::from_str(&out).expect("TokenRequest answer");
    reply["status"]["token"]
        .as_str()
        .expect("status.token")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_the_api_server_issued_is_verified_by_the_proxy_with_the_keys_the_controller_read()
{
    let kube = KubeLocal::required();
    let work = tempfile::tempdir().expect("tempdir");
    let (ns, system) = ("shop", "causeway-system");
    prepare(&kube, &[ns, system, "ops"]);
    for (account_ns, account) in [(ns, "checkout"), (ns, "intruder"), ("ops", "deployer")] {
        kube.run(&["create", "serviceaccount", account, "-n", account_ns]);
    }
    // The example, with no jwksSecretRef and no issuer: both come from the API server.
    let example = std::fs::read_to_string(repo_root().join("examples/service-account/api.yaml"))
        .expect("example");
    let without_keys: String = example
        .lines()
        .filter(|l| !l.contains("jwksSecretRef:") && !l.trim_start().starts_with("issuer:"))
        .collect::<Vec<_>>()
        .join("\n");
    apply_text(&kube, work.path(), &without_keys);

    let controller = start_controller(&kube, work.path(), "controller-a", system).await;
    let stderr = || controller.process.stderr();
    let keys = wait_for(
        &kube,
        &[
            "get",
            "authorizer",
            "in-cluster",
            "-n",
            ns,
            "-o",
            "jsonpath={.status.serviceAccountKeys}",
        ],
        "Authorizer.status.serviceAccountKeys",
        WAIT,
        |s| !s.is_empty(),
        &stderr,
    )
    .await;
    let keys: Value = serde_json::from_str(&keys).expect("status JSON");
    let discovery: Value =
        serde_json::from_str(&kube.run(&["get", "--raw", "/.well-known/openid-configuration"]))
            .expect("discovery");
    assert_eq!(keys["source"], "APIServer", "{keys}");
    assert_eq!(keys["issuer"], discovery["issuer"], "{keys}");
    let server_kids: BTreeSet<String> =
        serde_json::from_str::<Value>(&kube.run(&["get", "--raw", "/openid/v1/jwks"]))
            .expect("jwks")["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_string))
            .collect();
    let status_kids: BTreeSet<String> = keys["keyIds"]
        .as_array()
        .expect("keyIds")
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    assert_eq!(
        status_kids, server_kids,
        "the status lists the server's keys"
    );

    let tls = work.path().join("proxy-tls");
    proxy_certs(&kube, system, &tls).await;
    let proxy = connected_proxy(work.path(), "proxy-0", controller.push, &tls).await;
    let host = format!("orders.{ns}.localhost");

    let allowed = token(&kube, work.path(), ns, "checkout", "orders");
    let body = wait_status(&proxy, &host, "/prod/orders", Some(&allowed), 200).await;
    assert!(body.contains("orders"), "{body}");
    let whole_namespace = token(&kube, work.path(), "ops", "deployer", "orders");
    wait_status(&proxy, &host, "/prod/orders", Some(&whole_namespace), 200).await;
    // A valid token of an account the authorizer does not allow: 403.
    let intruder = token(&kube, work.path(), ns, "intruder", "orders");
    wait_status(&proxy, &host, "/prod/orders", Some(&intruder), 403).await;
    // A token for another audience, a forged one, none: 401.
    let other_audience = token(&kube, work.path(), ns, "checkout", "billing");
    wait_status(&proxy, &host, "/prod/orders", Some(&other_audience), 401).await;
    let mut forged = allowed.clone();
    forged.pop();
    forged.push(if allowed.ends_with('A') { 'B' } else { 'A' });
    wait_status(&proxy, &host, "/prod/orders", Some(&forged), 401).await;
    wait_status(&proxy, &host, "/prod/orders", None, 401).await;
}

/// The key ids in `Authorizer.status.serviceAccountKeys`.
fn status_key_ids(kube: &KubeLocal, ns: &str) -> String {
    let out = kube.kubectl(&[
        "get",
        "authorizer",
        "in-cluster",
        "-n",
        ns,
        "-o",
        "jsonpath={.status.serviceAccountKeys.keyIds}",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotation_on_the_api_server_reaches_the_proxy_and_tokens_of_the_old_key_stop_working()
{
    let kube = KubeLocal::required();
    let work = tempfile::tempdir().expect("tempdir");
    let (ns, system) = ("shop", "causeway-system");
    prepare(&kube, &[ns, system, "ops"]);
    kube.run(&["create", "serviceaccount", "checkout", "-n", ns]);
    let example = std::fs::read_to_string(repo_root().join("examples/service-account/api.yaml"))
        .expect("example");
    let without_keys: String = example
        .lines()
        .filter(|l| !l.contains("jwksSecretRef:") && !l.trim_start().starts_with("issuer:"))
        .collect::<Vec<_>>()
        .join("\n");
    apply_text(&kube, work.path(), &without_keys);
    let controller = start_controller_with(
        &kube,
        work.path(),
        "controller-a",
        system,
        &["--service-account-keys-refresh-seconds", "1"],
    )
    .await;
    let stderr = || controller.process.stderr();
    let before = wait_for(
        &kube,
        &[
            "get",
            "authorizer",
            "in-cluster",
            "-n",
            ns,
            "-o",
            "jsonpath={.status.serviceAccountKeys.keyIds}",
        ],
        "key ids in the Authorizer's status",
        WAIT,
        |s| !s.is_empty(),
        &stderr,
    )
    .await;
    let tls = work.path().join("proxy-tls");
    proxy_certs(&kube, system, &tls).await;
    let proxy = connected_proxy(work.path(), "proxy-0", controller.push, &tls).await;
    let host = format!("orders.{ns}.localhost");
    let old = token(&kube, work.path(), ns, "checkout", "orders");
    wait_status(&proxy, &host, "/prod/orders", Some(&old), 200).await;

    kube.rotate_service_account_key();
    let new = token(&kube, work.path(), ns, "checkout", "orders");
    wait_status(&proxy, &host, "/prod/orders", Some(&new), 200).await;
    wait_status(&proxy, &host, "/prod/orders", Some(&old), 401).await;
    let after = eventually(WAIT, || async {
        let ids = status_key_ids(&kube, ns);
        (!ids.is_empty() && ids != before).then_some(ids)
    })
    .await;
    assert!(
        after.is_some(),
        "the status still lists the old key ids {before}; controller stderr:\n{}",
        controller.process.stderr()
    );
}

// ---------------------------------------------------------------------------------------------
// GitOps: no spec drift, and the Argo CD health check on real statuses

/// The documents of every example, EndpointSlices moved to `discovery.k8s.io/v1beta1` (all a
/// 1.20 server has), as one YAML stream; and the namespaces they use. Examples reuse names (two
/// define Api `default/shop`): of objects with the same kind, namespace and name the last one
/// is kept, so that the stream holds each object once.
fn examples() -> (String, BTreeSet<String>) {
    let mut kept: Vec<((String, String, String), Value)> = Vec::new();
    let mut namespaces = BTreeSet::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .expect("examples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("example dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("example file");
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("example YAML");
            for doc in docs.into_iter().filter(|d| !d.is_null()) {
                let mut doc = doc;
                if doc["kind"] == "EndpointSlice" {
                    doc["apiVersion"] = Value::from("discovery.k8s.io/v1beta1");
                }
                let ns = doc["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string();
                namespaces.insert(ns.clone());
                let key = (
                    doc["kind"].as_str().unwrap_or("").to_string(),
                    ns,
                    doc["metadata"]["name"].as_str().unwrap_or("").to_string(),
                );
                kept.retain(|(k, _)| *k != key);
                kept.push((key, doc));
            }
        }
    }
    let mut out = String::new();
    for (_, doc) in kept {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string(&doc).expect("JSON is YAML"));
        out.push('\n');
    }
    (out, namespaces)
}

/// The Causeway objects in the cluster, as JSON.
fn causeway_objects(kube: &KubeLocal) -> Vec<Value> {
    let list: Value = serde_json::from_str(&kube.run(&[
        "get",
        "apis,routes,stages,usageplans,authorizers,vpclinks",
        "-A",
        "-o",
        "json",
    ]))
    .expect("list JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// A Lua table constructor for a JSON value.
fn to_lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(to_lua).collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{k:?}] = {}", to_lua(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Runs `deploy/gitops/argocd-health.lua` on `object` with Debian's `lua5.4`, as Argo CD does
/// (the object in the global `obj`); returns (status, message).
fn argo_health(work: &Path, object: &Value) -> (String, String) {
    let script = repo_root().join("deploy/gitops/argocd-health.lua");
    let harness = work.join(format!("health-{}.lua", unique()));
    std::fs::write(
        &harness,
        format!(
            "obj = {}\nlocal check = assert(loadfile({:?}))\nlocal hs = check()\nio.write(hs.status, \"\\t\", hs.message or \"\")\n",
            to_lua(object),
            script.display().to_string()
        ),
    )
    .expect("write harness");
    let out = Command::new("lua5.4")
        .arg(&harness)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run lua5.4 ({e}): install it with apt-get install -y lua5.4")
        });
    assert!(
        out.status.success(),
        "the health script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, message) = text.split_once('\t').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciled_examples_show_no_spec_drift_and_argo_cd_health_reads_their_statuses() {
    let kube = KubeLocal::required();
    let work = tempfile::tempdir().expect("tempdir");
    let system = "causeway-system";
    let (stream, namespaces) = examples();
    let mut all: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    all.retain(|n| *n != "default");
    all.push(system);
    prepare(&kube, &all);
    let examples_file = work.path().join("examples.yaml");
    std::fs::write(&examples_file, &stream).expect("write examples");
    let examples_arg = examples_file.display().to_string();
    // Client-side apply, as Argo CD does by default.
    kube.run(&["apply", "--validate=false", "-f", &examples_arg]);
    // And one object that is wrong, to see Degraded.
    apply_text(
        &kube,
        work.path(),
        r#"apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: broken, namespace: default}
spec:
  apiRef: {name: petstore}
  routeKey: GET /broken
  authorizerRef: {name: nobody}
  integration: {type: MOCK}
"#,
    );

    let controller = start_controller(&kube, work.path(), "controller-a", system).await;
    let tls = work.path().join("proxy-tls");
    proxy_certs(&kube, system, &tls).await;
    let _proxy = connected_proxy(work.path(), "proxy-0", controller.push, &tls).await;
    // Reconciled: every object has a status at its generation, and the petstore Stage is
    // programmed on the proxy.
    let observed = eventually(WAIT, || async {
        let objects = causeway_objects(&kube);
        let done = !objects.is_empty()
            && objects.iter().all(|o| {
                o["status"]["observedGeneration"] == o["metadata"]["generation"]
                    && o["status"]["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"] == "Programmed"))
            });
        done.then_some(objects)
    })
    .await;
    let objects = observed.unwrap_or_else(|| {
        panic!(
            "the controller never reconciled every example; stderr:\n{}",
            controller.process.stderr()
        )
    });
    wait_for(
        &kube,
        &[
            "get",
            "stage",
            "petstore-prod",
            "-n",
            "default",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        "Ready=True on the petstore Stage",
        WAIT,
        |s| s == "True",
        &|| controller.process.stderr(),
    )
    .await;

    // 1. kubectl diff (a dry-run of the same client-side apply, what Argo CD compares): empty.
    let diff = kube.kubectl(&["diff", "-f", &examples_arg]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "kubectl diff reports changes after the controller reconciled:\n{}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );
    // 2. A server-side dry-run apply (Flux, Argo CD with ServerSideApply=true) of the Causeway
    //    objects keeps every spec as it is live. (Only those: a 1.20 server refuses a
    //    server-side apply of a Service port without `protocol`, a Kubernetes bug of that
    //    version that has nothing to do with Causeway.)
    let ours: String = stream
        .split("---\n")
        .filter(|d| d.contains("\"apiVersion\":\"causeway.dev/"))
        .map(|d| format!("---\n{d}"))
        .collect();
    let ours_file = work.path().join("causeway-objects.yaml");
    std::fs::write(&ours_file, ours).expect("write");
    let dry: Value = serde_json::from_str(&kube.run(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        "--field-manager",
        "gitops",
        "-f",
        &ours_file.display().to_string(),
        "-o",
        "json",
    ]))
    .expect("dry-run JSON");
    let dry_items = dry["items"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![dry]);
    let mut compared = 0;
    for applied in &dry_items {
        let group = applied["apiVersion"].as_str().unwrap_or("");
        if !group.starts_with("causeway.dev/") {
            continue;
        }
        let live = objects
            .iter()
            .find(|o| {
                o["kind"] == applied["kind"]
                    && o["metadata"]["name"] == applied["metadata"]["name"]
                    && o["metadata"]["namespace"] == applied["metadata"]["namespace"]
            })
            .unwrap_or_else(|| panic!("no live object for {}", applied["metadata"]));
        assert_eq!(
            applied["spec"], live["spec"],
            "a server-side apply would change the spec of {} {}",
            applied["kind"], applied["metadata"]["name"]
        );
        assert_eq!(
            applied["metadata"]["generation"], live["metadata"]["generation"],
            "a server-side apply would bump the generation of {} {}",
            applied["kind"], applied["metadata"]["name"]
        );
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} Causeway objects compared");

    // 3. The Argo CD health check on the real objects.
    let mut healthy = 0;
    for object in causeway_objects(&kube) {
        let id = format!(
            "{} {}/{}",
            object["kind"], object["metadata"]["namespace"], object["metadata"]["name"]
        );
        let conditions = object["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let is = |t: &str, s: &str| {
            conditions
                .iter()
                .any(|c| c["type"] == t && c["status"] == s)
        };
        let (status, message) = argo_health(work.path(), &object);
        let expected = if is("Ready", "True") {
            "Healthy"
        } else if is("Accepted", "False")
            || is("ResolvedRefs", "False")
            || is("Programmed", "False")
        {
            "Degraded"
        } else {
            "Progressing"
        };
        assert_eq!(status, expected, "{id}: {message}");
        if status == "Healthy" {
            healthy += 1;
        }
        if object["metadata"]["name"] == "broken" {
            assert_eq!(status, "Degraded");
            assert!(message.starts_with("AuthorizerNotFound"), "{id}: {message}");
        }
        if object["kind"] == "Stage" && object["metadata"]["name"] == "petstore-prod" {
            assert_eq!(status, "Healthy", "{id}: {message}");
        }
    }
    assert!(healthy >= 10, "only {healthy} objects Healthy");
    // A generation the controller has not seen yet is Progressing, whatever the conditions say.
    let mut ahead = causeway_objects(&kube)
        .into_iter()
        .find(|o| o["kind"] == "Stage" && o["metadata"]["name"] == "petstore-prod")
        .expect("petstore-prod");
    let generation = ahead["metadata"]["generation"]
        .as_i64()
        .expect("generation");
    ahead["metadata"]["generation"] = Value::from(generation + 1);
    let (status, message) = argo_health(work.path(), &ahead);
    assert_eq!(status, "Progressing", "{message}");
}

// ---------------------------------------------------------------------------------------------
// Leader failover and scale

/// An Api `scale` with a Stage and `routes` MOCK Routes in `ns`, as one YAML stream.
fn many_routes(ns: &str, first: usize, routes: usize) -> String {
    let mut out = format!(
        "apiVersion: causeway.dev/v1alpha1\nkind: Api\nmetadata: {{name: scale, namespace: {ns}}}\nspec: {{}}\n---\n\
         apiVersion: causeway.dev/v1alpha1\nkind: Stage\nmetadata: {{name: scale-prod, namespace: {ns}}}\n\
         spec: {{apiRef: {{name: scale}}, stageName: prod, autoDeploy: true}}\n"
    );
    for i in first..first + routes {
        out.push_str(&format!(
            "---\napiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {{name: r{i}, namespace: {ns}}}\n\
             spec:\n  apiRef: {{name: scale}}\n  routeKey: GET /r{i}\n  integration: {{type: MOCK, mock: {{body: 'route {i}'}}}}\n"
        ));
    }
    out
}

/// How many Routes in `ns` have `Programmed=True`.
fn programmed_routes(kube: &KubeLocal, ns: &str) -> usize {
    let out = kube.kubectl(&[
        "get",
        "routes",
        "-n",
        ns,
        "-o",
        "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Programmed\")].status}{\" \"}{end}",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|s| *s == "True")
        .count()
}

/// The Lease holder.
fn lease_holder(kube: &KubeLocal, ns: &str) -> String {
    let out = kube.kubectl(&[
        "get",
        "lease",
        "causeway-controller",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_controller_takes_over_within_the_lease_time_and_proxies_keep_serving() {
    let kube = KubeLocal::required();
    let work = tempfile::tempdir().expect("tempdir");
    let (ns, system) = ("team", "causeway-system");
    prepare(&kube, &[ns, system]);
    apply_text(&kube, work.path(), &many_routes(ns, 0, 3));
    let mut a = Some(start_controller(&kube, work.path(), "controller-a", system).await);
    let leader = eventually(WAIT, || async {
        (lease_holder(&kube, system) == "controller-a").then_some(())
    })
    .await;
    assert!(leader.is_some(), "controller-a never took the Lease");
    let b = start_controller(&kube, work.path(), "controller-b", system).await;
    let tls = work.path().join("proxy-tls");
    proxy_certs(&kube, system, &tls).await;
    let a_push = a.as_ref().map(|c| c.push).expect("a");
    let on_a = connected_proxy(work.path(), "on-a", a_push, &tls).await;
    let host = format!("scale.{ns}.localhost");
    wait_status(&on_a, &host, "/prod/r1", None, 200).await;
    // Only the leader is ready.
    let ready = |admin: SocketAddr| async move {
        get(admin, "localhost", "/readyz")
            .await
            .is_ok_and(|r| r.status == 200)
    };
    assert!(
        ready(b.admin).await.then_some(()).is_none(),
        "b is not ready while a leads"
    );

    // Kill the leader (no graceful release: its Lease must expire).
    let killed = Instant::now();
    let mut dead = a.take().expect("a");
    let _ = dead.process.child.kill();
    let _ = dead.process.child.wait();
    let took_over = eventually(Duration::from_secs(40), || async {
        (lease_holder(&kube, system) == "controller-b").then_some(())
    })
    .await;
    assert!(
        took_over.is_some(),
        "controller-b never took the Lease; b stderr:\n{}",
        b.process.stderr()
    );
    let takeover = killed.elapsed();
    println!("leader failover: controller-b holds the Lease {takeover:.1?} after the leader died");
    assert!(
        takeover <= Duration::from_secs(15 + 5 + 2),
        "took {takeover:?}, more than the lease time (15 s) plus the renewal margin"
    );
    // The proxy of the dead controller keeps serving its snapshot.
    let (status, body) = get_with_token(on_a.traffic, &host, "/prod/r2", None)
        .await
        .expect("proxy answers");
    assert_eq!((status, body.as_str()), (200, "route 2"));
    // Status writes continue from the new leader: a new Route is accepted, and programmed once
    // a proxy of b applied it.
    apply_text(&kube, work.path(), &many_routes(ns, 3, 1));
    let stderr = || b.process.stderr();
    wait_for(
        &kube,
        &[
            "get",
            "route",
            "r3",
            "-n",
            ns,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Accepted\")].status}",
        ],
        "Accepted=True on a Route created after the failover",
        WAIT,
        |s| s == "True",
        &stderr,
    )
    .await;
    let on_b = connected_proxy(work.path(), "on-b", b.push, &tls).await;
    wait_status(&on_b, &host, "/prod/r3", None, 200).await;
    wait_for(
        &kube,
        &[
            "get",
            "route",
            "r3",
            "-n",
            ns,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Programmed\")].status}",
        ],
        "Programmed=True written by the new leader",
        WAIT,
        |s| s == "True",
        &stderr,
    )
    .await;
    assert!(ready(b.admin).await, "the new leader is ready");
    drop(dead);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_routes_applied_at_once_all_become_programmed() {
    const ROUTES: usize = 1_000;
    let kube = KubeLocal::required();
    let work = tempfile::tempdir().expect("tempdir");
    let (ns, system) = ("scale", "causeway-system");
    prepare(&kube, &[ns, system]);
    let controller = start_controller(&kube, work.path(), "controller-a", system).await;
    let tls = work.path().join("proxy-tls");
    proxy_certs(&kube, system, &tls).await;
    // A proxy must be connected for Programmed=True; give it a first snapshot to be ready.
    apply_text(&kube, work.path(), &many_routes(ns, 0, 1));
    let proxy = connected_proxy(work.path(), "proxy-0", controller.push, &tls).await;
    let host = format!("scale.{ns}.localhost");
    wait_status(&proxy, &host, "/prod/r0", None, 200).await;

    let file = work.path().join("routes.yaml");
    std::fs::write(&file, many_routes(ns, 0, ROUTES)).expect("write routes");
    let started = Instant::now();
    // One kubectl apply of the whole file: the objects reach the server one after another.
    let out = kube.kubectl(&[
        "apply",
        "--validate=false",
        "-f",
        &file.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied = started.elapsed();
    let all = eventually(Duration::from_secs(600), || async {
        // Spaces the `kubectl get` calls of this 600 s poll (each lists 1,000 Routes).
        tokio::time::sleep(Duration::from_millis(500)).await;
        (programmed_routes(&kube, ns) == ROUTES).then_some(())
    })
    .await;
    let programmed = started.elapsed();
    assert!(
        all.is_some(),
        "only {} of {ROUTES} Routes Programmed=True after {programmed:?}; controller stderr:\n{}",
        programmed_routes(&kube, ns),
        controller.process.stderr()
    );
    println!(
        "{ROUTES} Routes: kubectl apply took {applied:.1?}; all Programmed=True {programmed:.1?} after the apply began"
    );
    let (status, body) = get_with_token(proxy.traffic, &host, "/prod/r999", None)
        .await
        .expect("proxy answers");
    assert_eq!((status, body.as_str()), (200, "route 999"));
}
