//! The client-controlled removal, in one place: what of the client's request head may not go
//! on to the backend. It runs once per request, on the headers exactly as the client sent them
//! and before the gateway adds any header of its own (forwarded identity headers, mapping
//! results, `X-Request-Id`, `X-Forwarded-*`), so that nothing a client sends can remove or
//! imitate a header the gateway sets (design §4).
//!
//! Removed, in this order:
//! - hop-by-hop headers, and every header the client's `Connection` names;
//! - every header whose name the gateway sets on some route of the Api ([`ReservedHeaders`]:
//!   authorizers' `forwardHeaders`, request mappings, integration headers), in any case and
//!   with `_` for `-` (`X_User_Id` imitates `x-user-id`);
//! - headers whose names contain `_`, unless the proxy allows them
//!   ([`HeadersWithUnderscores`]); even then one that imitates a header the gateway sets is
//!   removed.

use std::collections::HashSet;

use http::header::{self, HeaderMap, HeaderName};

use crate::config::HeadersWithUnderscores;
use crate::error::RequestError;

/// Headers the gateway sets on every forwarded request; their `_` spellings are always removed
/// (the `-` spellings are handled by `hygiene::set_forwarding_headers`, which keeps a trusted
/// hop's chain).
const GATEWAY_SET: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
];

/// The header names the gateway sets on some route of one Api; a client's copy is removed on
/// every route of that Api. Built with the tables, one per Api.
#[derive(Debug, Default)]
pub(crate) struct ReservedHeaders {
    /// Lowercase, with `_` written `-`.
    names: HashSet<String>,
}

/// A header name as a backend that does not tell `_` from `-`, nor cases, reads it.
fn folded(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

impl ReservedHeaders {
    /// Reserves `name` (any case, `_` or `-`).
    pub(crate) fn insert(&mut self, name: &str) {
        self.names.insert(folded(name));
    }

    /// Whether a client header called `name` would read as a reserved one.
    fn imitated_by(&self, name: &str) -> bool {
        !self.names.is_empty() && self.names.contains(&folded(name))
    }
}

/// The client asked to upgrade to WebSocket (the only upgrade forwarded), noted before the
/// hop-by-hop headers that carry it are removed; rides in the request's extensions to the HTTP
/// integration, which asks the backend for the same upgrade.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientUpgrade;

/// Headers that describe one hop and are never forwarded (RFC 9110 §7.6.1), besides those
/// named in `Connection`.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    // Only ever comes with an h2c upgrade, which is never forwarded.
    HeaderName::from_static("http2-settings"),
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including every header named in `Connection` and the
/// `Proxy-*` family. For a request it runs only inside [`strip_client_headers`]; for a
/// response, on the backend's head.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    // `Proxy-*` as a family (Proxy-Connection and friends), not only the two standard ones.
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Whether the request asks to upgrade to WebSocket: `Connection: upgrade` and `websocket`
/// among the `Upgrade` protocols (case-insensitive, any version suffix ignored).
pub(crate) fn asks_for_websocket(headers: &HeaderMap) -> bool {
    let tokens = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    tokens(header::CONNECTION)
        .iter()
        .any(|t| t.eq_ignore_ascii_case("upgrade"))
        && tokens(header::UPGRADE).iter().any(|p| {
            let name = p.split('/').next().unwrap_or_default().trim();
            name.eq_ignore_ascii_case("websocket")
        })
}

/// The client-controlled removal (see the module docs), on the client's headers as received.
/// Returns the upgrade the client asked for, if any; refuses the request when a header name
/// contains `_` and `underscores` is [`HeadersWithUnderscores::Reject`].
pub(crate) fn strip_client_headers(
    headers: &mut HeaderMap,
    reserved: &ReservedHeaders,
    underscores: HeadersWithUnderscores,
) -> Result<Option<ClientUpgrade>, RequestError> {
    if underscores == HeadersWithUnderscores::Reject
        && let Some(name) = headers.keys().find(|k| k.as_str().contains('_'))
    {
        return Err(RequestError::UnderscoreHeader(name.as_str().to_string()));
    }
    let upgrade = asks_for_websocket(headers).then_some(ClientUpgrade);
    remove_hop_by_hop(headers);
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let name = k.as_str();
            let underscore = name.contains('_');
            reserved.imitated_by(name)
                || (underscore && underscores == HeadersWithUnderscores::Drop)
                || (underscore && GATEWAY_SET.contains(&folded(name).as_str()))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    Ok(upgrade)
}

/// The host as the client named it and the backend sees it in `X-Forwarded-Host`: the
/// request's authority, else its `Host` header, port included, lowercase.
pub(crate) fn host_as_sent(uri: &http::Uri, headers: &HeaderMap) -> Option<String> {
    uri.authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .map(|h| h.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut n: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut h = headers(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("x-kept", "1"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["x-kept"]);
    }

    #[test]
    fn reserved_names_are_removed_in_any_case_and_with_underscores() {
        let mut reserved = ReservedHeaders::default();
        reserved.insert("X-User-Id");
        for policy in [HeadersWithUnderscores::Drop, HeadersWithUnderscores::Allow] {
            let mut h = headers(&[
                ("x-user-id", "mallory"),
                ("x_user_id", "mallory"),
                ("x_forwarded_for", "6.6.6.6"),
                ("x_other", "1"),
                ("x-kept", "1"),
            ]);
            strip_client_headers(&mut h, &reserved, policy).expect("not refused");
            let expected: &[&str] = match policy {
                HeadersWithUnderscores::Allow => &["x-kept", "x_other"],
                _ => &["x-kept"],
            };
            assert_eq!(names(&h), expected, "{policy:?}");
        }
        let mut h = headers(&[("x_other", "1")]);
        assert!(matches!(
            strip_client_headers(&mut h, &reserved, HeadersWithUnderscores::Reject),
            Err(RequestError::UnderscoreHeader(name)) if name == "x_other"
        ));
    }

    #[test]
    fn the_upgrade_is_noted_before_its_headers_go() {
        let mut h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        let upgrade = strip_client_headers(
            &mut h,
            &ReservedHeaders::default(),
            HeadersWithUnderscores::Drop,
        )
        .expect("not refused");
        assert!(upgrade.is_some());
        assert!(h.is_empty());
        let mut h2c = headers(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
        ]);
        let upgrade = strip_client_headers(
            &mut h2c,
            &ReservedHeaders::default(),
            HeadersWithUnderscores::Drop,
        )
        .expect("not refused");
        assert!(upgrade.is_none(), "only websocket upgrades are forwarded");
        assert!(h2c.is_empty());
    }
}
