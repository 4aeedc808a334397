//! `causeway controller` and `causeway proxy` end to end, as real processes on 127.0.0.1.
//!
//! Push tests run the controller in its file mode (`--from-dir`, no cluster) with two proxies.
//! The cluster test runs against a real kube-apiserver (`../shared/tools/kube-local`); it is
//! skipped, saying so, when kube-local is not built and `CAUSEWAY_KUBE_E2E` is unset (with
//! `CAUSEWAY_KUBE_E2E=1` it builds kube-local first if needed).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use causeway_e2e::kube_local::KubeLocal;
use causeway_e2e::processes::{Controller, Proxy};
use causeway_e2e::{NOTHING_LISTENS, causeway, eventually, get, petstore_backend, repo_root};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The petstore example copied to `dir`, in namespace `ns`, its backend on `backend_port`, with
/// the EndpointSlice in `slice_version` (`v1` or `v1beta1`).
fn petstore_copy(dir: &Path, ns: &str, backend_port: u16, slice_version: &str) {
    let src = repo_root().join("examples/petstore");
    std::fs::create_dir_all(dir).expect("config dir");
    for entry in std::fs::read_dir(&src).expect("examples/petstore") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let text = std::fs::read_to_string(&path)
                .expect("read example")
                .replace("9080", &backend_port.to_string())
                .replace("namespace: default", &format!("namespace: {ns}"))
                .replace(
                    "apiVersion: discovery.k8s.io/v1\n",
                    &format!("apiVersion: discovery.k8s.io/{slice_version}\n"),
                );
            std::fs::write(dir.join(path.file_name().expect("name")), text).expect("write");
        }
    }
}

/// A proxy keeping its snapshot in `state`, without access log, once `/healthz` answers.
async fn start_proxy(
    work: &Path,
    id: &str,
    controller: SocketAddr,
    tls: &Path,
    state: &Path,
) -> Proxy {
    let state = state.display().to_string();
    let more = ["--state-file", &state, "--access-log", "off"];
    Proxy::start(work, id, controller, tls, &more, WAIT).await
}

const HOST: &str = "petstore.default.localhost";

