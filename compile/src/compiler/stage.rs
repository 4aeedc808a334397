//! Stages: which deployment they serve, its materialization with the stage's variables, the
//! canary, and the hosts that reach them.
//!
//! Every stage of an Api whose default endpoint is on (`disableExecuteApiEndpoint` not set) is reachable at
//! `{api}.{namespace}.{executeApiDomain}/{stageName}`; `spec.domains` add custom hosts with
//! base paths and routing rules. A hostname and base path (or a hostname and rule priority)
//! belongs to the oldest stage claiming it; a newer stage claiming it gets `ConflictingDomain`.
//! A stage variable a template uses but the stage does not define becomes the empty string,
//! as in API Gateway.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use causeway_crds::Stage;
use causeway_crds::api::ApiProtocol;
use causeway_crds::common::ThrottleSpec;
use causeway_snapshot::{
    AccessLog, Backend, BasePathMapping, CanaryConfig, HostConfig, RoutingRuleConfig, StageConfig,
    Sticky, Throttle,
};

use super::Input;
use super::backend::Cluster;
use super::deployment::{Definition, Deployments, StageContext, load, materialize};
use super::memo::Fp;
use super::text::is_name;
use super::{Apis, ObjKey, Problem, Verdict, age, api_ref_problem, cel, obj_key};
use crate::CompileOptions;
use crate::reasons;
use crate::status::{Kind, ObjectStatus, StatusDetail};

/// What the stages contribute to the snapshot.
#[derive(Debug, Default)]
pub(crate) struct StageOutput {
    /// Accepted stages, sorted by id.
    pub stages: Vec<StageConfig>,
    /// Their digests, in the same order.
    pub stage_digests: Vec<causeway_snapshot::PartDigest>,
    /// Hosts, sorted by hostname.
    pub hosts: Vec<HostConfig>,
    /// Backends of accepted stages.
    pub backends: BTreeMap<String, Backend>,
    /// One status per Stage.
    pub statuses: Vec<ObjectStatus>,
    /// Certificates of the accepted stages' domains.
    pub certificates: Vec<causeway_snapshot::Certificate>,
}

/// A stage that passed every check of its own, before its names and domains are claimed.
#[derive(Clone)]
pub(crate) struct Candidate {
    config: StageConfig,
    /// [`part_digest`](causeway_snapshot::part_digest) of `config`, kept with it in the memo.
    digest: causeway_snapshot::PartDigest,
    backends: BTreeMap<String, Backend>,
    mappings: BTreeSet<(String, String)>,
    rules: Vec<(String, RoutingRuleConfig)>,
    urls: Vec<String>,
    certificates: Vec<causeway_snapshot::Certificate>,
    redirects: BTreeSet<String>,
    /// The client CA bundle (mutual TLS) of each domain with a certificate, `None` without
    /// mutual TLS; by hostname.
    client_cas: BTreeMap<String, Option<String>>,
    /// Set when every custom domain asks for a client certificate while the default endpoint,
    /// which never does, still reaches the stage.
    mtls_bypass: Option<String>,
}

/// The memo of each Stage's own compilation, by `(namespace, name)`.
pub(crate) type StageMemo = HashMap<ObjKey, (u64, Arc<Result<Candidate, Problem>>)>;

