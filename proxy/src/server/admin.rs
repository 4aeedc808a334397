//! The admin listener: `/healthz`, `/readyz` (ready once a snapshot is applied), `/metrics`
//! (OpenMetrics text) and `/config_dump` (the applied snapshot, redacted).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use crate::body::{ProxyBody, full};
use crate::state::Shared;

/// Field-name fragments (lowercase, without `_` or `-`) whose values `/config_dump` blanks.
const SECRET_FIELD_MARKERS: [&str; 4] = ["privatekey", "keypem", "secret", "password"];
/// What a redacted value becomes.
const REDACTED: &str = "<redacted>";

/// Answers one admin request.
pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<ProxyBody> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match shared.tables.load().as_ref() {
            Some(runtime) => text(
                StatusCode::OK,
                &format!("ready version={}\n", runtime.snapshot.version),
            ),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "no snapshot applied yet\n"),
        },
        "/metrics" => {
            let mut r = Response::new(full(shared.metrics.encode()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/config_dump" => {
            let runtime = shared.tables.load_full();
            let mut dump = match runtime.as_deref() {
                Some(runtime) => {
                    serde_json::to_value(runtime.snapshot.as_ref()).unwrap_or(Value::Null)
                }
                None => Value::Null,
            };
            redact(&mut dump);
            let body = serde_json::to_string_pretty(&dump).unwrap_or_default();
            let mut r = Response::new(full(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        "/usage" => usage(&shared, request.uri().query().unwrap_or("")).await,
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<ProxyBody> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Blanks every value whose field name looks like it holds a secret, at any depth.
pub(crate) fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let normalized: String = key
                    .chars()
                    .filter(|c| *c != '_' && *c != '-')
                    .collect::<String>()
                    .to_ascii_lowercase();
                if SECRET_FIELD_MARKERS.iter().any(|m| normalized.contains(m)) {
                    *v = Value::String(REDACTED.to_string());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `/usage?plan=NS/NAME[&key=ID][&from=YYYY-MM-DD][&to=YYYY-MM-DD]`: admitted and throttled
/// requests per key per day (API Gateway's GetUsage). Fleet-wide from Redis when configured,
/// else this replica's counts. Dates default to today (UTC).
async fn usage(shared: &Shared, query: &str) -> Response<ProxyBody> {
    use crate::limits::usage::parse_date;
    let params: std::collections::HashMap<String, String> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned();
            (k.to_string(), v)
        })
        .collect();
    let Some(plan) = params.get("plan") else {
        return text(
            StatusCode::BAD_REQUEST,
            "usage needs ?plan=NAMESPACE/NAME\n",
        );
    };
    let today = shared.config.clock.unix_day();
    let day = |name: &str| match params.get(name) {
        None => Ok(today),
        Some(text) => parse_date(text).ok_or(format!("{name} must be YYYY-MM-DD, not {text:?}\n")),
    };
    let (from, to) = match (day("from"), day("to")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => return text(StatusCode::BAD_REQUEST, &e),
    };
    let key = params.get("key").map(String::as_str);
    let report = match shared.config.redis_url.as_deref() {
        None => Ok(shared.usage.local(plan, key, from, to)),
        Some(url) => match redis::Client::open(url) {
            Ok(client) => match client.get_connection_manager().await {
                Ok(mut conn) => {
                    crate::limits::usage::read_shared(&mut conn, plan, key, from, to).await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
    };
    match report {
        Ok(report) => {
            let body = serde_json::json!({
                "plan": plan,
                "startDate": crate::limits::usage::date(from),
                "endDate": crate::limits::usage::date(to),
                "shared": shared.config.redis_url.is_some(),
                "items": report.items,
            });
            let mut r = Response::new(full(body.to_string()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("usage store unavailable: {e}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_named_like_secrets_are_blanked_at_any_depth() {
        let mut v = serde_json::json!({
            "hosts": [{"tls": {"keyPem": "-----BEGIN", "certPem": "c"}}],
            "private_key": "k",
            "clientSecret": {"nested": 1},
            "version": "v1"
        });
        redact(&mut v);
        assert_eq!(v["hosts"][0]["tls"]["keyPem"], REDACTED);
        assert_eq!(v["hosts"][0]["tls"]["certPem"], "c");
        assert_eq!(v["private_key"], REDACTED);
        assert_eq!(v["clientSecret"], REDACTED);
        assert_eq!(v["version"], "v1");
    }
}
