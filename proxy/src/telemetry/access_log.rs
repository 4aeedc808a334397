//! One access-log line per request, written when the response body has ended (so that the
//! length and latency are real, also for streamed bodies). JSON by default; a stage may set a
//! `$context` template instead, rendered by the request's context.

use std::io::Write;

use serde_json::json;

use crate::config::AccessLogSink;
use crate::context::{RequestContext, millis};

/// Writes lines to the configured sink.
pub(crate) struct AccessLogger {
    sink: AccessLogSink,
}

impl AccessLogger {
    pub fn new(sink: AccessLogSink) -> Self {
        Self { sink }
    }

    /// Writes one line, in the stage's format if it has one (absent values print as `-`,
    /// unknown names stay as written).
    pub fn write(&self, ctx: &RequestContext, format: Option<&str>) {
        if matches!(self.sink, AccessLogSink::Discard) {
            return;
        }
        let line = match format {
            Some(template) => ctx.render(template, "-"),
            None => to_json(ctx),
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

/// The default line.
fn to_json(ctx: &RequestContext) -> String {
    let mut line = json!({
        "requestId": ctx.request_id,
        "ip": ctx.source_ip.to_string(),
        "requestTime": crate::context::clf_time(ctx.request_time),
        "httpMethod": ctx.method,
        "path": ctx.path,
        "protocol": ctx.protocol,
        "routeKey": ctx.route_key,
        "status": ctx.status,
        "responseLength": ctx.response_length,
        "responseLatency": millis(ctx.response_latency),
        "integrationLatency": ctx.integration_latency.map(millis),
        "domainName": ctx.domain_name,
        "integrationStatus": ctx.integration_status,
        "api": ctx.api_name,
        "stage": ctx.stage,
        "deploymentId": ctx.deployment_id,
        "canary": ctx.canary,
        "errorMessage": ctx.error.as_ref().map(|e| e.message.as_str()),
        "integrationErrorMessage": ctx.integration_error,
        "apiKeyId": ctx.principal.api_key_id,
        "principalId": ctx.principal.principal_id,
        "traceId": ctx.trace.as_ref().map(crate::context::TraceContext::trace_id_hex),
    });
    // WebSocket events (CONNECT, MESSAGE, DISCONNECT) say which connection they are about.
    if let (Some(ws), Some(fields)) = (&ctx.websocket, line.as_object_mut()) {
        fields.insert("connectionId".into(), json!(ws.connection_id));
        fields.insert("eventType".into(), json!(ws.event_type));
        fields.insert("messageId".into(), json!(ws.message_id));
    }
    line.to_string()
}
