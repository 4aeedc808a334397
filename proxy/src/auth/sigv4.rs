//! SIGV4 authorizers: AWS Signature Version 4 (`Authorization: AWS4-HMAC-SHA256 ...`) checked
//! against access key → secret pairs from the snapshot, the IAM analog of API Gateway.
//!
//! The canonical request is rebuilt from what arrived: the path as sent, URI-encoded once more
//! (as every AWS service but S3 signs it), the query re-encoded and sorted, the signed headers
//! (values trimmed, inner spaces collapsed), and the SHA-256 of the body — the body is read (up
//! to the Api's limit) for SIGV4 routes only, and only after every check that needs no body
//! passed. `x-amz-content-sha256`, when sent, must equal that
//! hash (`UNSIGNED-PAYLOAD` is refused). The credential scope must name the configured region
//! and service, its date must be the date of `x-amz-date`, and that time must be within
//! `maxSkewSeconds` (default 300) of the proxy's clock. Signatures are compared in constant
//! time. Query-string (presigned) signatures are not accepted.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use causeway_snapshot::Sigv4Settings;
use hmac::{Hmac, Mac};
use http::header::{self, HeaderMap};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Principal};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// A SIGV4 authorizer, ready to verify.
pub(crate) struct Sigv4Authorizer {
    region: String,
    service: String,
    max_skew: u64,
    secrets: BTreeMap<String, String>,
}

/// The parts of an `Authorization` header.
struct Credential<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl Sigv4Authorizer {
    pub fn build(settings: &Sigv4Settings) -> Self {
        Self {
            region: settings.region.clone(),
            service: settings.service.clone(),
            max_skew: u64::from(settings.max_skew_seconds),
            secrets: settings.secret_access_keys.clone(),
        }
    }

    /// Verifies a request whose whole body is `body`, at time `now`: [`Self::check_head`], then
    /// [`SignedHead::verify_body`].
    pub fn verify(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Principal, AuthError> {
        self.check_head(parts, now)?.verify_body(parts, body)
    }

    /// Everything that needs no body: the `Authorization` header's shape, `x-amz-date` within
    /// the allowed skew, the credential scope, the signed-header set and a known access key.
    /// The gateway reads a SIGV4 route's body only after this passed, so an unsigned, stale or
    /// foreign request cannot make it buffer anything.
    pub fn check_head<'r>(
        &'r self,
        parts: &'r http::request::Parts,
        now: SystemTime,
    ) -> Result<SignedHead<'r>, AuthError> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.starts_with(ALGORITHM))
            .ok_or(AuthError::Unsigned)?;
        let credential = parse_authorization(authorization)
            .ok_or_else(|| bad("malformed Authorization header"))?;
        let amz_date =
            header_text(&parts.headers, "x-amz-date").ok_or_else(|| bad("no x-amz-date header"))?;
        let signed_at = parse_amz_date(amz_date).ok_or_else(|| bad("malformed x-amz-date"))?;
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now_secs.abs_diff(signed_at) > self.max_skew {
            return Err(AuthError::SignatureExpired);
        }
        if !amz_date.starts_with(credential.date)
            || credential.date.len() != 8
            || credential.region != self.region
            || credential.service != self.service
        {
            return Err(bad("credential scope does not match"));
        }
        if !credential.signed_headers.contains(&"host")
            || !credential.signed_headers.contains(&"x-amz-date")
        {
            return Err(bad("host and x-amz-date must be signed"));
        }
        let Some(secret) = self.secrets.get(credential.access_key) else {
            return Err(bad("unknown access key"));
        };
        Ok(SignedHead {
            credential,
            amz_date,
            secret,
        })
    }
}

/// A request head that passed [`Sigv4Authorizer::check_head`]; the body decides the rest.
pub(crate) struct SignedHead<'r> {
    credential: Credential<'r>,
    amz_date: &'r str,
    secret: &'r str,
}