/// Compiles every Stage, oldest first. A Stage's own compilation is reused from `memo` (if any) when
/// the stage, the current deployment of its Api and `context` (the fingerprint of everything
/// else a stage reads) are unchanged.
pub(crate) fn compile_stages(
    inventory: &Input<'_>,
    options: &CompileOptions,
    apis: &Apis,
    deployments: &Deployments,
    cluster: &Cluster<'_>,
    context: u64,
    memo: Option<&mut StageMemo>,
) -> StageOutput {
    // A one-shot compile has no memo: nothing is kept, every candidate is moved out.
    let keep = memo.is_some();
    let mut none = StageMemo::new();
    let memo = memo.unwrap_or(&mut none);
    let mut stages: Vec<&Stage> = inventory.stages.iter().collect();
    stages.sort_by_key(|s| (age(&s.metadata), obj_key(&s.metadata)));
    let mut out = StageOutput::default();
    let mut names: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut mappings: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut rules: BTreeMap<(String, u32), RoutingRuleConfig> = BTreeMap::new();
    let mut certificates = Vec::new();
    let mut redirects = BTreeSet::new();
    // Mutual TLS is a property of the handshake, so of the whole host: every stage on a host
    // must ask for the same client CA (or none), else one would silently get another's.
    let mut client_cas: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut staged = Vec::new();
    // What a Stage reads of the deployment history: the records of the ids it pins, found by
    // `(api, id)`. A record's id is the hash of its content and its ConfigMap is immutable, so
    // how many there are of that id is all that can change.
    let mut recorded: HashMap<(&str, &str), usize> = HashMap::new();
    for r in &inventory.deployments {
        *recorded.entry((r.api.as_str(), r.id.as_str())).or_default() += 1;
    }
    for stage in stages {
        let mut verdict = Verdict::default();
        let (namespace, _) = obj_key(&stage.metadata);
        let stage_key = obj_key(&stage.metadata);
        let api_id = format!("{namespace}/{}", stage.spec.api_ref.name);
        let mut fp = Fp::default();
        fp.add(context).object(&stage.metadata, stage).add(
            deployments
                .current
                .get(&(namespace.clone(), stage.spec.api_ref.name.clone()))
                .map(|d| d.1.id.as_str()),
        );
        let pinned = [
            stage.spec.deployment_id.as_deref(),
            stage.spec.canary.as_ref().map(|c| c.deployment_id.as_str()),
        ];
        for id in pinned {
            fp.add(id.map(|id| recorded.get(&(api_id.as_str(), id)).copied().unwrap_or(0)));
        }
        let key = fp.finish();
        let own = match memo.get(&stage_key) {
            Some((k, hit)) if *k == key => Arc::clone(hit),
            _ => {
                let fresh = Arc::new(candidate(
                    stage,
                    inventory,
                    options,
                    apis,
                    deployments,
                    cluster,
                ));
                if keep {
                    memo.insert(stage_key.clone(), (key, Arc::clone(&fresh)));
                }
                fresh
            }
        };
        seen.insert(stage_key);
        // Copied out of the memo; a one-shot compile keeps no memo and moves it.
        let candidate = verdict.check(Arc::try_unwrap(own).unwrap_or_else(|own| (*own).clone()));
        if let Some(c) = candidate.as_ref().filter(|_| verdict.is_ok()) {
            let name_key = (
                namespace.clone(),
                stage.spec.api_ref.name.clone(),
                c.config.name.clone(),
            );
            if names.contains(&name_key) {
                verdict.add(Problem::invalid(
                    reasons::DUPLICATE_STAGE,
                    format!(
                        "stage name {:?}: an older Stage of Api {} has the same name",
                        c.config.name, c.config.api
                    ),
                ));
            } else if let Some(taken) = c
                .mappings
                .iter()
                .find_map(|m| mappings.get(m).map(|other| (m, other)))
            {
                let ((host, base), other) = taken;
                verdict.add(Problem::invalid(
                    reasons::CONFLICTING_DOMAIN,
                    format!(
                        "spec.domains: host {host:?} with base path {base:?} already routes to stage {other}"
                    ),
                ));
            } else if let Some((host, rule)) = c
                .rules
                .iter()
                .find(|(h, r)| rules.contains_key(&(h.clone(), r.priority)))
            {
                verdict.add(Problem::invalid(
                    reasons::CONFLICTING_DOMAIN,
                    format!(
                        "spec.domains: host {host:?} already has a routing rule with priority {}",
                        rule.priority
                    ),
                ));
            } else if let Some((host, other)) = c.client_cas.iter().find_map(|(host, ca)| {
                client_cas
                    .get(host)
                    .filter(|(taken, _)| taken != ca)
                    .map(|(_, other)| (host, other))
            }) {
                verdict.add(Problem::invalid(
                    reasons::CONFLICTING_DOMAIN,
                    format!(
                        "spec.domains: host {host:?} is also served by stage {other} with different mutual TLS (clientCaSecretRef): every stage on a host must ask for the same client CA"
                    ),
                ));
            }
        }
        let mut detail = StatusDetail::None;
        if let Some(c) = candidate
            && verdict.is_ok()
        {
            names.insert((
                namespace.clone(),
                stage.spec.api_ref.name.clone(),
                c.config.name.clone(),
            ));
            for m in &c.mappings {
                mappings.insert(m.clone(), c.config.id.clone());
            }
            for (host, rule) in c.rules {
                rules.insert((host, rule.priority), rule);
            }
            for (host, ca) in c.client_cas {
                client_cas
                    .entry(host)
                    .or_insert_with(|| (ca, c.config.id.clone()));
            }
            detail = StatusDetail::Stage {
                stage_id: c.config.id.clone(),
                urls: c.urls,
                deployment_id: c.config.main.deployment_id.clone(),
                canary_deployment_id: c
                    .config
                    .canary
                    .as_ref()
                    .map(|k| k.deployment.deployment_id.clone()),
            };
            if let Some(w) = &c.mtls_bypass {
                verdict.warn(w.clone());
            }
            out.backends.extend(c.backends);
            certificates.extend(c.certificates);
            redirects.extend(c.redirects);
            staged.push((c.config, c.digest));
        }
        out.statuses
            .push(verdict.into_status(Kind::Stage, &stage.metadata, detail));
    }
    memo.retain(|k, _| seen.contains(k));
    staged.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    (out.stages, out.stage_digests) = staged.into_iter().unzip();
    let mut hosts: BTreeMap<String, HostConfig> = BTreeMap::new();
    let host = |hosts: &mut BTreeMap<String, HostConfig>, name: &str| {
        hosts.entry(name.to_string()).or_insert_with(|| HostConfig {
            hostname: name.to_string(),
            rules: vec![],
            mappings: vec![],
            redirect_to_https: false,
        });
    };
    for ((hostname, base_path), stage) in mappings {
        host(&mut hosts, &hostname);
        if let Some(h) = hosts.get_mut(&hostname) {
            h.mappings.push(BasePathMapping { base_path, stage });
        }
    }
    for ((hostname, _), rule) in rules {
        host(&mut hosts, &hostname);
        if let Some(h) = hosts.get_mut(&hostname) {
            h.rules.push(rule);
        }
    }
    for h in hosts.values_mut() {
        h.mappings.sort_by(|a, b| {
            b.base_path
                .len()
                .cmp(&a.base_path.len())
                .then_with(|| a.base_path.cmp(&b.base_path))
        });
        h.rules.sort_by_key(|r| r.priority);
        h.redirect_to_https = redirects.contains(&h.hostname);
    }
    out.hosts = hosts.into_values().collect();
    out.certificates = super::tls::merge(certificates);
    out
}

