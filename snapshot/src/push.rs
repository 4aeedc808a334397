//! The wire format of the snapshot push channel (controller → proxy), shared by both ends.
//!
//! The proxy opens `POST /v1/snapshots/stream` over HTTP/2 with mutual TLS, sending a
//! [`StreamRequest`]. The response body is a sequence of frames, each a 4-byte big-endian
//! length followed by that many bytes of JSON [`Frame`]. The proxy acknowledges every version
//! with `POST /v1/acks` carrying an [`Ack`], and reports its usage of the day with
//! `POST /v1/usage` carrying a [`UsageReport`] about once a minute.
//!
//! Endpoint churn does not re-send routes: when a new snapshot differs from the one the proxy
//! last received only in [`Snapshot::backends`], the frame is [`Frame::Backends`], and the
//! proxy rebuilds the full snapshot from its base and checks the version (content hash).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Backend, Snapshot};

/// Path of the streaming endpoint.
pub const STREAM_PATH: &str = "/v1/snapshots/stream";
/// Path of the acknowledgement endpoint.
pub const ACK_PATH: &str = "/v1/acks";
/// Path of the usage report endpoint (proxy → controller, about once a minute).
pub const USAGE_PATH: &str = "/v1/usage";
/// Most keys one plan lists in a [`UsageReport`] (the busiest; the plan totals count every key).
pub const MAX_REPORT_KEYS: usize = 1000;
/// Largest frame either side accepts (64 MiB).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// What a proxy says when it opens the stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StreamRequest {
    /// Stable identity of the proxy (pod name, or a generated id).
    pub proxy_id: String,
    /// Version the proxy serves now, if any (it is not re-sent when still current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One frame of the stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Frame {
    /// A whole snapshot.
    Snapshot {
        /// The snapshot (sealed).
        snapshot: Box<Snapshot>,
    },
    /// Only the backends changed since `base_version`.
    Backends {
        /// The version the proxy must hold to apply this frame.
        base_version: String,
        /// The version of the result (content hash of the rebuilt snapshot).
        version: String,
        /// The new backends section.
        backends: BTreeMap<String, Backend>,
    },
}

/// A proxy's answer to one version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// Who acknowledges.
    pub proxy_id: String,
    /// The version acknowledged.
    pub version: String,
    /// `true` when the snapshot is applied and serving.
    pub applied: bool,
    /// Why the snapshot was rejected (the old one keeps serving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Parts the proxy left out of an applied snapshot, each with why; the rest serves.
    /// Absent from proxies that predate it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<DroppedPart>,
}

/// A part of a snapshot that a proxy could not build and left out, serving the rest: one
/// object's mistake never freezes every tenant on an old snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DroppedPart {
    /// What kind of part: `stage`, `backend`, `host`, `authorizer`, `key` or `certificate`.
    pub kind: String,
    /// Its id (`namespace/api/stage`, a backend id, a hostname, an authorizer id,
    /// `plan/key`, a certificate's host names joined with `,`).
    pub id: String,
    /// Why it could not be built.
    pub reason: String,
}

/// What one proxy counted today (UTC), sent with `POST /v1/usage` about once a minute. The
/// controller adds the reports of every proxy into `UsagePlan.status`. Bounded: one entry per
/// plan, at most [`MAX_REPORT_KEYS`] keys each.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    /// Who reports.
    pub proxy_id: String,
    /// The UTC day counted (days since 1970-01-01).
    pub day: u64,
    /// Whether quotas are counted in a shared store (Redis) rather than per replica.
    pub shared: bool,
    /// With a shared store: whether it answered since the last report (a failed operation or a
    /// failed probe makes this `false`).
    pub store_available: bool,
    /// Usage per plan (plans with no request today are left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<PlanUsage>,
}

/// One plan's usage in a [`UsageReport`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlanUsage {
    /// Plan id (`namespace/name`).
    pub plan: String,
    /// Requests admitted, every key.
    pub admitted: u64,
    /// Requests refused by a throttle or the quota, every key.
    pub throttled: u64,
    /// Per key, the busiest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyCount>,
}

/// One key's counts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeyCount {
    /// Key id.
    pub id: String,
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused.
    pub throttled: u64,
}

