//! The verified client certificate of a mutual-TLS connection, as
//! `$context.identity.clientCert.*` shows it. Parsed once per connection.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// What a TLS connection established, for every request on it (request extensions).
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsInfo {
    /// The client CA bundle the handshake verified the client certificate against.
    pub client_ca: Option<Arc<str>>,
    /// The verified client certificate (mutual-TLS domains only).
    pub client_cert: Option<Arc<ClientCert>>,
}

/// A verified client certificate, as `$context.identity.clientCert.*` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientCert {
    /// The leaf certificate, PEM (`clientCertPem`).
    pub pem: String,
    /// `subjectDN`, for example `CN=client.example.com, O=Example`.
    pub subject_dn: String,
    /// `issuerDN`.
    pub issuer_dn: String,
    /// `serialNumber`, colon-separated hex.
    pub serial_number: String,
    /// `validity.notBefore`, for example `May 28 12:30:02 2026 GMT`.
    pub not_before: String,
    /// `validity.notAfter`.
    pub not_after: String,
    /// Subject common names and subject alternative names (DNS, URI, email): what the MTLS
    /// authorizer's `allowedSubjects` are matched against.
    pub names: Vec<String>,
}

impl ClientCert {
    /// Parses a DER certificate (the handshake has verified it already).
    pub fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut names: Vec<String> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) | GeneralName::URI(n) | GeneralName::RFC822Name(n) => {
                        names.push((*n).to_string());
                    }
                    _ => {}
                }
            }
        }
        let body = BASE64.encode(der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        Some(Self {
            pem,
            subject_dn: cert.subject().to_string(),
            issuer_dn: cert.issuer().to_string(),
            serial_number: cert.raw_serial_as_string(),
            not_before: openssl_time(cert.validity().not_before.timestamp()),
            not_after: openssl_time(cert.validity().not_after.timestamp()),
            names,
        })
    }

    /// The value of `$context.identity.clientCert.<field>`.
    pub fn field(&self, field: &str) -> Option<&str> {
        Some(match field {
            "clientCertPem" => &self.pem,
            "subjectDN" => &self.subject_dn,
            "issuerDN" => &self.issuer_dn,
            "serialNumber" => &self.serial_number,
            "validity.notBefore" => &self.not_before,
            "validity.notAfter" => &self.not_after,
            _ => return None,
        })
    }
}

/// The value of a `$context` variable naming the client certificate, when `name` is one.
pub(crate) fn client_cert_context(cert: Option<&ClientCert>, name: &str) -> Option<String> {
    let field = name.strip_prefix("identity.clientCert.")?;
    cert?.field(field).map(str::to_string)
}

/// `Mon DD HH:MM:SS YYYY GMT`, as OpenSSL (and API Gateway) print certificate times.
fn openssl_time(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = crate::clock::civil_from_days(days);
    let month_name = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{month_name} {day:>2} {:02}:{:02}:{:02} {year} GMT",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_times_print_as_openssl_does() {
        assert_eq!(openssl_time(0), "Jan  1 00:00:00 1970 GMT");
        // 2024-02-29T13:05:09Z, a leap day.
        assert_eq!(openssl_time(1_709_211_909), "Feb 29 13:05:09 2024 GMT");
        assert_eq!(openssl_time(4_102_444_799), "Dec 31 23:59:59 2099 GMT");
    }

    #[test]
    fn only_client_cert_fields_answer_client_cert_variables() {
        let cert = ClientCert {
            subject_dn: "CN=a".into(),
            not_after: "Dec 31 23:59:59 2099 GMT".into(),
            ..ClientCert::default()
        };
        let get = |name| client_cert_context(Some(&cert), name);
        assert_eq!(
            get("identity.clientCert.subjectDN").as_deref(),
            Some("CN=a")
        );
        assert_eq!(
            get("identity.clientCert.validity.notAfter").as_deref(),
            Some("Dec 31 23:59:59 2099 GMT")
        );
        assert_eq!(get("identity.clientCert.nope"), None);
        assert_eq!(get("identity.sourceIp"), None);
        assert_eq!(
            client_cert_context(None, "identity.clientCert.subjectDN"),
            None
        );
    }
}