fn invalid(message: String) -> Problem {
    Problem::invalid(reasons::INVALID, message)
}

fn throttle(field: &str, spec: &ThrottleSpec) -> Result<Throttle, Problem> {
    if !spec.rate_limit.is_finite() || spec.rate_limit < 0.0 {
        return Err(invalid(format!(
            "{field}.rateLimit must be a number of at least 0"
        )));
    }
    Ok(Throttle {
        rate: spec.rate_limit,
        burst: spec.burst_limit,
    })
}

fn check_variables(field: &str, variables: &BTreeMap<String, String>) -> Result<(), Problem> {
    match variables.keys().find(|k| !is_name(k)) {
        Some(bad) => Err(invalid(format!(
            "{field}: variable name {bad:?} may hold letters, digits and '_' only"
        ))),
        None => Ok(()),
    }
}

/// Normalizes a base path: no leading or trailing slash; segments of URL-safe characters.
fn base_path(field: &str, raw: &str) -> Result<String, Problem> {
    let trimmed = raw.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.split('/').all(|seg| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~$".contains(c))
    });
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(invalid(format!(
            "{field} {raw:?} may hold letters, digits, '-', '.', '_', '~' and inner '/'"
        )))
    }
}

/// The deployment with this id: the current one, or a recorded one of the same Api.
fn find_deployment<'d>(
    field: &str,
    id: &str,
    api_id: &str,
    current: &'d (Definition, crate::DeploymentRecord),
    inventory: &Input<'_>,
) -> Result<Cow<'d, Definition>, Problem> {
    if current.1.id == id {
        return Ok(Cow::Borrowed(&current.0));
    }
    let record = inventory
        .deployments
        .iter()
        .filter(|r| r.api == api_id && r.id == id)
        .min_by(|a, b| a.definition.to_string().cmp(&b.definition.to_string()));
    match record {
        None => Err(Problem::unresolved(
            reasons::DEPLOYMENT_NOT_FOUND,
            format!("{field}: Api {api_id} has no deployment {id:?}"),
        )),
        Some(r) => load(r).map(Cow::Owned).map_err(|e| {
            Problem::unresolved(
                reasons::DEPLOYMENT_NOT_FOUND,
                format!("{field}: deployment {id:?} of Api {api_id} cannot be read: {e}"),
            )
        }),
    }
}

