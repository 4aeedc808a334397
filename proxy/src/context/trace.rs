//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>) as a fact of the request: the
//! `traceparent` a client sent, read once, and the one outgoing calls carry. Parsing and
//! formatting work on fixed-size arrays: reading a request's trace context allocates nothing.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`: vendor entries, carried along unchanged with a valid `traceparent`.
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// A span's place in a trace: what a `traceparent` says, plus the `tracestate` that travels
/// with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The `sampled` flag (01).
    pub sampled: bool,
    /// The `tracestate` that came with the trace (kept as received).
    pub state: Option<HeaderValue>,
    /// Whether this is a span of the gateway's own (tracing is on), which calls it makes carry
    /// as their parent; `false` for the client's context as received, which the gateway only
    /// reads (`$context.traceId`) and leaves in the client's headers untouched.
    pub gateway: bool,
}

impl TraceContext {
    /// The client's trace context: exactly one valid `traceparent` (several make it invalid,
    /// as the specification says), with its `tracestate` (several are joined by the client's
    /// HTTP stack; only the first is kept). `None` when absent or invalid.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let (trace_id, span_id, sampled) = parse_traceparent(value.as_bytes())?;
        Some(Self {
            trace_id,
            span_id,
            sampled,
            state: headers.get(TRACESTATE).filter(|v| !v.is_empty()).cloned(),
            gateway: false,
        })
    }

    /// The same trace with a new span id (a child of this span, of the gateway's own), same
    /// sampling and state.
    pub fn child(&self) -> Self {
        Self {
            span_id: new_span_id(),
            gateway: true,
            ..self.clone()
        }
    }

    /// The context a call the gateway makes carries: its own span's, never a client's as
    /// received (with tracing off the gateway adds no trace header).
    pub fn outgoing(trace: Option<&Self>) -> Option<&Self> {
        trace.filter(|t| t.gateway)
    }

    /// The `traceparent` value naming this span as the parent: `00-{trace}-{span}-{flags}`.
    pub fn traceparent(&self) -> HeaderValue {
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        hex_into(&self.trace_id, &mut out[3..35]);
        out[35] = b'-';
        hex_into(&self.span_id, &mut out[36..52]);
        out[52] = b'-';
        out[53] = b'0';
        out[54] = if self.sampled { b'1' } else { b'0' };
        HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }

    /// Sets `traceparent` (this span as the parent) and `tracestate` on an outgoing request,
    /// replacing whatever was there.
    pub fn inject(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT, self.traceparent());
        match &self.state {
            Some(state) => {
                headers.insert(TRACESTATE, state.clone());
            }
            None => {
                headers.remove(TRACESTATE);
            }
        }
    }

    /// `$context.traceId`: 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
}

/// A new random trace id (never all zero).
pub(crate) fn new_trace_id() -> [u8; 16] {
    loop {
        let id: [u8; 16] = rand::random();
        if id != [0; 16] {
            return id;
        }
    }
}

/// A new random span id (never all zero).
pub(crate) fn new_span_id() -> [u8; 8] {
    loop {
        let id: [u8; 8] = rand::random();
        if id != [0; 8] {
            return id;
        }
    }
}

/// `version-traceid-parentid-flags`. Version `ff` is invalid; version `00` is exactly 55
/// characters; a later version may append fields after a `-`. Hex must be lowercase; all-zero
/// ids are invalid.
fn parse_traceparent(v: &[u8]) -> Option<([u8; 16], [u8; 8], bool)> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let mut version = [0u8; 1];
    unhex_into(&v[0..2], &mut version)?;
    match version[0] {
        0xff => return None,
        0 if v.len() != 55 => return None,
        _ if v.len() > 55 && v[55] != b'-' => return None,
        _ => {}
    }
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    let mut flags = [0u8; 1];
    unhex_into(&v[3..35], &mut trace_id)?;
    unhex_into(&v[36..52], &mut span_id)?;
    unhex_into(&v[53..55], &mut flags)?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some((trace_id, span_id, flags[0] & 1 == 1))
}

fn unhex_into(text: &[u8], out: &mut [u8]) -> Option<()> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (slot, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *slot = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn a_valid_traceparent_is_read_and_written_back_unchanged() {
        let ctx = TraceContext::from_headers(&headers(&[
            ("traceparent", VALID),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]))
        .expect("valid");
        assert!(ctx.sampled);
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.traceparent(), VALID);
        assert_eq!(ctx.state.as_ref().expect("state"), "congo=t61rcWkgMzE");
        let child = ctx.child();
        assert_eq!(child.trace_id, ctx.trace_id);
        assert_ne!(child.span_id, ctx.span_id);
        assert!(
            !ctx.gateway && child.gateway,
            "only the gateway's spans are sent on"
        );
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let h = headers(&[("traceparent", bad)]);
            assert_eq!(TraceContext::from_headers(&h), None, "{bad:?}");
        }
        let twice = headers(&[("traceparent", VALID), ("traceparent", VALID)]);
        assert_eq!(TraceContext::from_headers(&twice), None, "two traceparents");
    }

    #[test]
    fn injecting_replaces_the_clients_headers_and_drops_a_tracestate_without_a_parent() {
        let mut outgoing = headers(&[("traceparent", "garbage"), ("tracestate", "orphan=1")]);
        let ours = TraceContext {
            trace_id: [1; 16],
            span_id: [2; 8],
            sampled: false,
            state: None,
            gateway: true,
        };
        ours.inject(&mut outgoing);
        assert_eq!(
            outgoing.get("traceparent").expect("set"),
            "00-01010101010101010101010101010101-0202020202020202-00"
        );
        assert!(outgoing.get("tracestate").is_none());
        assert_eq!(outgoing.get_all("traceparent").iter().count(), 1);
    }

    #[test]
    fn a_later_version_may_carry_more_fields_and_flags_other_than_sampled() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-ever";
        let ctx = TraceContext::from_headers(&headers(&[("traceparent", later)])).expect("ok");
        assert!(!ctx.sampled);
        assert_eq!(
            ctx.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
    }
}
