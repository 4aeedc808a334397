//! The Helm chart (`charts/causeway/`), the plain manifests rendered from it (`deploy/`) and
//! the Dockerfile.
//!
//! No `helm` binary is reachable here, so the chart is rendered and linted by
//! `scripts/chart-render.sh`, a stand-in for `helm template` / `helm lint` built from Debian's
//! Go packages (Go text/template + sprig, like helm; see `scripts/chart-render/main.go`). These
//! tests fail, not skip, when it cannot be built. Every rendered document is then parsed and
//! deserialized into the k8s-openapi type of its kind, and the round trip must keep every field
//! (an unknown or misspelt field is an error). The cluster test applies the manifests to a real
//! kube-apiserver (kube-local, Kubernetes 1.20).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use causeway_e2e::kube_local::KubeLocal;
use causeway_e2e::repo_root;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Rendering

fn chart_render(args: &[&str]) -> Output {
    let root = repo_root();
    Command::new("bash")
        .arg(root.join("scripts/chart-render.sh"))
        .args(args)
        .current_dir(&root)
        .output()
        .expect("run scripts/chart-render.sh")
}

/// `helm template causeway charts/causeway -n causeway-system ARGS` (the stand-in).
fn template(args: &[&str]) -> String {
    let mut all = vec![
        "template",
        "causeway",
        "charts/causeway",
        "--namespace",
        "causeway-system",
    ];
    all.extend_from_slice(args);
    let out = chart_render(&all);
    assert!(
        out.status.success(),
        "chart-render {all:?} failed (exit {:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The documents of a YAML stream, without empty (comment-only) ones.
fn documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)
        .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn find<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == kind_ && name(d) == name_)
        .unwrap_or_else(|| panic!("no {kind_} {name_} rendered"))
}

/// Value combinations the chart must render correctly: a name, `--set` arguments, and the
/// cluster's capabilities (none: a current cluster).
struct ValueSet {
    name: &'static str,
    values: &'static [&'static str],
    cluster: &'static [&'static str],
}

const VALUE_SETS: &[ValueSet] = &[
    ValueSet {
        name: "defaults",
        values: &[],
        cluster: &[],
    },
    ValueSet {
        name: "autoscaling and ServiceMonitor",
        values: &[
            "--set",
            "proxy.autoscaling.enabled=true,serviceMonitor.enabled=true,serviceMonitor.interval=15s",
        ],
        cluster: &[],
    },
    ValueSet {
        name: "no CRDs, NetworkPolicy or PodDisruptionBudget",
        values: &[
            "--set",
            "crds.install=false,networkPolicy.enabled=false,proxy.podDisruptionBudget.enabled=false",
        ],
        cluster: &[],
    },
    ValueSet {
        name: "watched namespaces, LoadBalancer with annotations, own image, tracing",
        values: &[
            "--set",
            "controller.watchNamespaces={shop,pets},proxy.service.type=LoadBalancer,proxy.service.port=8080",
            "--set",
            "proxy.tracing.otlpEndpoint=http://otel-collector.observability:4318,proxy.tracing.sampleRatio=0.25",
            "--set-string",
            "proxy.service.annotations.service\\.beta\\.kubernetes\\.io/aws-load-balancer-internal=true",
            "--set",
            "image.repository=ghcr.io/example/causeway,image.tag=1.2.3,image.pullPolicy=Always",
            "--set",
            "controller.replicas=3,proxy.replicas=5,proxy.podDisruptionBudget.minAvailable=50%",
        ],
        cluster: &[],
    },
    ValueSet {
        name: "a Kubernetes 1.20 cluster (policy/v1beta1, autoscaling/v2beta2)",
        values: &["--set", "proxy.autoscaling.enabled=true"],
        cluster: &[
            "--kube-version",
            "1.20.2",
            "--only-api-versions",
            "-a",
            "v1,apps/v1,apiextensions.k8s.io/v1,rbac.authorization.k8s.io/v1,networking.k8s.io/v1",
            "-a",
            "policy/v1beta1,autoscaling/v2beta2,autoscaling/v1,discovery.k8s.io/v1beta1",
        ],
    },
    ValueSet {
        name: "push certificates from cert-manager (chart-made CA issuer)",
        values: &["--set", "pushCerts.source=cert-manager"],
        cluster: &[],
    },
    ValueSet {
        name: "push certificates from cert-manager (the user's ClusterIssuer)",
        values: &[
            "--set",
            "pushCerts.source=cert-manager,pushCerts.issuerRef.name=corp-ca,pushCerts.issuerRef.kind=ClusterIssuer",
        ],
        cluster: &[],
    },
    ValueSet {
        name: "Grafana dashboard and PrometheusRule alerts",
        values: &[
            "--set",
            "grafanaDashboard.enabled=true,prometheusRule.enabled=true,serviceMonitor.enabled=true",
        ],
        cluster: &[],
    },
    ValueSet {
        name: "dual stack (IPv6 first)",
        values: &[
            "--set",
            "proxy.ipFamilies={IPv6,IPv4},proxy.ipFamilyPolicy=RequireDualStack",
        ],
        cluster: &[],
    },
];

impl ValueSet {
    fn render(&self) -> Vec<Value> {
        let args: Vec<&str> = self.values.iter().chain(self.cluster).copied().collect();
        documents(&template(&args))
    }
}

// ---------------------------------------------------------------------------------------------
// Typed validation: every document deserializes into its k8s-openapi type and back without
// losing a field.

fn typed<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<Value, String> {
    let object: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&object).map_err(|e| e.to_string())
}

