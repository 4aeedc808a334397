//! What operators see: Prometheus [`metrics`], the [`access_log`], and OpenTelemetry traces
//! ([`trace`], exported by [`otlp`]).

pub(crate) mod access_log;
pub(crate) mod metrics;
pub(crate) mod otlp;
pub(crate) mod trace;
