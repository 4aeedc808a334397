//! The read-only commands: `history`, `status`, `get-url`, `diff`.

use std::collections::BTreeMap;
use std::io::Write;

use causeway_controller::history::{DEFINITION_KEY, config_map_name};
use causeway_crds::{Api, Authorizer, Condition, Route, Stage};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::{
    OpsError, OpsResult, deployment_config_maps, find_stage, get_api, merged_history, served_id,
    stage_name, stages_of,
};

/// `causeway history`: the Api's deployments, newest first, with the stages serving each.
pub async fn history(client: &Client, ns: &str, api: &str, out: &mut impl Write) -> OpsResult {
    let the_api = get_api(client, ns, api).await?;
    let stages = stages_of(client, ns, api).await?;
    let cms = deployment_config_maps(client, ns, api).await?;
    let list = merged_history(&the_api, &cms);
    let latest = the_api
        .status
        .as_ref()
        .and_then(|s| s.latest_deployment_id.clone());
    writeln!(
        out,
        "Api {ns}/{api}: {} deployment(s), newest first; latest {}",
        list.len(),
        latest.as_deref().unwrap_or("none")
    )?;
    writeln!(
        out,
        "{:<12} {:<22} {:<24} DESCRIPTION",
        "ID", "CREATED", "SERVED BY"
    )?;
    for d in &list {
        let mut served = Vec::new();
        for s in &stages {
            if served_id(s).as_deref() == Some(d.id.as_str()) {
                served.push(stage_name(s));
            }
            if let Some(c) = &s.spec.canary
                && c.deployment_id == d.id
            {
                served.push(format!("{} (canary {}%)", stage_name(s), c.percent_traffic));
            }
        }
        writeln!(
            out,
            "{:<12} {:<22} {:<24} {}",
            d.id,
            // Records are stamped to the microsecond (for their order); seconds are enough here.
            d.created_at.as_deref().map_or_else(
                || "-".to_string(),
                |t| match t.split_once('.') {
                    Some((seconds, _)) => format!("{seconds}Z"),
                    None => t.to_string(),
                }
            ),
            if served.is_empty() {
                "-".to_string()
            } else {
                served.join(", ")
            },
            d.description.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

/// `causeway status`: the stages of one Api (or of every Api in the namespace) and its rejected
/// objects.
pub async fn status(
    client: &Client,
    ns: &str,
    api: Option<&str>,
    out: &mut impl Write,
) -> OpsResult {
    let apis: Vec<Api> = match api {
        Some(name) => vec![get_api(client, ns, name).await?],
        None => {
            kube::Api::<Api>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map_err(|source| OpsError::Kube {
                    what: format!("cannot list Apis in namespace {ns}"),
                    source,
                })?
                .items
        }
    };
    if apis.is_empty() {
        writeln!(out, "no Apis in namespace {ns}")?;
        return Ok(());
    }
    let routes = list_all::<Route>(client, ns, "Routes").await?;
    let authorizers = list_all::<Authorizer>(client, ns, "Authorizers").await?;
    let all_stages = list_all::<Stage>(client, ns, "Stages").await?;
    for the_api in &apis {
        let name = the_api.name_any();
        let latest = the_api
            .status
            .as_ref()
            .and_then(|s| s.latest_deployment_id.as_deref())
            .unwrap_or("none");
        writeln!(out, "Api {ns}/{name} (latest deployment {latest})")?;
        let api_conditions = the_api
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        write_conditions(out, "  ", api_conditions, &["Accepted", "Ready"])?;
        let mut stages: Vec<&Stage> = all_stages
            .iter()
            .filter(|s| s.spec.api_ref.name == name)
            .collect();
        stages.sort_by_key(|s| stage_name(s));
        if stages.is_empty() {
            writeln!(out, "  no stages")?;
        }
        for s in &stages {
            let st = s.status.clone().unwrap_or_default();
            let mode = if s.spec.auto_deploy == Some(true) {
                " (autoDeploy)"
            } else {
                ""
            };
            writeln!(
                out,
                "  stage {}: deployment {}{mode}",
                stage_name(s),
                served_id(s).as_deref().unwrap_or("none")
            )?;
            match &s.spec.canary {
                Some(c) => writeln!(
                    out,
                    "    canary: {}% to {}",
                    c.percent_traffic, c.deployment_id
                )?,
                None => writeln!(out, "    canary: none")?,
            }
            for url in &st.urls {
                writeln!(out, "    url: {url}")?;
            }
            match &st.proxies {
                Some(p) => writeln!(
                    out,
                    "    proxies: {}/{} applied the current snapshot",
                    p.applied, p.connected
                )?,
                None => writeln!(out, "    proxies: unknown")?,
            }
            write_conditions(out, "    ", &st.conditions, &["Ready", "Programmed"])?;
        }
        let mut rejected = Vec::new();
        for r in routes.iter().filter(|r| r.spec.api_ref.name == name) {
            let cs = r.status.as_ref().map(|s| s.conditions.as_slice());
            rejected.extend(rejections("Route", &r.name_any(), cs.unwrap_or_default()));
        }
        for a in authorizers.iter().filter(|a| a.spec.api_ref.name == name) {
            let cs = a.status.as_ref().map(|s| s.conditions.as_slice());
            rejected.extend(rejections(
                "Authorizer",
                &a.name_any(),
                cs.unwrap_or_default(),
            ));
        }
        for s in &stages {
            let cs = s.status.as_ref().map(|s| s.conditions.as_slice());
            rejected.extend(rejections("Stage", &s.name_any(), cs.unwrap_or_default()));
        }
        if rejected.is_empty() {
            writeln!(out, "  rejected objects: none")?;
        } else {
            writeln!(out, "  rejected objects:")?;
            for line in rejected {
                writeln!(out, "    {line}")?;
            }
        }
    }
    Ok(())
}

/// Lists every object of a kind in the namespace.
async fn list_all<K>(client: &Client, ns: &str, kinds: &str) -> OpsResult<Vec<K>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    kube::Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|source| OpsError::Kube {
            what: format!("cannot list {kinds} in namespace {ns}"),
            source,
        })
}

/// Prints the listed conditions: `True` briefly, anything else with reason and message.
fn write_conditions(
    out: &mut impl Write,
    indent: &str,
    conditions: &[Condition],
    types: &[&str],
) -> OpsResult {
    for t in types {
        match conditions.iter().find(|c| c.type_ == *t) {
            Some(c) if c.status == "True" => writeln!(out, "{indent}{t}: True")?,
            Some(c) => writeln!(
                out,
                "{indent}{t}: {} ({}: {})",
                c.status, c.reason, c.message
            )?,
            None => writeln!(out, "{indent}{t}: not reported yet")?,
        }
    }
    Ok(())
}

/// `Kind/name: Type=False reason: message` for each Accepted or ResolvedRefs condition that is
/// `False`.
fn rejections(kind: &str, name: &str, conditions: &[Condition]) -> Vec<String> {
    conditions
        .iter()
        .filter(|c| (c.type_ == "Accepted" || c.type_ == "ResolvedRefs") && c.status == "False")
        .map(|c| {
            format!(
                "{kind}/{name}: {}=False {}: {}",
                c.type_, c.reason, c.message
            )
        })
        .collect()
}

/// `causeway get-url`: the stage's URLs, one per line.
pub async fn get_url(
    client: &Client,
    ns: &str,
    api: &str,
    stage: &str,
    out: &mut impl Write,
) -> OpsResult {
    let the_stage = find_stage(client, ns, api, stage).await?;
    let urls = the_stage
        .status
        .as_ref()
        .map(|s| s.urls.clone())
        .unwrap_or_default();
    if urls.is_empty() {
        return Err(OpsError::Refused(format!(
            "Stage {ns}/{} has no URL yet (status.urls is empty: is the controller running, and is the stage accepted?)",
            the_stage.name_any()
        )));
    }
    for url in urls {
        writeln!(out, "{url}")?;
    }
    Ok(())
}

/// `causeway diff`: routes added, removed or changed from deployment `from` to deployment `to`.
pub async fn diff(
    client: &Client,
    ns: &str,
    api: &str,
    from: &str,
    to: &str,
    out: &mut impl Write,
) -> OpsResult {
    let old = routes_of(client, ns, api, from).await?;
    let new = routes_of(client, ns, api, to).await?;
    writeln!(out, "Api {ns}/{api}: routes from {from} to {to}")?;
    let mut changes = 0;
    for (key, route) in &new {
        match old.get(key) {
            None => {
                writeln!(out, "+ {key}")?;
                changes += 1;
            }
            Some(before) if before != route => {
                writeln!(out, "~ {key}")?;
                for field in changed_fields(before, route) {
                    writeln!(out, "    {field}")?;
                }
                changes += 1;
            }
            Some(_) => {}
        }
    }
    for key in old.keys().filter(|k| !new.contains_key(*k)) {
        writeln!(out, "- {key}")?;
        changes += 1;
    }
    if changes == 0 {
        writeln!(out, "no route changed")?;
    }
    Ok(())
}

/// The routes of a recorded deployment, by route key.
async fn routes_of(
    client: &Client,
    ns: &str,
    api: &str,
    id: &str,
) -> OpsResult<BTreeMap<String, Value>> {
    let name = config_map_name(api, id);
    let cm = kube::Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(&name)
        .await
        .map_err(|source| OpsError::Kube {
            what: format!("cannot read ConfigMap {ns}/{name}"),
            source,
        })?
        .ok_or_else(|| {
            OpsError::Refused(format!(
                "deployment {id} of Api {ns}/{api} is not recorded (no ConfigMap {name}; see `causeway history {api}`)"
            ))
        })?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(DEFINITION_KEY))
        .ok_or_else(|| {
            OpsError::Refused(format!("ConfigMap {ns}/{name} has no {DEFINITION_KEY}"))
        })?;
    let definition: Value = serde_json::from_str(text).map_err(|e| {
        OpsError::Refused(format!(
            "ConfigMap {ns}/{name}: {DEFINITION_KEY} is not JSON: {e}"
        ))
    })?;
    let mut routes = BTreeMap::new();
    if let Some(list) = definition.get("routes").and_then(Value::as_array) {
        for r in list {
            let key = r
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            routes.insert(key, r.clone());
        }
    }
    Ok(routes)
}

/// The top-level fields of a route that differ, as `field: old -> new`.
fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or("(none)".to_string(), Value::to_string);
            format!("{k}: {} -> {}", show(b.get(k)), show(a.get(k)))
        })
        .collect()
}