/// The round trip of `doc` through its typed object, or why it failed. Kinds without a type
/// in k8s-openapi are checked by hand.
fn round_trip(doc: &Value) -> Result<Value, String> {
    use k8s_openapi::api::{apps, autoscaling, core, networking, policy, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    let api = doc["apiVersion"].as_str().unwrap_or("");
    // Same schema under the newer version (these fields did not change).
    let as_version = |v: &str| {
        let mut d = doc.clone();
        d["apiVersion"] = Value::from(v);
        d
    };
    let restore = |mut v: Value| {
        v["apiVersion"] = Value::from(api);
        v
    };
    match (api, kind(doc)) {
        ("v1", "Namespace") => typed::<core::v1::Namespace>(doc),
        ("v1", "ServiceAccount") => typed::<core::v1::ServiceAccount>(doc),
        ("v1", "Service") => typed::<core::v1::Service>(doc),
        ("v1", "Pod") => typed::<core::v1::Pod>(doc),
        ("apps/v1", "Deployment") => typed::<apps::v1::Deployment>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => typed::<rbac::v1::ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            typed::<rbac::v1::ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => typed::<rbac::v1::Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => typed::<rbac::v1::RoleBinding>(doc),
        ("networking.k8s.io/v1", "NetworkPolicy") => typed::<networking::v1::NetworkPolicy>(doc),
        ("policy/v1", "PodDisruptionBudget") => typed::<policy::v1::PodDisruptionBudget>(doc),
        ("policy/v1beta1", "PodDisruptionBudget") => {
            typed::<policy::v1::PodDisruptionBudget>(&as_version("policy/v1")).map(restore)
        }
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            typed::<autoscaling::v2::HorizontalPodAutoscaler>(doc)
        }
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler") => {
            typed::<autoscaling::v2::HorizontalPodAutoscaler>(&as_version("autoscaling/v2"))
                .map(restore)
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            typed::<apiextensions::v1::CustomResourceDefinition>(doc)
        }
        ("cert-manager.io/v1", "Certificate") => {
            // cert-manager's schema, the fields used here.
            let spec = &doc["spec"];
            let ok = spec["secretName"].is_string()
                && spec["issuerRef"]["name"].is_string()
                && spec["issuerRef"]["kind"]
                    .as_str()
                    .is_some_and(|k| k == "Issuer" || k == "ClusterIssuer")
                && (spec["isCA"] == true || spec["usages"].is_array());
            if ok {
                Ok(doc.clone())
            } else {
                Err("Certificate: spec.secretName, issuerRef.name/kind and usages expected".into())
            }
        }
        ("cert-manager.io/v1", "Issuer") => {
            let spec = &doc["spec"];
            if spec["selfSigned"].is_object() || spec["ca"]["secretName"].is_string() {
                Ok(doc.clone())
            } else {
                Err("Issuer: spec.selfSigned or spec.ca.secretName expected".into())
            }
        }
        ("v1", "ConfigMap") => typed::<core::v1::ConfigMap>(doc),
        ("monitoring.coreos.com/v1", "PrometheusRule") => {
            // prometheus-operator's schema, the fields used here.
            let ok = doc["spec"]["groups"].as_array().is_some_and(|groups| {
                groups.iter().all(|g| {
                    g["name"].is_string()
                        && g["rules"].as_array().is_some_and(|rules| {
                            rules.iter().all(|r| {
                                r["alert"].is_string()
                                    && r["expr"].is_string()
                                    && r["for"]
                                        .as_str()
                                        .is_some_and(|f| f.ends_with('m') || f.ends_with('h'))
                                    && r["labels"]["severity"].is_string()
                            })
                        })
                })
            });
            if ok {
                Ok(doc.clone())
            } else {
                Err("PrometheusRule: spec.groups[].name and rules[].alert/expr/for/labels.severity expected".into())
            }
        }
        ("monitoring.coreos.com/v1", "ServiceMonitor") => {
            // prometheus-operator's schema, the fields used here.
            let spec = &doc["spec"];
            let ok = spec["selector"]["matchLabels"].is_object()
                && spec["endpoints"].as_array().is_some_and(|e| {
                    e.iter().all(|e| {
                        e["port"].is_string()
                            && e["path"].as_str().is_some_and(|p| p.starts_with('/'))
                            && e["interval"].as_str().is_some_and(|i| i.ends_with('s'))
                    })
                });
            if ok {
                Ok(doc.clone())
            } else {
                Err("ServiceMonitor: spec.selector.matchLabels and endpoints[].port/path/interval expected".into())
            }
        }
        (api, kind) => Err(format!(
            "{api} {kind}: not a kind this chart is expected to render (add it to round_trip)"
        )),
    }
}

/// Fields of `orig` that are missing from (or differ in) `back`, as paths.
fn lost_fields(orig: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(w) => lost_fields(v, w, &p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!("{path} (length {} became {})", a.len(), b.len()));
            }
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                lost_fields(v, w, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(format!("{path} ({a} became {b})")),
        _ => {}
    }
}

