//! One access-log line per request, written when the response body has ended (so that the
//! length and latency are real, also for streamed bodies). JSON by default; a stage may set a
//! `$context` template instead.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::config::AccessLogSink;
use crate::gateway_response::substitute_context;

/// Everything one line may say about a request.
#[derive(Debug, Default, Clone)]
pub(crate) struct AccessRecord {
    pub request_id: String,
    pub peer: Option<SocketAddr>,
    pub request_time: Option<SystemTime>,
    pub method: String,
    pub path: String,
    pub protocol: String,
    pub route_key: Option<String>,
    pub status: u16,
    pub response_length: Option<u64>,
    pub response_latency: Duration,
    pub integration_latency: Option<Duration>,
    pub integration_status: Option<u16>,
    pub api: Option<String>,
    /// The host the request named (lowercase, without port), once a stage was found.
    pub domain_name: Option<String>,
    pub stage: Option<String>,
    pub deployment_id: Option<String>,
    pub canary: bool,
    pub error_message: Option<String>,
    pub integration_error_message: Option<String>,
    /// `$context.identity.apiKeyId`: the id of the API key (never the key).
    pub api_key_id: Option<String>,
    /// The usage plan of that key (drives the plan's throttle, quota and usage counts).
    pub usage_plan_id: Option<String>,
    /// `$context.authorizer.principalId`.
    pub principal_id: Option<String>,
    /// `$context.identity.clientCert.*`: the verified client certificate (mutual TLS).
    pub client_cert: Option<std::sync::Arc<crate::tls::ClientCert>>,
}

/// Writes lines to the configured sink.
pub(crate) struct AccessLogger {
    sink: AccessLogSink,
}

impl AccessLogger {
    pub fn new(sink: AccessLogSink) -> Self {
        Self { sink }
    }

    /// Writes one line, in the stage's format if it has one.
    pub fn write(&self, record: &AccessRecord, format: Option<&str>) {
        if matches!(self.sink, AccessLogSink::Discard) {
            return;
        }
        let line = match format {
            Some(template) => substitute_context(template, &|name| record.lookup(name)),
            None => record.to_json(),
        };
        match &self.sink {
            AccessLogSink::Stdout => {
                let mut out = std::io::stdout().lock();
                // A full or closed stdout must not fail requests.
                let _ = writeln!(out, "{line}");
            }
            AccessLogSink::Memory(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
            AccessLogSink::Discard => {}
        }
    }
}

impl AccessRecord {
    fn request_time_text(&self) -> String {
        self.request_time.map(clf_time).unwrap_or_default()
    }

    fn to_json(&self) -> String {
        json!({
            "requestId": self.request_id,
            "ip": self.peer.map(|p| p.ip().to_string()),
            "requestTime": self.request_time_text(),
            "httpMethod": self.method,
            "path": self.path,
            "protocol": self.protocol,
            "routeKey": self.route_key,
            "status": self.status,
            "responseLength": self.response_length,
            "responseLatency": millis(self.response_latency),
            "integrationLatency": self.integration_latency.map(millis),
            "domainName": self.domain_name,
            "integrationStatus": self.integration_status,
            "api": self.api,
            "stage": self.stage,
            "deploymentId": self.deployment_id,
            "canary": self.canary,
            "errorMessage": self.error_message,
            "integrationErrorMessage": self.integration_error_message,
            "apiKeyId": self.api_key_id,
            "principalId": self.principal_id,
        })
        .to_string()
    }

    /// `$context` variables of a custom format (and of gateway responses); absent values
    /// print as `-`, unknown names stay as written.
    pub(crate) fn lookup(&self, name: &str) -> Option<String> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
        Some(match name {
            "requestId" => self.request_id.clone(),
            "identity.sourceIp" => opt(self.peer.map(|p| p.ip().to_string())),
            "requestTime" => self.request_time_text(),
            "requestTimeEpoch" => opt(self.request_time.and_then(|t| {
                t.duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_millis().to_string())
            })),
            "httpMethod" => self.method.clone(),
            "domainName" => opt(self.domain_name.clone()),
            "domainPrefix" => opt(self
                .domain_name
                .as_ref()
                .and_then(|d| d.split('.').next().map(str::to_string))),
            "path" => self.path.clone(),
            "protocol" => self.protocol.clone(),
            "routeKey" => opt(self.route_key.clone()),
            "status" => self.status.to_string(),
            "responseLength" => opt(self.response_length.map(|n| n.to_string())),
            "responseLatency" => millis(self.response_latency).to_string(),
            "integrationLatency" | "integration.latency" => {
                opt(self.integration_latency.map(|d| millis(d).to_string()))
            }
            "integrationStatus" | "integration.status" => {
                opt(self.integration_status.map(|s| s.to_string()))
            }
            "integration.error" | "integrationErrorMessage" => {
                opt(self.integration_error_message.clone())
            }
            "error.messageString" => crate::gateway_response::json_string(
                self.error_message.as_deref().unwrap_or_default(),
            ),
            "extendedRequestId" => self.request_id.clone(),
            "resourcePath" => opt(self
                .route_key
                .as_ref()
                .and_then(|k| k.split_once(' ').map(|(_, p)| p.to_string()))),
            "apiId" => opt(self.api.clone()),
            "stage" => opt(self.stage.clone()),
            "deploymentId" => opt(self.deployment_id.clone()),
            "error.message" => opt(self.error_message.clone()),
            "identity.apiKeyId" => opt(self.api_key_id.clone()),
            "authorizer.principalId" => opt(self.principal_id.clone()),
            _ if name.starts_with("identity.clientCert.") => opt(crate::tls::client_cert_context(
                self.client_cert.as_deref(),
                name,
            )),
            _ => return None,
        })
    }
}

/// Milliseconds with microsecond precision (API Gateway logs whole ms; fractions help at the
/// latencies a proxy adds).
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Common Log Format time in UTC: `09/Apr/2015:12:34:56 +0000` (as API Gateway logs it).
pub(crate) fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month_name = usize::try_from(month - 1)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .unwrap_or(&"Jan");
    format!(
        "{day:02}/{month_name}/{year}:{:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_time_is_in_common_log_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_428_582_896);
        assert_eq!(clf_time(t), "09/Apr/2015:12:34:56 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(clf_time(leap), "29/Feb/2000:00:00:00 +0000");
    }
}