fn candidate(
    stage: &Stage,
    inventory: &Input<'_>,
    options: &CompileOptions,
    apis: &Apis,
    deployments: &Deployments,
    cluster: &Cluster<'_>,
) -> Result<Candidate, Problem> {
    cel::check(Kind::Stage, stage)?;
    let (namespace, object_name) = obj_key(&stage.metadata);
    let spec = &stage.spec;
    let api_name = &spec.api_ref.name;
    let name = spec.stage_name.clone().unwrap_or(object_name);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(format!(
            "stage name {name:?} may hold letters, digits, '-' and '_' only"
        )));
    }
    check_variables("spec.variables", &spec.variables)?;
    let stage_throttle = spec
        .throttle
        .as_ref()
        .map(|t| throttle("spec.throttle", t))
        .transpose()?;
    let mut route_throttles = BTreeMap::new();
    for (i, settings) in spec.route_settings.iter().enumerate() {
        if let Some(t) = &settings.throttle {
            let t = throttle(&format!("spec.routeSettings[{i}].throttle"), t)?;
            if route_throttles
                .insert(settings.route_key.clone(), t)
                .is_some()
            {
                return Err(invalid(format!(
                    "spec.routeSettings[{i}]: route key {:?} is listed twice",
                    settings.route_key
                )));
            }
        }
    }
    let cache = super::cache::plan(spec)?;
    let canary_spec = spec.canary.as_ref();
    if let Some(c) = canary_spec {
        if !c.percent_traffic.is_finite() || !(0.0..=100.0).contains(&c.percent_traffic) {
            return Err(invalid(
                "spec.canary.percentTraffic must be between 0 and 100".into(),
            ));
        }
        check_variables(
            "spec.canary.stageVariableOverrides",
            &c.stage_variable_overrides,
        )?;
    }
    let mut domains = Vec::new();
    let mut certificates = Vec::new();
    let mut redirects = BTreeSet::new();
    let mut client_cas = BTreeMap::new();
    for (i, d) in spec.domains.iter().enumerate() {
        let field = format!("spec.domains[{i}]");
        let hostname = d.hostname.to_ascii_lowercase();
        let client_ca = match (&d.client_ca_secret_ref, &d.tls_secret_ref) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(invalid(format!(
                    "{field}.clientCaSecretRef needs tlsSecretRef: mutual TLS happens in the TLS handshake"
                )));
            }
            (Some(ca), Some(_)) => Some(super::tls::client_ca_bundle(
                inventory,
                &format!("{field}.clientCaSecretRef"),
                &namespace,
                &ca.name,
            )?),
        };
        if let Some(secret) = &d.tls_secret_ref {
            let mut certificate = super::tls::tls_certificate(
                inventory,
                &format!("{field}.tlsSecretRef"),
                &namespace,
                &secret.name,
                &hostname,
            )?;
            certificate.client_ca_pem = client_ca.clone();
            certificates.push(certificate);
        }
        // Entries with a certificate decide the host's handshake; the others only route.
        if d.tls_secret_ref.is_some()
            && client_cas
                .insert(hostname.clone(), client_ca.clone())
                .is_some_and(|other| other != client_ca)
        {
            return Err(invalid(format!(
                "{field}.clientCaSecretRef: host {hostname:?} is listed again with different mutual TLS"
            )));
        }
        if d.redirect_to_https == Some(true) {
            if d.tls_secret_ref.is_none() {
                return Err(invalid(format!(
                    "{field}.redirectToHttps needs tlsSecretRef: without a certificate the redirect would lead nowhere"
                )));
            }
            redirects.insert(hostname.clone());
        }
        let base = base_path(
            &format!("{field}.basePath"),
            d.base_path.as_deref().unwrap_or(""),
        )?;
        let mut rule_configs = Vec::new();
        for (j, r) in d.routing_rules.iter().enumerate() {
            let rule_field = format!("{field}.routingRules[{j}]");
            let mut base_paths = Vec::new();
            for (k, b) in r.match_base_paths.iter().enumerate() {
                base_paths.push(base_path(&format!("{rule_field}.matchBasePaths[{k}]"), b)?);
            }
            base_paths.sort();
            base_paths.dedup();
            let mut headers: Vec<(String, String)> = r
                .match_headers
                .iter()
                .map(|h| (h.header.to_ascii_lowercase(), h.value_glob.clone()))
                .collect();
            headers.sort();
            rule_configs.push((
                hostname.clone(),
                r.priority,
                headers,
                base_paths,
                r.strip_base_path.unwrap_or(true),
            ));
        }
        domains.push((hostname, base, d.tls_secret_ref.is_some(), rule_configs));
    }

    if let Some(p) = api_ref_problem(apis, &namespace, api_name) {
        return Err(p);
    }
    let api_key: ObjKey = (namespace.clone(), api_name.clone());
    let api_id = format!("{namespace}/{api_name}");
    let websocket_api = apis
        .get(&api_key)
        .is_some_and(|a| a.object.spec.protocol == Some(ApiProtocol::Websocket));
    if websocket_api {
        check_websocket_stage(spec)?;
    }
    let Some(current) = deployments.current.get(&api_key) else {
        return Err(Problem::unresolved(
            reasons::API_NOT_FOUND,
            format!("spec.apiRef: Api {api_id} is not accepted"),
        ));
    };
    let execute_api_endpoint = apis
        .get(&api_key)
        .and_then(|a| a.compiled.as_ref().ok())
        .is_some_and(|c| c.execute_api_endpoint);
    let main_id = match (&spec.deployment_id, spec.auto_deploy) {
        (None, Some(true)) => current.1.id.clone(),
        (Some(id), _) => id.clone(),
        (None, _) => {
            return Err(Problem::invalid(
                reasons::VALIDATION_RULE_FAILED,
                "spec: set exactly one of deploymentId and autoDeploy: true",
            ));
        }
    };
    let main_definition =
        find_deployment("spec.deploymentId", &main_id, &api_id, current, inventory)?;
    let context = StageContext {
        cluster,
        namespace: &namespace,
        route_throttles: &route_throttles,
        cache: &cache,
    };
    let mut backends = BTreeMap::new();
    let main = materialize(
        &main_definition,
        &main_id,
        &spec.variables,
        &context,
        &mut backends,
    )?;
    super::preflight::check("spec.variables", &main)?;
    let canary = match canary_spec {
        None => None,
        Some(c) => {
            let definition = find_deployment(
                "spec.canary.deploymentId",
                &c.deployment_id,
                &api_id,
                current,
                inventory,
            )?;
            let mut variables = spec.variables.clone();
            variables.extend(c.stage_variable_overrides.clone());
            let deployment = materialize(
                &definition,
                &c.deployment_id,
                &variables,
                &context,
                &mut backends,
            )?;
            super::preflight::check("spec.canary.stageVariableOverrides", &deployment)?;
            let sticky = c
                .sticky
                .as_ref()
                .and_then(|s| match (&s.header, &s.cookie) {
                    (Some(h), _) => Some(Sticky::Header(h.to_ascii_lowercase())),
                    (None, Some(k)) => Some(Sticky::Cookie(k.clone())),
                    (None, None) => None,
                });
            Some(CanaryConfig {
                percent: c.percent_traffic,
                deployment,
                sticky,
                use_stage_cache: c.use_stage_cache.unwrap_or(false),
            })
        }
    };
    let id = format!("{namespace}/{api_name}/{name}");
    let mut mappings = BTreeSet::new();
    let mut urls = BTreeSet::new();
    if execute_api_endpoint {
        let host =
            format!("{api_name}.{namespace}.{}", options.execute_api_domain).to_ascii_lowercase();
        urls.insert(format!("http://{host}/{name}"));
        mappings.insert((host, name.clone()));
    }
    let mtls_bypass = (execute_api_endpoint
        && !spec.domains.is_empty()
        && spec.domains.iter().all(|d| d.client_ca_secret_ref.is_some()))
    .then(|| {
        format!(
            "every custom domain requires a client certificate (mutual TLS), but the default endpoint {} reaches this stage without one; set disableExecuteApiEndpoint: true on Api {api_id}",
            urls.iter().next().map_or("", String::as_str)
        )
    });
    let mut rules = Vec::new();
    for (hostname, base, tls, rule_configs) in domains {
        let scheme = if tls { "https" } else { "http" };
        urls.insert(format!("{scheme}://{hostname}/{base}"));
        mappings.insert((hostname, base));
        for (host, priority, headers, base_paths, strip_base_path) in rule_configs {
            rules.push((
                host,
                RoutingRuleConfig {
                    priority,
                    headers,
                    base_paths,
                    strip_base_path,
                    stage: id.clone(),
                },
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (host, rule) in &rules {
        if !seen.insert((host.clone(), rule.priority)) {
            return Err(invalid(format!(
                "spec.domains: host {host:?} has two routing rules with priority {}",
                rule.priority
            )));
        }
    }
    let access_log = spec.access_log.clone().unwrap_or_default();
    let config = StageConfig {
        id,
        api: api_id,
        api_name: api_name.clone(),
        name,
        main,
        canary,
        throttle: stage_throttle,
        access_log: AccessLog {
            enabled: access_log.enabled.unwrap_or(true),
            format: access_log.format,
        },
        cache: cache.stage.clone(),
    };
    Ok(Candidate {
        digest: causeway_snapshot::part_digest(&config),
        config,
        backends,
        mappings,
        rules,
        urls: urls.into_iter().collect(),
        certificates,
        redirects,
        client_cas,
        mtls_bypass,
    })
}

/// What a stage of a WebSocket Api may not use: the response cache (AWS has no cache on
/// WebSocket stages; there is no request/response exchange to cache), whether set on the
/// stage or on a route setting.
fn check_websocket_stage(spec: &causeway_crds::stage::StageSpec) -> Result<(), Problem> {
    if spec.cache.is_some() {
        return Err(Problem::invalid(
            reasons::UNSUPPORTED_FEATURE,
            "spec.cache: a WebSocket Api's stage has no response cache (messages are not requests with cacheable answers; AWS offers none either)",
        ));
    }
    for (i, settings) in spec.route_settings.iter().enumerate() {
        if settings.caching_enabled.is_some()
            || settings.cache_ttl_seconds.is_some()
            || !settings.cache_key_parameters.is_empty()
        {
            return Err(Problem::invalid(
                reasons::UNSUPPORTED_FEATURE,
                format!(
                    "spec.routeSettings[{i}]: caching settings on a WebSocket Api's stage are not built (it has no response cache)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Memo, run};
    use crate::{CompileOptions, DeploymentRecord, Inventory};
    use std::sync::Arc;

    const YAML: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Api
metadata: {name: a, namespace: default}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Route
metadata: {name: a-r, namespace: default}
spec: {apiRef: {name: a}, routeKey: GET /a, integration: {type: MOCK}}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: a-prod, namespace: default}
spec: {apiRef: {name: a}, stageName: prod, autoDeploy: true}
---
apiVersion: causeway.dev/v1alpha1
kind: Stage
metadata: {name: a-pinned, namespace: default}
spec: {apiRef: {name: a}, stageName: pinned, deploymentId: old}
"#;

    fn stage(memo: &Memo, name: &str) -> Arc<Result<super::Candidate, super::Problem>> {
        Arc::clone(&memo.stages[&("default".to_string(), name.to_string())].1)
    }

    #[test]
    fn a_new_history_record_recompiles_only_the_stages_that_pin_it() {
        let mut inventory = Inventory::default();
        inventory.add_yaml("t.yaml", YAML).expect("test YAML");
        let options = CompileOptions::default();
        let mut memo = Memo::default();
        let first = run(&inventory, &options, &mut memo);
        let (prod, pinned) = (stage(&memo, "a-prod"), stage(&memo, "a-pinned"));
        assert!(pinned.is_err(), "deployment `old` is not recorded yet");

        // A record of another id (what every edit of an auto-deployed Api adds): no Stage
        // pins it, so both are reused.
        let current = first.deployments[0].clone();
        inventory.deployments.push(DeploymentRecord {
            id: "other".into(),
            ..current.clone()
        });
        run(&inventory, &options, &mut memo);
        assert!(Arc::ptr_eq(&prod, &stage(&memo, "a-prod")));
        assert!(Arc::ptr_eq(&pinned, &stage(&memo, "a-pinned")));

        // The record the pinned Stage names appears: that Stage is compiled again, and serves.
        inventory.deployments.push(DeploymentRecord {
            id: "old".into(),
            ..current
        });
        let compiled = run(&inventory, &options, &mut memo);
        assert!(Arc::ptr_eq(&prod, &stage(&memo, "a-prod")));
        assert!(stage(&memo, "a-pinned").is_ok());
        let fresh = crate::compile(&inventory, &options);
        assert_eq!(compiled.snapshot, fresh.snapshot);
        assert_eq!(compiled.statuses, fresh.statuses);
    }
}