/// Encodes a frame: 4-byte big-endian length, then JSON.
pub fn encode_frame(frame: &Frame) -> Vec<u8> {
    let json = serde_json::to_vec(frame).unwrap_or_default();
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(json.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// Splits complete frames off the front of `buf`; returns them and leaves any partial frame.
pub fn decode_frames(buf: &mut Vec<u8>) -> Result<Vec<Frame>, FrameError> {
    let mut frames = Vec::new();
    loop {
        if buf.len() < 4 {
            return Ok(frames);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge(len));
        }
        if buf.len() < 4 + len {
            return Ok(frames);
        }
        let frame = serde_json::from_slice(&buf[4..4 + len])
            .map_err(|e| FrameError::Invalid(e.to_string()))?;
        buf.drain(..4 + len);
        frames.push(frame);
    }
}

/// A frame that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Longer than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Not a frame.
    #[error("invalid frame: {0}")]
    Invalid(String),
}

impl Snapshot {
    /// The snapshot `self` becomes with `backends` replaced, sealed again.
    pub fn with_backends(&self, backends: BTreeMap<String, Backend>) -> Snapshot {
        Snapshot {
            backends,
            ..self.clone()
        }
        .seal()
    }

    /// Whether `other` differs from `self` at most in its backends. Every other field is
    /// compared: the destructuring names them all, so a new field cannot be forgotten (a change
    /// to authorizers, usage plans or certificates sent as a backends-only frame would never
    /// apply: the proxy's rebuilt version would not match).
    pub fn same_except_backends(&self, other: &Snapshot) -> bool {
        let Snapshot {
            version: _,
            apis,
            stages,
            hosts,
            backends: _,
            usage_plans,
            authorizers,
            certificates,
        } = self;
        *apis == other.apis
            && *stages == other.stages
            && *hosts == other.hosts
            && *usage_plans == other.usage_plans
            && *authorizers == other.authorizers
            && *certificates == other.certificates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_of_backends_alone_counts_as_same_except_backends() {
        let base = Snapshot::default().seal();
        let mut backends = BTreeMap::new();
        backends.insert(
            "b".to_string(),
            Backend {
                scheme: crate::UpstreamScheme::Http,
                authority: "b".into(),
                endpoints: vec!["10.0.0.1:80".into()],
                load_balancing: crate::LoadBalancing::default(),
                http2: false,
                tls: None,
            },
        );
        assert!(base.same_except_backends(&base.with_backends(backends)));
        let mut certificates = base.clone();
        certificates
            .certificates
            .push(crate::Certificate::default());
        assert!(!base.same_except_backends(&certificates.seal()));
    }

    #[test]
    fn frames_survive_a_split_in_any_place() {
        let frame = Frame::Backends {
            base_version: "a".into(),
            version: "b".into(),
            backends: BTreeMap::new(),
        };
        let bytes = [encode_frame(&frame), encode_frame(&frame)].concat();
        for split in 0..bytes.len() {
            let mut buf = bytes[..split].to_vec();
            let mut got = decode_frames(&mut buf).expect("decode");
            buf.extend_from_slice(&bytes[split..]);
            got.extend(decode_frames(&mut buf).expect("decode"));
            assert_eq!(got, vec![frame.clone(), frame.clone()]);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn a_frame_larger_than_the_limit_is_refused() {
        let mut buf = u32::MAX.to_be_bytes().to_vec();
        assert!(matches!(
            decode_frames(&mut buf),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn an_ack_without_dropped_parts_reads_and_writes_as_before() {
        let old = r#"{"proxyId":"p1","version":"v1","applied":true}"#;
        let ack: Ack = serde_json::from_str(old).expect("an old ack still parses");
        assert!(ack.dropped.is_empty());
        assert_eq!(serde_json::to_string(&ack).expect("json"), old);
        let partial = Ack {
            dropped: vec![DroppedPart {
                kind: "stage".into(),
                id: "ns/api/bad".into(),
                reason: "header value is not valid".into(),
            }],
            ..ack
        };
        let text = serde_json::to_string(&partial).expect("json");
        assert!(
            text.contains(r#""dropped":[{"kind":"stage","id":"ns/api/bad""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Ack>(&text).expect("parses"), partial);
    }
}
