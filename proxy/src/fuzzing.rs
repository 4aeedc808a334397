//! Entry points for the fuzz targets in `fuzz/` (and their corpus replay test): thin wrappers
//! over internal functions that take raw bytes and must never panic. Not an API.

use std::time::{Duration, SystemTime};

use causeway_snapshot::{PayloadFormat, Sigv4Settings};

/// Normalizes `raw` as a request path. Invariants the targets check: normalizing is
/// idempotent, and a normalized path normalizes to itself unchanged.
pub fn normalize_path(raw: &str) -> Result<String, crate::PathRejection> {
    crate::hygiene::normalize_path(raw).map(|p| p.into_owned())
}

/// Checks a request head built from raw parts (method, target, `Host` values): `None` when
/// the `http` crate itself refuses the parts, else whether the gateway's head checks pass.
pub fn request_head(method: &[u8], target: &str, hosts: &[&[u8]]) -> Option<bool> {
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(method).ok()?)
        .uri(target.parse::<http::Uri>().ok()?);
    for host in hosts {
        builder = builder.header(
            http::header::HOST,
            http::HeaderValue::from_bytes(host).ok()?,
        );
    }
    let request = builder.body(()).ok()?;
    let host_ok = crate::hygiene::check_host(&request).is_ok();
    let path_ok = crate::hygiene::normalize_path(request.uri().path()).is_ok();
    Some(host_ok && path_ok)
}

/// Maps a Lambda function's raw answer (payload 1.0 when `v1`, else 2.0) to a response.
pub fn lambda_answer(bytes: &[u8], v1: bool) -> Result<u16, String> {
    let format = if v1 {
        PayloadFormat::V1
    } else {
        PayloadFormat::V2
    };
    crate::integration::lambda::map_answer(bytes, format).map(|r| r.status().as_u16())
}

/// Verifies a SigV4-signed request built from raw parts against one fixed key
/// (`AKIDEXAMPLE` / `secret`, region `us-east-1`, service `execute-api`, at a fixed time).
pub fn sigv4(method: &[u8], target: &str, headers: &[(&[u8], &[u8])], body: &[u8]) -> bool {
    let Ok(method) = http::Method::from_bytes(method) else {
        return false;
    };
    let Ok(uri) = target.parse::<http::Uri>() else {
        return false;
    };
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) else {
            return false;
        };
        builder = builder.header(n, v);
    }
    let Ok(request) = builder.body(()) else {
        return false;
    };
    let (parts, ()) = request.into_parts();
    let settings = Sigv4Settings {
        region: "us-east-1".into(),
        service: "execute-api".into(),
        max_skew_seconds: 300,
        secret_access_keys: [("AKIDEXAMPLE".to_string(), "secret".to_string())].into(),
    };
    let authorizer = crate::auth::sigv4::Sigv4Authorizer::build(&settings);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    authorizer.verify(&parts, body, now).is_ok()
}