fn check_structure(set: &str, docs: &[Value]) {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for doc in docs {
        let id = format!(
            "{} {}/{}",
            kind(doc),
            doc["metadata"]["namespace"].as_str().unwrap_or("-"),
            name(doc)
        );
        if !seen.insert(id.clone()) {
            problems.push(format!("{id}: rendered twice"));
        }
        match round_trip(doc) {
            Ok(back) => {
                let mut lost = Vec::new();
                lost_fields(doc, &back, "", &mut lost);
                for l in lost {
                    problems.push(format!("{id}: field {l} is not in the Kubernetes schema"));
                }
            }
            Err(e) => problems.push(format!("{id}: {e}")),
        }
    }
    assert!(
        problems.is_empty(),
        "[{set}] rendered objects that Kubernetes would reject or silently change:\n  {}",
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// helm lint / helm template

#[test]
fn helm_lint_passes_strictly_with_every_value_set() {
    for ValueSet {
        name: set, values, ..
    } in VALUE_SETS
    {
        let mut all = vec!["lint", "charts/causeway", "--strict"];
        all.extend_from_slice(values);
        let out = chart_render(&all);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "[{set}] lint failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("0 chart(s) failed"), "{text}");
    }
}

#[test]
fn every_value_set_renders_valid_kubernetes_objects() {
    for vs in VALUE_SETS {
        let (set, docs) = (vs.name, vs.render());
        assert!(docs.len() >= 10, "[{set}] only {} documents", docs.len());
        check_structure(set, &docs);
    }
}

#[test]
fn values_change_what_they_should() {
    let defaults = VALUE_SETS[0].render();
    let kinds: BTreeSet<&str> = defaults.iter().map(kind).collect();
    assert_eq!(
        find(&defaults, "Deployment", "causeway-proxy")["spec"]["replicas"],
        2
    );
    assert!(kinds.contains("PodDisruptionBudget") && kinds.contains("NetworkPolicy"));
    assert!(!kinds.contains("HorizontalPodAutoscaler") && !kinds.contains("ServiceMonitor"));
    assert_eq!(
        defaults
            .iter()
            .filter(|d| kind(d) == "CustomResourceDefinition")
            .count(),
        6
    );
    assert!(
        defaults.iter().any(|d| kind(d) == "Pod"),
        "the helm test Pod"
    );

    let scaled = VALUE_SETS[1].render();
    let hpa = find(&scaled, "HorizontalPodAutoscaler", "causeway-proxy");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "causeway-proxy");
    assert!(
        find(&scaled, "Deployment", "causeway-proxy")["spec"]
            .get("replicas")
            .is_none(),
        "the HPA owns the replica count"
    );
    assert_eq!(
        find(&scaled, "ServiceMonitor", "causeway-proxy")["spec"]["endpoints"][0]["interval"],
        "15s"
    );

    let minimal = VALUE_SETS[2].render();
    let kinds: BTreeSet<&str> = minimal.iter().map(kind).collect();
    for gone in [
        "CustomResourceDefinition",
        "NetworkPolicy",
        "PodDisruptionBudget",
    ] {
        assert!(!kinds.contains(gone), "{gone} still rendered");
    }

    let custom = VALUE_SETS[3].render();
    let controller = &find(&custom, "Deployment", "causeway-controller")["spec"];
    assert_eq!(controller["replicas"], 3);
    let c = &controller["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/example/causeway:1.2.3");
    assert_eq!(c["imagePullPolicy"], "Always");
    let args: Vec<&str> = c["args"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(args.contains(&"--namespace=shop") && args.contains(&"--namespace=pets"));
    // Tracing: the standard OTEL_* variables on the proxy, only when an endpoint is set.
    let proxy_env = |docs: &[Value]| {
        find(docs, "Deployment", "causeway-proxy")["spec"]["template"]["spec"]["containers"][0]
            ["env"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let env_value = |env: &[Value], name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    let traced = proxy_env(&custom);
    assert_eq!(
        env_value(&traced, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        Some(serde_json::json!(
            "http://otel-collector.observability:4318"
        ))
    );
    assert_eq!(
        env_value(&traced, "OTEL_TRACES_SAMPLER_ARG"),
        Some(serde_json::json!("0.25"))
    );
    assert_eq!(
        env_value(&traced, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        Some(serde_json::json!("http/protobuf"))
    );
    assert_eq!(
        env_value(&traced, "OTEL_SERVICE_NAME"),
        Some(serde_json::json!("causeway-proxy"))
    );
    assert_eq!(
        env_value(&proxy_env(&defaults), "OTEL_EXPORTER_OTLP_ENDPOINT"),
        None,
        "tracing is off by default"
    );
    let svc = find(&custom, "Service", "causeway-proxy");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        svc["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-internal"],
        "true"
    );
    assert_eq!(
        find(&custom, "PodDisruptionBudget", "causeway-proxy")["spec"]["minAvailable"],
        "50%"
    );

    let old = VALUE_SETS[4].render();
    assert_eq!(
        find(&old, "PodDisruptionBudget", "causeway-proxy")["apiVersion"],
        "policy/v1beta1"
    );
    assert_eq!(
        find(&old, "HorizontalPodAutoscaler", "causeway-proxy")["apiVersion"],
        "autoscaling/v2beta2"
    );

    // Push certificates: made by the controller by default; with cert-manager, two
    // Certificates write the Secrets the controller and the proxies read.
    let args = |docs: &[Value]| {
        find(docs, "Deployment", "causeway-controller")["spec"]["template"]["spec"]["containers"][0]
            ["args"]
            .clone()
    };
    assert!(!kinds.contains("Certificate"));
    assert!(
        args(&defaults)
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "--push-certs=controller"))
    );
    let managed = VALUE_SETS[5].render();
    assert!(
        args(&managed)
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "--push-certs=cert-manager"))
    );
    let server = find(&managed, "Certificate", "causeway-push-tls");
    assert_eq!(server["spec"]["secretName"], "causeway-push-tls");
    assert_eq!(server["spec"]["issuerRef"]["name"], "causeway-push-ca");
    assert_eq!(
        find(&managed, "Certificate", "causeway-proxy-tls")["spec"]["secretName"],
        "causeway-proxy-tls"
    );
    assert_eq!(
        find(&managed, "Issuer", "causeway-push-ca")["spec"]["ca"]["secretName"],
        "causeway-push-ca"
    );
    let corp = VALUE_SETS[6].render();
    assert!(
        corp.iter().all(|d| kind(d) != "Issuer"),
        "the user's issuer is used"
    );
    assert_eq!(
        find(&corp, "Certificate", "causeway-proxy-tls")["spec"]["issuerRef"],
        serde_json::json!({"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
}

#[test]
fn the_values_schema_rejects_bad_values() {
    for (bad, needle) in [
        ("image.repository=", "image.repository"),
        ("proxy.service.type=Ingress", "proxy.service.type"),
        ("controller.replicas=0", "controller.replicas"),
        ("proxy.service.port=70000", "proxy.service.port"),
        ("crds.install=maybe", "crds.install"),
        ("proxy.tracing.sampleRatio=2", "proxy.tracing.sampleRatio"),
        (
            "proxy.tracing.otlpEndpoint=https://collector:4318",
            "proxy.tracing.otlpEndpoint",
        ),
        ("proxy.tracing.protocol=http/json", "proxy.tracing.protocol"),
    ] {
        let out = chart_render(&["template", "charts/causeway", "--set", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "--set {bad} was accepted or the error does not name {needle}:\n{err}"
        );
    }
    // And a chart whose kubeVersion the cluster does not meet is refused, as helm does.
    let out = chart_render(&["template", "charts/causeway", "--kube-version", "1.19.0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kubeVersion"));
}

/// The stand-in itself, on a small chart that exercises what Helm does (and its quirks: a
/// number from a values file is a float64, so 1000000 prints as 1e+06; YAML 1.1 reads the key
/// `y` as true; a null in a values file deletes the default; unknown kinds sort last, by kind;
/// test hooks come after the manifests).
#[test]
fn the_stand_in_renders_like_helm() {
    let dir = "tests/fixtures/chart-render";
    let out = chart_render(&[
        "template",
        "rel",
        &format!("{dir}/demo"),
        "-n",
        "ns1",
        "-f",
        &format!("{dir}/overrides.yaml"),
        "--set",
        "small=7",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected =
        std::fs::read_to_string(repo_root().join(dir).join("expected.yaml")).expect("expected");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    // `required` fails with helm's message; with the value, --skip-tests and an old cluster:
    let out = chart_render(&["template", &format!("{dir}/demo"), "--set", "needIt=true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("execution error at (demo/templates/required.yaml:4:")
            && err.contains("set token, please"),
        "{err}"
    );
    let text = {
        let out = chart_render(&[
            "template",
            &format!("{dir}/demo"),
            "--set",
            "needIt=true,token=abc",
            "--skip-tests",
            "--kube-version",
            "1.21.0",
            "--only-api-versions",
            "-a",
            "v1",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let docs = documents(&text);
    assert_eq!(find(&docs, "Secret", "abc")["kind"], "Secret");
    assert!(!docs.iter().any(|d| kind(d) == "Pod"), "--skip-tests");
    let cm = find(&docs, "ConfigMap", "release-name-cm");
    assert_eq!(cm["data"]["pdb"], "policy/v1beta1");
    assert_eq!(cm["data"]["kube"].to_string(), "1.21");

    // And lint finds what helm lint finds: a template that does not render, a bad name.
    let work = tempfile::tempdir().expect("tempdir");
    let chart = work.path().join("demo");
    copy_dir(&repo_root().join(dir).join("demo"), &chart);
    std::fs::write(
        chart.join("templates/bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Name}\n",
    )
    .expect("write");
    let out = chart_render(&["lint", &chart.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("Not_A_Name") && text.contains("1 chart(s) failed"),
        "{text}"
    );
    std::fs::write(chart.join("templates/bad.yaml"), "{{ .Values.x | nope }}").expect("write");
    let out = chart_render(&["lint", &chart.display().to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("function \"nope\" not defined"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the objects say

#[test]
fn pods_meet_the_restricted_pod_security_standard() {
    for vs in VALUE_SETS {
        let (set, docs) = (vs.name, vs.render());
        let pods: Vec<(String, &Value)> = docs
            .iter()
            .filter_map(|d| match kind(d) {
                "Deployment" | "DaemonSet" => Some((
                    format!("{} {}", kind(d), name(d)),
                    &d["spec"]["template"]["spec"],
                )),
                "Pod" => Some((format!("Pod {}", name(d)), &d["spec"])),
                _ => None,
            })
            .collect();
        assert!(pods.len() >= 3, "[{set}] controller, proxy and test pods");
        for (what, spec) in pods {
            let ctx = &spec["securityContext"];
            assert_eq!(ctx["runAsNonRoot"], true, "[{set}] {what}");
            assert!(
                ctx["runAsUser"].as_u64().is_some_and(|u| u > 0),
                "[{set}] {what}"
            );
            assert_eq!(
                ctx["seccompProfile"]["type"], "RuntimeDefault",
                "[{set}] {what}"
            );
            for key in ["hostNetwork", "hostPID", "hostIPC"] {
                assert!(spec.get(key).is_none(), "[{set}] {what}: {key}");
            }
            for v in spec["volumes"].as_array().into_iter().flatten() {
                assert!(
                    v.get("secret").is_some() || v.get("emptyDir").is_some(),
                    "[{set}] {what}: volume {v} (restricted allows secret and emptyDir here)"
                );
            }
            let containers = spec["containers"].as_array().expect("containers");
            for c in containers {
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "[{set}] {what}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "[{set}] {what}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "[{set}] {what}"
                );
                assert!(sc["capabilities"].get("add").is_none(), "[{set}] {what}");
                assert!(sc.get("privileged").is_none(), "[{set}] {what}");
                if what.starts_with("Deployment") {
                    assert!(
                        c["resources"]["requests"]["memory"].is_string()
                            && c["resources"]["limits"]["memory"].is_string(),
                        "[{set}] {what}: memory request and limit"
                    );
                    assert!(
                        c["readinessProbe"].is_object() && c["livenessProbe"].is_object(),
                        "[{set}] {what}: probes"
                    );
                }
            }
        }
    }
}

#[test]
fn the_proxy_gets_no_kubernetes_credentials() {
    for vs in VALUE_SETS {
        let (set, docs) = (vs.name, vs.render());
        assert_eq!(
            find(&docs, "ServiceAccount", "causeway-proxy")["automountServiceAccountToken"],
            false,
            "[{set}]"
        );
        let pod = &find(&docs, "Deployment", "causeway-proxy")["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "causeway-proxy", "[{set}]");
        assert_eq!(pod["automountServiceAccountToken"], false, "[{set}]");
        for binding in docs
            .iter()
            .filter(|d| matches!(kind(d), "RoleBinding" | "ClusterRoleBinding"))
        {
            for s in binding["subjects"].as_array().into_iter().flatten() {
                assert_eq!(
                    s["name"],
                    "causeway-controller",
                    "[{set}] {} {} binds {s}",
                    kind(binding),
                    name(binding)
                );
            }
        }
        // The controller may not write what it only reads.
        let cluster_role = docs
            .iter()
            .find(|d| kind(d) == "ClusterRole")
            .expect("ClusterRole");
        for rule in cluster_role["rules"].as_array().into_iter().flatten() {
            let verbs = rule["verbs"].to_string();
            let resources = rule["resources"].to_string();
            if resources.contains("secrets") || resources.contains("services") {
                assert!(
                    !verbs.contains("create") && !verbs.contains("delete"),
                    "[{set}] cluster-wide write: {rule}"
                );
            }
            assert!(!verbs.contains('*') && !resources.contains('*'), "{rule}");
        }
    }
}

/// Selectors select the pods they mean, named ports exist, the HPA and the PDB target the proxy.
#[test]
fn selectors_and_ports_line_up() {
    for vs in VALUE_SETS {
        let (set, docs) = (vs.name, vs.render());
        let pods: Vec<(&str, &Value)> = docs
            .iter()
            .filter(|d| kind(d) == "Deployment")
            .map(|d| (name(d), &d["spec"]["template"]))
            .collect();
        let matches = |selector: &Value, pod: &Value| {
            selector.as_object().is_some_and(|sel| {
                !sel.is_empty()
                    && sel
                        .iter()
                        .all(|(k, v)| pod["metadata"]["labels"].get(k) == Some(v))
            })
        };
        let selected = |selector: &Value| -> Vec<&str> {
            pods.iter()
                .filter(|(_, p)| matches(selector, p))
                .map(|(n, _)| *n)
                .collect()
        };
        for d in &docs {
            let (k, n) = (kind(d), name(d));
            match k {
                "Deployment" => {
                    assert!(
                        matches(
                            &d["spec"]["selector"]["matchLabels"],
                            &d["spec"]["template"]
                        ),
                        "[{set}] Deployment {n}: selector does not match its pod template"
                    );
                    for c in d["spec"]["template"]["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let ports: Vec<&Value> = c["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|p| &p["name"])
                            .collect();
                        for probe in ["readinessProbe", "livenessProbe"] {
                            let port = &c[probe]["httpGet"]["port"];
                            assert!(
                                port.is_u64() || ports.contains(&port),
                                "[{set}] {n}: {probe} port {port}"
                            );
                        }
                    }
                }
                "Service" => {
                    let targets = selected(&d["spec"]["selector"]);
                    assert_eq!(targets, vec![n], "[{set}] Service {n} selects {targets:?}");
                    let pod = pods.iter().find(|(p, _)| *p == n).expect("pod").1;
                    let named: Vec<&Value> = pod["spec"]["containers"][0]["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| &p["name"])
                        .collect();
                    for port in d["spec"]["ports"].as_array().into_iter().flatten() {
                        assert!(
                            named.contains(&&port["targetPort"]),
                            "[{set}] Service {n}: targetPort {} is not a container port",
                            port["targetPort"]
                        );
                    }
                }
                "NetworkPolicy" => {
                    assert_eq!(
                        selected(&d["spec"]["podSelector"]["matchLabels"]),
                        vec![n],
                        "[{set}] NetworkPolicy {n}"
                    );
                    for rule in d["spec"]["ingress"].as_array().into_iter().flatten() {
                        for from in rule["from"].as_array().into_iter().flatten() {
                            assert_eq!(
                                selected(&from["podSelector"]["matchLabels"]),
                                vec!["causeway-proxy"],
                                "[{set}] NetworkPolicy {n}: only the proxies reach it"
                            );
                        }
                    }
                }
                "PodDisruptionBudget" => assert_eq!(
                    selected(&d["spec"]["selector"]["matchLabels"]),
                    vec!["causeway-proxy"],
                    "[{set}]"
                ),
                "HorizontalPodAutoscaler" => {
                    let target = &d["spec"]["scaleTargetRef"];
                    assert_eq!(target["kind"], "Deployment");
                    assert!(pods.iter().any(|(p, _)| target["name"] == *p), "[{set}]");
                }
                "ServiceMonitor" => {
                    let svc = find(&docs, "Service", "causeway-proxy");
                    assert!(
                        d["spec"]["selector"]["matchLabels"]
                            .as_object()
                            .expect("labels")
                            .iter()
                            .all(|(k, v)| svc["metadata"]["labels"].get(k) == Some(v)),
                        "[{set}] the ServiceMonitor selects the proxy Service"
                    );
                }
                _ => {}
            }
        }
        // The proxy dials the controller's Service by name, on its push port.
        let proxy_args =
            find(&docs, "Deployment", "causeway-proxy")["spec"]["template"]["spec"]["containers"]
                [0]["args"]
                .to_string();
        assert!(
            proxy_args
                .contains("--controller=https://causeway-controller.causeway-system.svc:18000"),
            "{proxy_args}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// deploy/ and the chart's copies

#[test]
fn deploy_manifests_are_rendered_from_the_current_chart() {
    let root = repo_root();
    let out = Command::new("bash")
        .arg(root.join("scripts/render-deploy.sh"))
        .arg("--check")
        .current_dir(&root)
        .output()
        .expect("run scripts/render-deploy.sh --check");
    assert!(
        out.status.success(),
        "deploy/causeway.yaml is not what the chart renders now; regenerate with \
         scripts/render-deploy.sh and commit it:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(root.join("deploy/causeway.yaml")).expect("deploy");
    let docs = documents(&text);
    assert_eq!(kind(&docs[0]), "Namespace", "the Namespace comes first");
    assert!(
        !docs.iter().any(|d| kind(d) == "Pod"),
        "no helm test Pod in deploy/"
    );
    check_structure("deploy/causeway.yaml", &docs);
}

#[test]
fn the_chart_ships_exactly_the_committed_crds() {
    let root = repo_root();
    let committed =
        std::fs::read_to_string(root.join("deploy/crds/causeway.dev.yaml")).expect("deploy/crds");
    let chart =
        std::fs::read_to_string(root.join("charts/causeway/files/crds.yaml")).expect("chart CRDs");
    assert!(
        committed == chart,
        "charts/causeway/files/crds.yaml is stale: cp deploy/crds/causeway.dev.yaml charts/causeway/files/crds.yaml"
    );
}

#[test]
fn the_values_schema_is_json_and_requires_the_image() {
    let text = std::fs::read_to_string(repo_root().join("charts/causeway/values.schema.json"))
        .expect("schema");
    let schema: Value = serde_json::from_str(&text).expect("values.schema.json is JSON");
    assert!(
        schema["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|v| v == "image"))
    );
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile (no Docker engine here: it is parsed, not built)

#[test]
fn the_dockerfile_builds_a_non_root_image_of_the_one_binary() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    // Instructions, with continuation lines joined.
    let mut instructions: Vec<(String, String)> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            pending.push_str(part);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let (op, rest) = pending.split_once(' ').unwrap_or((&pending, ""));
        instructions.push((op.to_uppercase(), rest.trim().to_string()));
        pending.clear();
    }
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| op == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "a multi-stage build");
    let build_name = instructions[stages[0]]
        .1
        .split_whitespace()
        .last()
        .expect("stage name")
        .to_string();
    let build = &instructions[stages[0]..stages[stages.len() - 1]];
    let last = &instructions[stages[stages.len() - 1]..];

    // The toolchain the image builds with is the repository's.
    let toolchain = std::fs::read_to_string(root.join("rust-toolchain.toml")).expect("toolchain");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .expect("channel")
        .trim_matches('"');
    assert!(
        instructions
            .iter()
            .any(|(op, rest)| op == "ARG" && *rest == format!("RUST_VERSION={channel}")),
        "Dockerfile ARG RUST_VERSION is not rust-toolchain.toml's {channel}"
    );
    let run = build
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, r)| r.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        run.contains("cargo build --release --locked -p causeway"),
        "{run}"
    );
    assert!(run.contains("target/release/causeway"), "{run}");
    let cli = std::fs::read_to_string(root.join("cli/Cargo.toml")).expect("cli/Cargo.toml");
    assert!(
        cli.contains("name = \"causeway\""),
        "the package -p causeway builds"
    );

    let copy = last
        .iter()
        .find(|(op, rest)| op == "COPY" && rest.starts_with(&format!("--from={build_name}")))
        .expect("the final stage copies from the build stage");
    let installed = copy.1.split_whitespace().last().expect("destination");
    let entrypoint = last
        .iter()
        .find(|(op, _)| op == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    let entry: Vec<String> = serde_json::from_str(&entrypoint.1).expect("ENTRYPOINT in exec form");
    assert_eq!(entry[0], installed, "ENTRYPOINT runs the copied binary");

    let user = last
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .expect("USER in the final stage");
    let uid: u32 = user
        .1
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .expect("numeric USER (runAsNonRoot can only check a number)");
    assert_ne!(uid, 0, "non-root");
    let docs = VALUE_SETS[0].render();
    let pod = &find(&docs, "Deployment", "causeway-proxy")["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["runAsUser"], uid,
        "the chart runs as the image's user"
    );

    // Every port a chart container declares is one the image documents.
    let exposed: BTreeSet<u64> = last
        .iter()
        .filter(|(op, _)| op == "EXPOSE")
        .flat_map(|(_, r)| r.split_whitespace().filter_map(|p| p.parse().ok()))
        .collect();
    for d in docs.iter().filter(|d| kind(d) == "Deployment") {
        for c in d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for p in c["ports"].as_array().into_iter().flatten() {
                let port = p["containerPort"].as_u64().expect("containerPort");
                assert!(
                    exposed.contains(&port),
                    "{}: port {port} not EXPOSEd",
                    name(d)
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A real API server

/// `helm install` and `kubectl apply -f deploy/causeway.yaml`, against kube-local
/// (kube-apiserver 1.20): kubectl validates every object against the server's OpenAPI schema
/// (unknown fields are errors) and the server stores them. Nothing runs the pods (kube-local
/// has no kubelet), so this proves the objects are accepted, not that they become ready.
#[test]
fn the_manifests_are_accepted_by_a_real_api_server() {
    let Some(kube) = KubeLocal::private() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let served: BTreeSet<String> = kube
        .run(&["api-versions"])
        .lines()
        .map(str::to_string)
        .collect();
    let version: Value =
        serde_json::from_str(&kube.run(&["version", "-o", "json"])).expect("version JSON");
    let server_version = version["serverVersion"]["gitVersion"]
        .as_str()
        .expect("gitVersion")
        .to_string();

    // 1. deploy/causeway.yaml, as a user would apply it. Objects of API versions this (old)
    //    server does not serve are left out, and only those.
    let text = std::fs::read_to_string(repo_root().join("deploy/causeway.yaml")).expect("deploy");
    let (applicable, skipped): (Vec<Value>, Vec<Value>) = documents(&text)
        .into_iter()
        .partition(|d| served.contains(d["apiVersion"].as_str().unwrap_or("")));
    let skipped: Vec<String> = skipped
        .iter()
        .map(|d| format!("{} {}", d["apiVersion"].as_str().unwrap_or(""), kind(d)))
        .collect();
    assert_eq!(
        skipped,
        vec!["policy/v1 PodDisruptionBudget"],
        "on {server_version} only the policy/v1 PDB (Kubernetes >= 1.21) is not served"
    );
    let all = apply_in_order(&kube, work.path(), "deploy", &applicable);
    let listed = kube.run(&[
        "get",
        "deploy,svc,sa,role,rolebinding,networkpolicy",
        "-n",
        "causeway-system",
        "-o",
        "name",
    ]);
    for want in [
        "deployment.apps/causeway-controller",
        "deployment.apps/causeway-proxy",
        "service/causeway-proxy",
        "serviceaccount/causeway-proxy",
        "networkpolicy.networking.k8s.io/causeway-controller",
    ] {
        assert!(listed.contains(want), "{want} not stored:\n{listed}");
    }
    // Applying again changes nothing: no list the server fills in with defaults (kubectl
    // replaces such lists on every apply, and GitOps tools show them out of sync). CRDs are
    // left out: a 1.20 server drops their `x-kubernetes-validations` (CEL rules, 1.25+), so
    // they differ from what was applied, there only.
    let again = kube.run(&["apply", "--validate=false", "-f", &all]);
    let changed: Vec<&str> = again
        .lines()
        .filter(|l| !l.ends_with(" unchanged") && !l.starts_with("customresourcedefinition"))
        .collect();
    assert!(
        changed.is_empty(),
        "a second apply changed objects:\n{again}"
    );

    // 2. The chart rendered with this server's capabilities (what `helm install` does), with
    //    every optional part on, in a namespace of its own.
    let apis = served.iter().cloned().collect::<Vec<_>>().join(",");
    let rendered = {
        let out = chart_render(&[
            "template",
            "helm-like",
            "charts/causeway",
            "--namespace",
            "causeway-helm",
            "--kube-version",
            &server_version,
            "--only-api-versions",
            "-a",
            &apis,
            "--skip-tests",
            "--set",
            "proxy.autoscaling.enabled=true,crds.install=false,controller.watchNamespaces={shop}",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let docs = documents(&rendered);
    let versions: BTreeSet<String> = docs
        .iter()
        .map(|d| format!("{} {}", d["apiVersion"].as_str().unwrap_or(""), kind(d)))
        .collect();
    assert!(
        versions.contains("policy/v1beta1 PodDisruptionBudget"),
        "{versions:?}"
    );
    assert!(
        versions.contains("autoscaling/v2beta2 HorizontalPodAutoscaler"),
        "{versions:?}"
    );
    kube.run(&["create", "namespace", "causeway-helm"]);
    let _ = apply_in_order(&kube, work.path(), "helm", &docs);
    kube.run(&[
        "-n",
        "causeway-helm",
        "get",
        "pdb/causeway-proxy",
        "hpa/causeway-proxy",
    ]);
}

/// Applies `docs` (written to DIR/NAME-*.yaml): CRDs and Namespaces first, waiting until the
/// CRDs are established, then the rest with kubectl's schema validation on. Returns a file
/// with all of them.
fn apply_in_order(kube: &KubeLocal, dir: &Path, name: &str, docs: &[Value]) -> String {
    let write = |file: String, docs: Vec<&Value>| {
        let path = dir.join(file);
        let text: String = docs
            .iter()
            .map(|d| format!("---\n{}\n", serde_json::to_string(d).expect("JSON")))
            .collect();
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let (first, rest): (Vec<&Value>, Vec<&Value>) = docs
        .iter()
        .partition(|d| matches!(kind(d), "CustomResourceDefinition" | "Namespace"));
    let crds = first.iter().any(|d| kind(d) == "CustomResourceDefinition");
    if !first.is_empty() {
        // kubectl 1.20's client-side validation does not know CRD v1's x-kubernetes-*
        // extensions; the server validates CRDs fully anyway.
        let path = write(format!("{name}-first.yaml"), first);
        kube.run(&["apply", "--validate=false", "-f", &path]);
    }
    if crds {
        kube.run(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ]);
    }
    let path = write(format!("{name}-rest.yaml"), rest);
    kube.run(&["apply", "--validate=true", "-f", &path]);
    write(format!("{name}-all.yaml"), docs.iter().collect())
}

// ---------------------------------------------------------------------------------------------
// Operators' kit: the Grafana dashboard and the PrometheusRule alerts

/// Metric names registered in the sources under `dir`: string literals passed to a
/// `register*(` call, and the entries of a `METRICS` array (the controller's).
fn registered_metrics(dir: &Path, out: &mut BTreeSet<String>) {
    let register = regex::Regex::new(r#"register(?:_counter|_gauge)?\(\s*"(causeway_[a-z0-9_]+)""#)
        .expect("regex");
    let array = regex::Regex::new(r#"(?s)METRICS: \[&str; \d+\] = \[(.*?)\];"#).expect("regex");
    let literal = regex::Regex::new(r#""(causeway_[a-z0-9_]+)""#).expect("regex");
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            registered_metrics(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            out.extend(register.captures_iter(&text).map(|c| c[1].to_string()));
            for block in array.captures_iter(&text) {
                out.extend(literal.captures_iter(&block[1]).map(|c| c[1].to_string()));
            }
        }
    }
}

/// The metric names an expression uses, as registered (without the `_total`, `_bucket`,
/// `_sum`, `_count` suffixes the exposition adds).
fn metrics_in(expr: &str) -> Vec<String> {
    let name = regex::Regex::new(r"causeway_[a-z0-9_]+").expect("regex");
    name.find_iter(expr)
        .map(|m| {
            let n = m.as_str();
            ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_string()
        })
        .collect()
}

#[test]
fn the_dashboard_and_the_alerts_name_only_metrics_the_proxy_or_the_controller_exports() {
    let root = repo_root();
    let mut exported = BTreeSet::new();
    registered_metrics(&root.join("proxy/src"), &mut exported);
    registered_metrics(&root.join("controller/src"), &mut exported);
    for expected in [
        "causeway_proxy_requests",
        "causeway_controller_proxies_applied",
    ] {
        assert!(
            exported.contains(expected),
            "the scan of metric registrations found no {expected}; found {exported:?}"
        );
    }
    let docs = documents(&template(&[
        "--set",
        "grafanaDashboard.enabled=true,prometheusRule.enabled=true",
    ]));
    let dashboard_map = find(&docs, "ConfigMap", "causeway-grafana-dashboard");
    assert_eq!(
        dashboard_map["metadata"]["labels"]["grafana_dashboard"], "1",
        "the sidecar label"
    );
    let dashboard: Value = serde_json::from_str(
        dashboard_map["data"]["causeway.json"]
            .as_str()
            .expect("causeway.json"),
    )
    .expect("the dashboard is JSON");
    let mut used: Vec<(String, String)> = Vec::new();
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(ids.insert(panel["id"].to_string()), "panel ids are unique");
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let title = panel["title"].as_str().unwrap_or("").to_string();
            used.extend(metrics_in(expr).into_iter().map(|m| (title.clone(), m)));
        }
    }
    let rules = find(&docs, "PrometheusRule", "causeway");
    let mut alerts = BTreeSet::new();
    for group in rules["spec"]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let alert = rule["alert"].as_str().expect("alert").to_string();
            let expr = rule["expr"].as_str().expect("expr");
            let found = metrics_in(expr);
            assert!(!found.is_empty(), "{alert} names no Causeway metric");
            used.extend(found.into_iter().map(|m| (alert.clone(), m)));
            alerts.insert(alert);
        }
    }
    for wanted in [
        "CausewayHigh5xxRatio",
        "CausewayQuotaStoreDown",
        "CausewayProxyNotOnCurrentSnapshot",
        "CausewayPushCertificateExpiring",
    ] {
        assert!(
            alerts.contains(wanted),
            "alert {wanted} is missing: {alerts:?}"
        );
    }
    let unknown: Vec<String> = used
        .iter()
        .filter(|(_, m)| !exported.contains(m))
        .map(|(w, m)| format!("{w}: {m}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "metrics no component exports:\n  {}\nexported: {exported:?}",
        unknown.join("\n  ")
    );
}

#[test]
fn the_dashboard_and_the_alerts_are_off_by_default() {
    let docs = documents(&template(&[]));
    assert!(
        !docs
            .iter()
            .any(|d| kind(d) == "PrometheusRule" || name(d) == "causeway-grafana-dashboard")
    );
}

#[test]
fn the_proxy_listens_on_each_address_family_of_its_values() {
    let args = |docs: &[Value]| -> Vec<String> {
        find(docs, "Deployment", "causeway-proxy")["spec"]["template"]["spec"]["containers"][0]
            ["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(|a| a.as_str())
            .filter(|a| a.contains("listen="))
            .map(str::to_string)
            .collect()
    };
    let single = documents(&template(&[]));
    assert_eq!(
        args(&single),
        ["--listen=0.0.0.0:8080", "--admin-listen=0.0.0.0:9901"]
    );
    assert!(find(&single, "Service", "causeway-proxy")["spec"]["ipFamilyPolicy"].is_null());
    let dual = documents(&template(&[
        "--set",
        "proxy.ipFamilies={IPv6,IPv4},proxy.ipFamilyPolicy=RequireDualStack",
    ]));
    assert_eq!(
        args(&dual),
        [
            "--listen=[::]:8080",
            "--listen=0.0.0.0:8080",
            "--admin-listen=[::]:9901"
        ]
    );
    let service = find(&dual, "Service", "causeway-proxy");
    assert_eq!(service["spec"]["ipFamilyPolicy"], "RequireDualStack");
    assert_eq!(
        service["spec"]["ipFamilies"],
        serde_json::json!(["IPv6", "IPv4"])
    );
    let controller =
        find(&dual, "Deployment", "causeway-controller")["spec"]["template"]["spec"]["containers"]
            [0]["args"]
            .to_string();
    assert!(
        controller.contains("--push-listen=[::]:18000"),
        "the controller listens on the first family too: {controller}"
    );
    let v6 = documents(&template(&["--set", "proxy.ipFamilies={IPv6}"]));
    assert_eq!(
        args(&v6),
        ["--listen=[::]:8080", "--admin-listen=[::]:9901"]
    );
}
