//! Request hygiene: the one path normalization, `Host` checks and the forwarding headers.
//!
//! Path policy (ARCHITECTURE.md, "Path normalization"): the normalized path is written back
//! into the request before anything looks at it, so host/base-path matching, route matching,
//! authorization and the forwarded request all see the same bytes.
//!
//! | input | decision |
//! |---|---|
//! | `%41`, `%7e` … (unreserved characters) | decoded (`A`, `~`) |
//! | other `%xx` | kept, hex upper-cased (`%2a` → `%2A`) |
//! | `//` | collapsed to `/` |
//! | `.` segment (also `%2e`) | removed |
//! | `..` segment (also `%2e%2e`, `.%2e`) | refused, 400 |
//! | `%2F` (encoded `/`), `\` or `%5C` | refused, 400 |
//! | `;` or `%3B` (path parameters) | refused, 400 |
//! | `%00`, bad `%` escapes, not starting with `/` | refused, 400 |

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::error::{HostRejection, PathRejection};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri};

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalizes a request path (without query) by the policy above. Borrowed when the path is
/// already normal, which is the common case and costs one scan.
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathRejection> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathRejection::NotAbsolute);
    }
    // Fast path: no escapes, no dot segments, no `//`, nothing refused.
    let mut needs_work = false;
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' => needs_work = true,
            b'\\' => return Err(PathRejection::Backslash),
            b';' => return Err(PathRejection::Semicolon),
            b'/' if prev == b'/' => needs_work = true,
            b'.' if prev == b'/' => {
                let next = bytes.get(i + 1).copied();
                if matches!(next, None | Some(b'/') | Some(b'.')) {
                    needs_work = true;
                }
            }
            _ => {}
        }
        prev = b;
    }
    if !needs_work {
        return Ok(Cow::Borrowed(raw));
    }
    // Decode unreserved escapes; refuse the dangerous ones.
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            decoded.push(char::from(b));
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex_value),
            bytes.get(i + 2).copied().and_then(hex_value),
        ) else {
            return Err(PathRejection::BadEscape);
        };
        let value = hi * 16 + lo;
        match value {
            0 => return Err(PathRejection::BadEscape),
            b'/' => return Err(PathRejection::EncodedSlash),
            b'\\' => return Err(PathRejection::Backslash),
            b';' => return Err(PathRejection::Semicolon),
            v if is_unreserved(v) => decoded.push(char::from(v)),
            v => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                decoded.push('%');
                decoded.push(char::from(HEX[usize::from(v >> 4)]));
                decoded.push(char::from(HEX[usize::from(v & 0xf)]));
            }
        }
        i += 3;
    }
    // Segments: drop empty (`//`) and `.`, refuse `..`; keep a trailing slash.
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.");
    let mut out = String::with_capacity(decoded.len());
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(PathRejection::DotDot),
            s => {
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Rewrites the request's URI to carry `path` (keeping scheme, authority and query).
pub(crate) fn set_path<B>(request: &mut Request<B>, path: &str) -> Result<(), http::Error> {
    let mut parts = request.uri().clone().into_parts();
    let pq = match request.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    parts.path_and_query = Some(pq.parse()?);
    *request.uri_mut() = Uri::from_parts(parts)?;
    Ok(())
}

/// Refuses several `Host` headers, a `Host` that is not an authority, and a `Host` whose host
/// name disagrees with the URI's authority (RFC 9113 §8.3.1 calls that malformed).
pub fn check_host<B>(request: &Request<B>) -> Result<(), HostRejection> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let Some(first) = hosts.next() else {
        return Ok(());
    };
    let count = 1 + hosts.count();
    if count > 1 {
        return Err(HostRejection::Duplicate(count));
    }
    let host = first
        .to_str()
        .ok()
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .ok_or_else(|| HostRejection::Invalid(String::from_utf8_lossy(first.as_bytes()).into()))?;
    // Routing ignores ports, so only the host names must agree.
    if let Some(authority) = request.uri().authority()
        && !authority.host().eq_ignore_ascii_case(host.host())
    {
        return Err(HostRejection::Conflict {
            host: host.as_str().to_string(),
            authority: authority.as_str().to_string(),
        });
    }
    Ok(())
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Sets the forwarding headers. From a trusted hop, the client's chain is kept and the peer
/// appended; from anyone else, every client-sent `Forwarded`, `X-Forwarded-*` and `X-Real-Ip`
/// is dropped and replaced by what this proxy saw.
pub(crate) fn set_forwarding_headers(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    trusted: bool,
    proto: &'static str,
    host: Option<&str>,
) {
    let ip = peer.ip().to_string();
    if trusted {
        let prior: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let value = if prior.is_empty() {
            ip
        } else {
            format!("{}, {ip}", prior.join(", "))
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(X_FORWARDED_FOR, value);
        }
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
        if !headers.contains_key(&X_FORWARDED_HOST)
            && let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok())
        {
            headers.insert(X_FORWARDED_HOST, v);
        }
        return;
    }
    headers.remove(header::FORWARDED);
    headers.remove(X_REAL_IP);
    let stale: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-forwarded-"))
        .cloned()
        .collect();
    for name in stale {
        headers.remove(name);
    }
    if let Ok(v) = HeaderValue::from_str(&ip) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(X_FORWARDED_HOST, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_policy_normalizes_or_refuses_each_confusing_form() {
        use PathRejection as R;
        let cases: [(&str, Result<&str, R>); 22] = [
            ("/pets/1", Ok("/pets/1")),
            ("/", Ok("/")),
            ("/a/./b", Ok("/a/b")),
            ("//a", Ok("/a")),
            ("/a//b/", Ok("/a/b/")),
            ("/a/.", Ok("/a/")),
            ("/%61%7E", Ok("/a~")),
            ("/a%2ab", Ok("/a%2Ab")),
            ("/a%20b", Ok("/a%20b")),
            ("/a/%2e/b", Ok("/a/b")),
            ("/.well-known/x", Ok("/.well-known/x")),
            ("/a/..b", Ok("/a/..b")),
            ("/admin/../x", Err(R::DotDot)),
            ("/a/%2e%2e/x", Err(R::DotDot)),
            ("/a/.%2E", Err(R::DotDot)),
            ("/a%2Fb", Err(R::EncodedSlash)),
            ("/a%2fb", Err(R::EncodedSlash)),
            ("/a\\b", Err(R::Backslash)),
            ("/a%5cb", Err(R::Backslash)),
            ("/a;jsessionid=1", Err(R::Semicolon)),
            ("/a%3Bb", Err(R::Semicolon)),
            ("/a%zz", Err(R::BadEscape)),
        ];
        for (raw, expected) in cases {
            let got = normalize_path(raw).map(|c| c.into_owned());
            assert_eq!(got, expected.map(str::to_string), "{raw}");
        }
        assert_eq!(normalize_path("*"), Err(R::NotAbsolute));
        assert_eq!(normalize_path("/a%00"), Err(R::BadEscape));
    }

    #[test]
    fn an_already_normal_path_is_borrowed_not_copied() {
        assert!(matches!(
            normalize_path("/pets/7/toys"),
            Ok(Cow::Borrowed(_))
        ));
    }
}
