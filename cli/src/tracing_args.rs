//! OpenTelemetry flags of every command that runs a proxy (`standalone` and `proxy`). The
//! standard `OTEL_*` environment variables are honoured; tracing is off unless an endpoint is
//! given.

use causeway_proxy::{self as proxy, TracingConfig};
use clap::Args;

/// OTLP over HTTP/1.1 with protobuf bodies (the default, as in the OpenTelemetry SDKs).
const HTTP_PROTOBUF: &str = "http/protobuf";
/// OTLP over gRPC.
const GRPC: &str = "grpc";

/// Where and how much the proxy traces.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Tracing (OpenTelemetry)")]
pub struct TracingArgs {
    /// Base URL of the collector: OTLP/HTTP (`http://otel-collector:4318`; spans go to
    /// `{base}/v1/traces`) or OTLP/gRPC (`http://otel-collector:4317`). Unset (and no traces
    /// endpoint): tracing is off and a client's `traceparent` passes through unchanged.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Full traces URL (OTLP/HTTP; with gRPC only its scheme and authority count); wins over
    /// --otlp-endpoint.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_traces_endpoint: Option<String>,
    /// OTLP protocol: `http/protobuf` or `grpc` (HTTP/2 without TLS); `http/json` is not
    /// supported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", default_value = HTTP_PROTOBUF)]
    pub otlp_protocol: String,
    /// Share (0 to 1) of new traces that are recorded and exported. Sampling is parent-based:
    /// a request with a valid `traceparent` follows its `sampled` flag.
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", default_value_t = proxy::DEFAULT_TRACE_SAMPLE_RATIO)]
    pub trace_sample_ratio: f64,
    /// `service.name` of the exported spans.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = proxy::DEFAULT_TRACE_SERVICE_NAME)]
    pub otel_service_name: String,
    /// Finished spans waiting for export; when full, spans are dropped (counted in
    /// `causeway_proxy_trace_spans_dropped_total{reason="queue_full"}`), never waited for.
    #[arg(long, env = "CAUSEWAY_TRACE_QUEUE_SPANS", default_value_t = proxy::DEFAULT_TRACE_QUEUE_SPANS)]
    pub trace_queue_spans: usize,
}

impl TracingArgs {
    /// The tracing settings these flags describe.
    pub fn config(&self) -> TracingConfig {
        let protocol = if self.otlp_protocol == GRPC {
            proxy::OtlpProtocol::Grpc
        } else {
            proxy::OtlpProtocol::HttpProtobuf
        };
        // OTLP/HTTP appends the signal's path to the base URL; gRPC uses it as it is.
        // An empty variable (a chart or shell that sets it to "") counts as unset.
        let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let endpoint = set(&self.otlp_traces_endpoint).or_else(|| {
            set(&self.otlp_endpoint).map(|base| match protocol {
                proxy::OtlpProtocol::Grpc => base.to_string(),
                proxy::OtlpProtocol::HttpProtobuf => {
                    format!("{}/v1/traces", base.trim_end_matches('/'))
                }
            })
        });
        TracingConfig {
            otlp_traces_endpoint: endpoint,
            protocol,
            sample_ratio: self.trace_sample_ratio,
            service_name: self.otel_service_name.clone(),
            queue_spans: self.trace_queue_spans.max(1),
            ..TracingConfig::default()
        }
    }

    /// Refuses what the proxy cannot do (another protocol, an https or malformed endpoint, a
    /// ratio outside 0..=1).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.otlp_protocol != HTTP_PROTOBUF && self.otlp_protocol != GRPC {
            anyhow::bail!(
                "OTLP protocol {:?} is not supported; use {HTTP_PROTOBUF} or {GRPC}",
                self.otlp_protocol
            );
        }
        self.config().validate().map_err(anyhow::Error::msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        tracing: TracingArgs,
    }

    fn parse(args: &[&str]) -> TracingArgs {
        let mut all = vec!["causeway"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parses").tracing
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_a_traces_endpoint_wins() {
        let base = parse(&["--otlp-endpoint", "http://collector:4318/"]);
        assert_eq!(
            base.config().otlp_traces_endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let full = parse(&[
            "--otlp-endpoint",
            "http://collector:4318",
            "--otlp-traces-endpoint",
            "http://other:4318/custom",
        ]);
        assert_eq!(
            full.config().otlp_traces_endpoint.as_deref(),
            Some("http://other:4318/custom")
        );
        assert!(parse(&[]).config().otlp_traces_endpoint.is_none());
        assert!(
            parse(&["--otlp-endpoint", ""])
                .config()
                .otlp_traces_endpoint
                .is_none(),
            "an empty endpoint is no endpoint"
        );
        let grpc = parse(&[
            "--otlp-endpoint",
            "http://collector:4317",
            "--otlp-protocol",
            "grpc",
        ]);
        let config = grpc.config();
        assert_eq!(
            config.otlp_traces_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(config.protocol, proxy::OtlpProtocol::Grpc);
    }

    #[test]
    fn grpc_https_and_ratios_outside_zero_to_one_are_refused() {
        assert!(parse(&["--otlp-endpoint", "http://c:4318"]).check().is_ok());
        assert!(
            parse(&["--otlp-endpoint", "https://c:4318"])
                .check()
                .is_err()
        );
        assert!(parse(&["--otlp-protocol", "http/json"]).check().is_err());
        assert!(parse(&["--trace-sample-ratio", "1.5"]).check().is_err());
    }
}