/// Log text without terminal colour codes.
fn without_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_is_acknowledged_by_both_proxies_and_served_by_both() {
    let work = tempfile::tempdir().expect("tempdir");
    let (config, tls) = (work.path().join("config"), work.path().join("tls"));
    petstore_copy(&config, "default", NOTHING_LISTENS, "v1");
    let controller = Controller::from_dir(work.path(), &config, &tls, WAIT).await;
    let proxy_tls = tls.join("proxy");
    let a = start_proxy(
        work.path(),
        "a",
        controller.push,
        &proxy_tls,
        &work.path().join("a.json"),
    )
    .await;
    let b = start_proxy(
        work.path(),
        "b",
        controller.push,
        &proxy_tls,
        &work.path().join("b.json"),
    )
    .await;
    let first = controller.wait_applied(&["a", "b"], None).await;
    a.wait_serves(HOST, "/prod/health", "blue").await;
    b.wait_serves(HOST, "/prod/health", "blue").await;

    let stages = config.join("stages.yaml");
    let text = std::fs::read_to_string(&stages).expect("stages.yaml");
    std::fs::write(&stages, text.replacen("color: blue", "color: red", 1)).expect("write");
    let second = controller.wait_applied(&["a", "b"], Some(&first)).await;
    assert_ne!(first, second);
    assert_eq!(controller.version().await, second);
    a.wait_serves(HOST, "/prod/health", "red").await;
    b.wait_serves(HOST, "/prod/health", "red").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_churn_is_sent_as_a_backends_only_update_and_traffic_follows() {
    let work = tempfile::tempdir().expect("tempdir");
    let (config, tls) = (work.path().join("config"), work.path().join("tls"));
    let (old_backend, old) = petstore_backend(work.path()).await;
    let (_new_backend, new) = petstore_backend(work.path()).await;
    let (old_port, new_port) = (old.port(), new.port());
    petstore_copy(&config, "default", old_port, "v1");
    let controller = Controller::from_dir(work.path(), &config, &tls, WAIT).await;
    let proxy = start_proxy(
        work.path(),
        "p",
        controller.push,
        &tls.join("proxy"),
        &work.path().join("p.json"),
    )
    .await;
    let first = controller.wait_applied(&["p"], None).await;
    proxy.wait_serves(HOST, "/prod/pets", "dog").await;

    // A pod roll: the endpoint moves, nothing else changes.
    let backend = config.join("backend.yaml");
    let text = std::fs::read_to_string(&backend).expect("backend.yaml");
    let moved = text.replace(&format!("port: {old_port}"), &format!("port: {new_port}"));
    assert_ne!(text, moved, "the EndpointSlice names the old port");
    std::fs::write(&backend, moved).expect("write");
    controller.wait_applied(&["p"], Some(&first)).await;
    drop(old_backend);
    proxy.wait_serves(HOST, "/prod/pets", "dog").await;
    assert!(
        without_ansi(&controller.process.stderr()).contains("delta=true"),
        "the change went out as a backends-only frame:\n{}",
        controller.process.stderr()
    );
    assert!(
        !proxy.process.stderr().contains("reconnecting"),
        "the proxy applied the update without a resync:\n{}",
        proxy.process.stderr()
    );
}

/// A Route whose mock header value holds a line break: `compile` lets it through today, and the
/// proxy refuses the snapshot (a header value may not contain control characters). If compile
/// learns to reject it, this test needs another snapshot only the proxy can refuse.
const ROUTE_THE_PROXY_REFUSES: &str = r#"
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata:
  name: broken
  namespace: default
spec:
  apiRef: {name: petstore}
  routeKey: GET /broken
  integration:
    type: MOCK
    mock:
      statusCode: 200
      headers:
        x-bad: "line1\nline2"
      body: x
"#;

/// A valid Route next to the broken one: once it is served, the controller has compiled and
/// pushed the file.
const ROUTE_NEXT_TO_IT: &str = r#"
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata:
  name: added
  namespace: default
spec:
  apiRef: {name: petstore}
  routeKey: GET /added
  integration:
    type: MOCK
    mock:
      statusCode: 200
      body: added
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_route_the_proxy_would_refuse_is_refused_by_compile_alone_and_every_proxy_applies_the_rest()
 {
    let work = tempfile::tempdir().expect("tempdir");
    let (config, tls) = (work.path().join("config"), work.path().join("tls"));
    petstore_copy(&config, "default", NOTHING_LISTENS, "v1");
    let controller = Controller::from_dir(work.path(), &config, &tls, WAIT).await;
    let proxy = start_proxy(
        work.path(),
        "p",
        controller.push,
        &tls.join("proxy"),
        &work.path().join("p.json"),
    )
    .await;
    controller.wait_applied(&["p"], None).await;
    proxy.wait_serves(HOST, "/prod/health", "blue").await;

    // A header value the proxy would refuse is refused by compile for that Route alone (its
    // status says why); the valid Route written with it is compiled, pushed and applied.
    let both = format!("{ROUTE_THE_PROXY_REFUSES}{ROUTE_NEXT_TO_IT}");
    std::fs::write(config.join("broken.yaml"), both).expect("write");
    proxy.wait_serves(HOST, "/prod/added", "added").await;
    let broken = get(proxy.traffic, HOST, "/prod/broken")
        .await
        .expect("proxy answers");
    assert_ne!(broken.status, 200, "the refused Route is not served");
    let r = get(proxy.traffic, HOST, "/prod/health")
        .await
        .expect("proxy answers");
    assert_eq!(r.status, 200, "every other route keeps serving");
    // The proxy serves the new version before its ack reaches the controller: poll for it.
    let admin = controller.admin;
    let applied = eventually(Duration::from_secs(10), || async move {
        let r = get(admin, "localhost", "/proxies").await.ok()?;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        (v["proxies"]["p"]["applied"] == v["version"]).then_some(v)
    })
    .await;
    assert!(applied.is_some(), "the proxy applied the new version whole");
}

#[tokio::test(flavor = "multi_thread")]
async fn proxies_keep_serving_without_the_controller_and_a_restarted_proxy_serves_its_persisted_snapshot()
 {
    let work = tempfile::tempdir().expect("tempdir");
    let (config, tls) = (work.path().join("config"), work.path().join("tls"));
    petstore_copy(&config, "default", NOTHING_LISTENS, "v1");
    let controller = Controller::from_dir(work.path(), &config, &tls, WAIT).await;
    let state = work.path().join("p.json");
    let proxy = start_proxy(
        work.path(),
        "p",
        controller.push,
        &tls.join("proxy"),
        &state,
    )
    .await;
    controller.wait_applied(&["p"], None).await;
    proxy.wait_serves(HOST, "/prod/health", "blue").await;
    assert!(state.exists(), "the applied snapshot is persisted");

    drop(controller);
    let r = get(proxy.traffic, HOST, "/prod/health")
        .await
        .expect("proxy answers");
    assert_eq!(
        r.status, 200,
        "the proxy keeps serving after the controller died"
    );

    // Restart the proxy while the controller is still down: it serves at once from disk.
    // Nothing serves the discard port: the controller stays unreachable.
    let unreachable = SocketAddr::from(([127, 0, 0, 1], NOTHING_LISTENS));
    drop(proxy);
    let restarted = start_proxy(work.path(), "p", unreachable, &tls.join("proxy"), &state).await;
    assert!(restarted.ready().await, "ready from the persisted snapshot");
    let r = get(restarted.traffic, HOST, "/prod/health")
        .await
        .expect("proxy answers");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("blue"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_refuses_a_proxy_without_a_certificate_of_the_controllers_ca() {
    let work = tempfile::tempdir().expect("tempdir");
    let (config, tls) = (work.path().join("config"), work.path().join("tls"));
    petstore_copy(&config, "default", NOTHING_LISTENS, "v1");
    let controller = Controller::from_dir(work.path(), &config, &tls, WAIT).await;
    // A second controller makes its own, unrelated CA and client certificate.
    let other_tls = work.path().join("other-tls");
    let other = Controller::from_dir(work.path(), &config, &other_tls, WAIT).await;
    drop(other);

    let stranger = start_proxy(
        work.path(),
        "stranger",
        controller.push,
        &other_tls.join("proxy"),
        &work.path().join("s.json"),
    )
    .await;
    let trusted = start_proxy(
        work.path(),
        "trusted",
        controller.push,
        &tls.join("proxy"),
        &work.path().join("t.json"),
    )
    .await;
    controller.wait_applied(&["trusted"], None).await;
    // The stranger has tried and been refused once it says it is reconnecting.
    let refused = eventually(WAIT, || async {
        stranger
            .process
            .stderr()
            .contains("reconnecting")
            .then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "the stranger never tried; stderr:\n{}",
        stranger.process.stderr()
    );
    let r = get(controller.admin, "localhost", "/proxies")
        .await
        .expect("proxies");
    let v: Value = serde_json::from_str(&r.body).expect("JSON");
    assert!(
        v["proxies"].get("stranger").is_none(),
        "the stranger got a stream: {v}"
    );
    assert!(!stranger.ready().await, "the stranger has no snapshot");
    assert!(trusted.ready().await);
}

// ---------------------------------------------------------------------------------------------
// Against a real API server (kube-local, Kubernetes 1.20).

/// Polls `kubectl args` until its output satisfies `check`.
async fn wait_for(
    kube: &KubeLocal,
    args: &[&str],
    what: &str,
    check: impl Fn(&str) -> bool,
    controller: &Controller,
) -> String {
    let found = eventually(WAIT, || async {
        let out = kube.kubectl(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && check(&text)).then_some(text)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "{what} never happened; controller stderr:\n{}",
            controller.process.stderr()
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_reconciles_petstore_in_a_real_cluster_and_its_proxy_serves_it() {
    let Some(kube) = KubeLocal::private() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let ns = format!("cw-e2e-{}", std::process::id());
    let host = format!("petstore.{ns}.localhost");
    let (_backend, backend) = petstore_backend(work.path()).await;
    let config = work.path().join("config");
    petstore_copy(&config, &ns, backend.port(), "v1beta1");

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
    kube.run(&["create", "namespace", &ns]);
    kube.run(&[
        "apply",
        "--validate=false",
        "-f",
        &config.display().to_string(),
    ]);

    let kubeconfig = kube.kubeconfig.display().to_string();
    let controller = Controller::start(
        work.path(),
        &[
            "--kubeconfig",
            &kubeconfig,
            "--namespace",
            &ns,
            "--controller-namespace",
            &ns,
            "--identity",
            "controller-a",
        ],
        WAIT,
    )
    .await;

    // Statuses, deployment records and the Lease appear.
    let deployment = wait_for(
        &kube,
        &[
            "get",
            "stage",
            "petstore-prod",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.deploymentId}",
        ],
        "Stage.status.deploymentId",
        |s| !s.is_empty(),
        &controller,
    )
    .await;
    let accepted = kube.run(&[
        "get", "routes", "-n", &ns, "-o",
        "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Accepted\")].status}{\" \"}{end}",
    ]);
    assert_eq!(
        accepted.split_whitespace().collect::<Vec<_>>(),
        vec!["True"; 6],
        "{accepted}"
    );
    let latest = kube.run(&[
        "get",
        "api",
        "petstore",
        "-n",
        &ns,
        "-o",
        "jsonpath={.status.latestDeploymentId}",
    ]);
    assert_eq!(latest, deployment);
    wait_for(
        &kube,
        &[
            "get",
            "configmaps",
            "-n",
            &ns,
            "-l",
            "causeway.dev/api=petstore",
            "-o",
            "name",
        ],
        "the deployment ConfigMap",
        |s| s.contains(&format!("configmap/causeway-deploy-petstore-{deployment}")),
        &controller,
    )
    .await;
    let holder = kube.run(&[
        "get",
        "lease",
        "causeway-controller",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty(), "the Lease has a holder");

    // A proxy with the client certificate from the Secret serves the traffic.
    let proxy_tls = work.path().join("proxy-tls");
    std::fs::create_dir_all(&proxy_tls).expect("dir");
    for key in ["ca.crt", "tls.crt", "tls.key"] {
        let template = format!("go-template={{{{index .data \"{key}\" | base64decode}}}}");
        let pem = kube.run(&[
            "get",
            "secret",
            "causeway-proxy-tls",
            "-n",
            &ns,
            "-o",
            &template,
        ]);
        std::fs::write(proxy_tls.join(key), pem).expect("write pem");
    }
    let proxy = start_proxy(
        work.path(),
        "proxy-0",
        controller.push,
        &proxy_tls,
        &work.path().join("p.json"),
    )
    .await;
    proxy.wait_serves(&host, "/prod/pets", "dog").await;
    wait_for(
        &kube,
        &[
            "get",
            "stage",
            "petstore-prod",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Programmed\")].status}",
        ],
        "Programmed=True on the Stage",
        |s| s == "True",
        &controller,
    )
    .await;

    // Deleting a Route removes it from the proxies.
    kube.run(&["delete", "route", "list-pets", "-n", &ns]);
    let gone = eventually(WAIT, || async {
        let r = get(proxy.traffic, &host, "/prod/pets").await.ok()?;
        (r.status == 404).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "GET /prod/pets still served after the Route was deleted"
    );

    // The deletion made a new deployment; it is the one to pin.
    let deployment = wait_for(
        &kube,
        &[
            "get",
            "stage",
            "petstore-prod",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.deploymentId}",
        ],
        "a new deployment after the deletion",
        |s| !s.is_empty() && s != deployment,
        &controller,
    )
    .await;

    // Deployment history: pin beta to the current deployment, change a Route, beta is unchanged
    // while prod (autoDeploy) follows; then roll prod back by setting the older id.
    let pin = format!(r#"{{"spec":{{"autoDeploy":false,"deploymentId":"{deployment}"}}}}"#);
    kube.run(&[
        "patch",
        "stage",
        "petstore-beta",
        "-n",
        &ns,
        "--type",
        "merge",
        "-p",
        &pin,
    ]);
    kube.run(&[
        "patch", "route", "health", "-n", &ns, "--type", "merge", "-p",
        r#"{"spec":{"integration":{"mock":{"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\"status\":\"changed\"}"}}}}"#,
    ]);
    proxy.wait_serves(&host, "/prod/health", "changed").await;
    let newer = wait_for(
        &kube,
        &[
            "get",
            "stage",
            "petstore-prod",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.deploymentId}",
        ],
        "a new deployment on the autoDeploy stage",
        |s| !s.is_empty() && s != deployment,
        &controller,
    )
    .await;
    let r = get(proxy.traffic, &host, "/beta/health")
        .await
        .expect("beta answers");
    assert!(
        r.body.contains("\"status\":\"ok\""),
        "the pinned stage changed: {}",
        r.body
    );
    let beta = kube.run(&[
        "get",
        "stage",
        "petstore-beta",
        "-n",
        &ns,
        "-o",
        "jsonpath={.status.deploymentId}",
    ]);
    assert_eq!(beta, deployment);
    wait_for(
        &kube,
        &[
            "get",
            "configmaps",
            "-n",
            &ns,
            "-l",
            "causeway.dev/api=petstore",
            "-o",
            "name",
        ],
        "a second deployment ConfigMap",
        |s| s.contains(&newer) && s.contains(&deployment),
        &controller,
    )
    .await;
    kube.run(&[
        "patch",
        "stage",
        "petstore-prod",
        "-n",
        &ns,
        "--type",
        "merge",
        "-p",
        &pin,
    ]);
    proxy
        .wait_serves(&host, "/prod/health", "\"status\":\"ok\"")
        .await;

    // The operator CLI against the same cluster: each command changes the field it prints, and
    // the traffic moves as it says. prod serves `deployment` (ok); `newer` says "changed".
    let cli = |args: &[&str]| -> String {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-n", &ns, "--kubeconfig", &kubeconfig]);
        let out = Command::new(causeway())
            .args(&all)
            .env("NO_COLOR", "1")
            .output()
            .expect("run causeway");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "causeway {args:?} failed:\n{text}");
        println!("$ causeway {}\n{text}", args.join(" "));
        text
    };
    let history = cli(&["history", "petstore"]);
    assert!(
        history.contains(&newer) && history.contains(&deployment),
        "{history}"
    );
    let diff = cli(&["diff", "petstore", &deployment, &newer]);
    assert!(
        diff.contains("health"),
        "the diff names the changed route: {diff}"
    );
    let url = cli(&["get-url", "petstore", "--stage", "prod"]);
    assert!(url.contains(&host), "{url}");

    let dry = cli(&[
        "canary",
        "petstore",
        "--stage",
        "prod",
        "--percent",
        "100",
        "--deployment",
        &newer,
        "--dry-run",
    ]);
    assert!(dry.contains("percentTraffic"), "{dry}");
    let r = get(proxy.traffic, &host, "/prod/health")
        .await
        .expect("prod");
    assert!(
        r.body.contains("\"status\":\"ok\""),
        "a dry run changed nothing"
    );

    let canary = cli(&[
        "canary",
        "petstore",
        "--stage",
        "prod",
        "--percent",
        "100",
        "--deployment",
        &newer,
    ]);
    assert!(
        canary.contains(&format!(
            r#"{{"spec":{{"canary":{{"deploymentId":"{newer}","percentTraffic":100.0}}}}}}"#
        )),
        "the canary command prints its patch: {canary}"
    );
    let moved = eventually(WAIT, || async {
        let r = get(proxy.traffic, &host, "/prod/health").await.ok()?;
        (r.body.contains("changed") && r.header("x-causeway-canary").is_some()).then_some(())
    })
    .await;
    assert!(moved.is_some(), "a 100 % canary does not serve the canary");
    let status = cli(&["status", "petstore"]);
    assert!(
        status.contains(&newer) && status.contains("100"),
        "{status}"
    );

    let promote = cli(&["promote", "petstore", "--stage", "prod"]);
    assert!(
        promote.contains("deploymentId") && promote.contains(&newer),
        "{promote}"
    );
    let promoted = eventually(WAIT, || async {
        let r = get(proxy.traffic, &host, "/prod/health").await.ok()?;
        (r.body.contains("changed") && r.header("x-causeway-canary").is_none()).then_some(())
    })
    .await;
    assert!(
        promoted.is_some(),
        "after promote, main serves the canary's deployment"
    );
    let pinned = kube.run(&[
        "get",
        "stage",
        "petstore-prod",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.deploymentId}/{.spec.canary}",
    ]);
    assert_eq!(
        pinned,
        format!("{newer}/"),
        "promote pins the canary's id, removes the canary"
    );

    let rollback = cli(&["rollback", "petstore", "--stage", "prod"]);
    assert!(rollback.contains(&deployment), "{rollback}");
    proxy
        .wait_serves(&host, "/prod/health", "\"status\":\"ok\"")
        .await;
    let deploy = cli(&[
        "deploy",
        "petstore",
        "--stage",
        "prod",
        "--description",
        "latest again",
    ]);
    assert!(deploy.contains(&newer), "{deploy}");
    proxy.wait_serves(&host, "/prod/health", "changed").await;

    // Failover: a second replica waits (not ready) while the first leads; when the first dies,
    // the second takes the Lease, becomes ready and writes statuses.
    let standby = Controller::start(
        work.path(),
        &[
            "--kubeconfig",
            &kubeconfig,
            "--namespace",
            &ns,
            "--controller-namespace",
            &ns,
            "--identity",
            "controller-b",
        ],
        WAIT,
    )
    .await;
    let r = get(standby.admin, "localhost", "/readyz")
        .await
        .expect("readyz");
    assert_eq!(r.status, 503, "a replica that does not lead is not ready");
    drop(controller);
    let took_over = eventually(Duration::from_secs(60), || async {
        let r = get(standby.admin, "localhost", "/readyz").await.ok()?;
        (r.status == 200).then_some(())
    })
    .await;
    assert!(
        took_over.is_some(),
        "the standby never took over; stderr:\n{}",
        standby.process.stderr()
    );
    let holder = kube.run(&[
        "get",
        "lease",
        "causeway-controller",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder, "controller-b");
    let routes_before = kube.run(&[
        "get",
        "api",
        "petstore",
        "-n",
        &ns,
        "-o",
        "jsonpath={.status.routeCount}",
    ]);
    kube.run(&["delete", "route", "create-pet", "-n", &ns]);
    wait_for(
        &kube,
        &[
            "get",
            "api",
            "petstore",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.routeCount}",
        ],
        "the new leader's status write",
        |s| !s.is_empty() && s != routes_before,
        &standby,
    )
    .await;

    // Push certificates from cert-manager: a Secret in cert-manager's layout (tls.crt, tls.key,
    // ca.crt — no CA key) in another namespace; a controller with `--push-certs cert-manager`
    // serves with it, issues nothing, and a proxy with a client certificate of that CA connects.
    let ns_cm = format!("{ns}-cm");
    kube.run(&["create", "namespace", &ns_cm]);
    let pem = |key: &str| {
        let template = format!("go-template={{{{index .data \"{key}\" | base64decode}}}}");
        let text = kube.run(&[
            "get",
            "secret",
            "causeway-push-tls",
            "-n",
            &ns,
            "-o",
            &template,
        ]);
        let path = work.path().join(format!("cm-{key}"));
        std::fs::write(&path, text).expect("write pem");
        path.display().to_string()
    };
    let (ca, crt, key) = (pem("ca.crt"), pem("tls.crt"), pem("tls.key"));
    kube.run(&[
        "create",
        "secret",
        "generic",
        "causeway-push-tls",
        "-n",
        &ns_cm,
        &format!("--from-file=ca.crt={ca}"),
        &format!("--from-file=tls.crt={crt}"),
        &format!("--from-file=tls.key={key}"),
    ]);
    let managed = Controller::start(
        work.path(),
        &[
            "--kubeconfig",
            &kubeconfig,
            "--namespace",
            &ns_cm,
            "--controller-namespace",
            &ns_cm,
            "--identity",
            "controller-cm",
            "--push-certs",
            "cert-manager",
        ],
        WAIT,
    )
    .await;
    let _proxy_cm = start_proxy(
        work.path(),
        "proxy-cm",
        managed.push,
        &proxy_tls,
        &work.path().join("p-cm.json"),
    )
    .await;
    let connected = eventually(WAIT, || async {
        let r = get(managed.admin, "localhost", "/proxies").await.ok()?;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        v["proxies"]["proxy-cm"].is_object().then_some(())
    })
    .await;
    assert!(
        connected.is_some(),
        "a proxy never connected to the controller using cert-manager's certificates; stderr:\n{}",
        managed.process.stderr()
    );
    assert!(
        !kube
            .kubectl(&["get", "secret", "causeway-proxy-tls", "-n", &ns_cm])
            .status
            .success(),
        "with cert-manager the controller issues nothing"
    );
    let _ = kube.kubectl(&["delete", "namespace", &ns_cm, "--wait=false"]);

    let _ = kube.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}