impl SignedHead<'_> {
    /// Checks the body's hash (and `x-amz-content-sha256`, when sent) and the signature over
    /// the canonical request.
    pub fn verify_body(
        self,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<Principal, AuthError> {
        let SignedHead {
            credential,
            amz_date,
            secret,
        } = self;
        let payload_hash = hex::encode(Sha256::digest(body));
        if let Some(claimed) = header_text(&parts.headers, "x-amz-content-sha256")
            && claimed != payload_hash
        {
            return Err(bad("x-amz-content-sha256 does not match the body"));
        }
        let canonical = canonical_request(parts, &credential.signed_headers, &payload_hash)
            .ok_or_else(|| bad("a signed header is missing"))?;
        let scope = format!(
            "{}/{}/{}/aws4_request",
            credential.date, credential.region, credential.service
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = signing_key(
            secret,
            credential.date,
            credential.region,
            credential.service,
        );
        let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        if !bool::from(expected.as_bytes().ct_eq(credential.signature.as_bytes())) {
            return Err(bad("signature mismatch"));
        }
        let mut context = serde_json::Map::new();
        context.insert(
            "accessKeyId".into(),
            Value::String(credential.access_key.to_string()),
        );
        Ok(Principal {
            principal_id: Some(credential.access_key.to_string()),
            context,
            ..Principal::default()
        })
    }
}

fn bad(message: &str) -> AuthError {
    AuthError::InvalidSignature(message.to_string())
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn parse_authorization(value: &str) -> Option<Credential<'_>> {
    let rest = value.strip_prefix(ALGORITHM)?.trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let access_key = scope.next()?;
    let date = scope.next()?;
    let region = scope.next()?;
    let service = scope.next()?;
    if scope.next()? != "aws4_request" || scope.next().is_some() {
        return None;
    }
    let signed_headers: Vec<&str> = signed?.split(';').collect();
    if signed_headers
        .iter()
        .any(|h| h.is_empty() || h.chars().any(|c| c.is_ascii_uppercase()))
    {
        return None;
    }
    Some(Credential {
        access_key,
        date,
        region,
        service,
        signed_headers,
        signature: signature?,
    })
}

/// `20150830T123600Z` → seconds since the epoch.
fn parse_amz_date(s: &str) -> Option<u64> {
    if s.len() != 16 || &s[8..9] != "T" || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = crate::clock::days_from_civil(
        i64::try_from(y).ok()?,
        u32::try_from(mo).ok()?,
        u32::try_from(d).ok()?,
    );
    u64::try_from(days)
        .ok()
        .map(|days| days * 86_400 + h * 3600 + mi * 60 + se)
}

/// AWS URI encoding: unreserved characters stay, everything else is `%XX` (upper case);
/// `/` stays when `keep_slash`.
fn aws_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_request(
    parts: &http::request::Parts,
    signed_headers: &[&str],
    payload_hash: &str,
) -> Option<String> {
    let path = parts.uri.path();
    let canonical_uri = if path.is_empty() {
        "/".to_string()
    } else {
        aws_encode(path.as_bytes(), true)
    };
    let mut query: Vec<(String, String)> = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let enc = |s: &str| {
                let raw: Vec<u8> = percent_encoding::percent_decode_str(s).collect();
                aws_encode(&raw, false)
            };
            (enc(k), enc(v))
        })
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = if *name == "host" && parts.headers.get(header::HOST).is_none() {
            vec![parts.uri.authority()?.as_str().to_string()]
        } else {
            parts
                .headers
                .get_all(*name)
                .iter()
                .map(|v| {
                    String::from_utf8_lossy(v.as_bytes())
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect()
        };
        if values.is_empty() {
            return None;
        }
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    Some(format!(
        "{}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{}\n{payload_hash}",
        parts.method.as_str(),
        signed_headers.join(";")
    ))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example (IAM ListUsers, "Create a signed request" in the SigV4 guide).
    #[test]
    fn the_aws_documentation_example_signature_verifies() {
        let request = http::Request::get(
            "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
        )
        .header("host", "iam.amazonaws.com")
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .header("x-amz-date", "20150830T123600Z")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        )
        .body(())
        .expect("request");
        let (parts, ()) = request.into_parts();
        let authorizer = Sigv4Authorizer {
            region: "us-east-1".into(),
            service: "iam".into(),
            max_skew: 300,
            secrets: [(
                "AKIDEXAMPLE".to_string(),
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string(),
            )]
            .into(),
        };
        let at = UNIX_EPOCH
            + std::time::Duration::from_secs(parse_amz_date("20150830T123600Z").unwrap_or(0));
        let principal = authorizer.verify(&parts, b"", at).expect("verifies");
        assert_eq!(principal.principal_id.as_deref(), Some("AKIDEXAMPLE"));
        let later = at + std::time::Duration::from_secs(360);
        assert!(matches!(
            authorizer.verify(&parts, b"", later),
            Err(AuthError::SignatureExpired)
        ));
        assert!(matches!(
            authorizer.verify(&parts, b"x", at),
            Err(AuthError::InvalidSignature(_))
        ));
    }

    #[test]
    fn amz_dates_convert_to_epoch_seconds() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("2015-08-30"), None);
    }
}
