//! The path sent to a backend when the gateway builds it (an integration's path template, an
//! `overwrite:path` mapping): every substituted value is percent-encoded, and the result goes
//! through the same normalization as the request path (`hygiene::normalize_path`), so a value
//! such as `../admin`, `a/b` or `%2e%2e` can never change the path's structure.
//!
//! Two kinds of values:
//! - path text (the path as routed, path parameters — a greedy `{proxy+}` spans segments): each
//!   segment is decoded once and encoded again, its `/`s kept;
//! - any other value (headers, query parameters, `$context` variables): encoded as one segment,
//!   `/` included (which the normalization then refuses).
//!
//! A built path that does not normalize is refused: 400 when a value came from the request
//! (the client chose it), 500 when only configuration made it.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};

use crate::error::RequestError;

/// Everything but the unreserved characters (RFC 3986 §2.3) is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path being built from literal text and substituted values.
#[derive(Default)]
pub(crate) struct PathBuilder {
    text: String,
    /// A value from the request was substituted.
    from_request: bool,
}

impl PathBuilder {
    /// Appends configuration text as written.
    pub(crate) fn literal(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends a value as one path segment (every `/`, `%`, `?`, `#`... encoded).
    pub(crate) fn value(&mut self, value: &str) {
        self.from_request = true;
        self.text.extend(percent_encode(value.as_bytes(), SEGMENT));
    }

    /// Appends path text (the routed path or a path parameter): each segment decoded once and
    /// encoded again, its `/`s kept.
    pub(crate) fn path_text(&mut self, path: &str) {
        self.from_request = true;
        for (i, segment) in path.split('/').enumerate() {
            if i > 0 {
                self.text.push('/');
            }
            let raw: Vec<u8> = percent_decode_str(segment).collect();
            self.text.extend(percent_encode(&raw, SEGMENT));
        }
    }

    /// The path (`/` added in front when missing), normalized; refused when it does not
    /// normalize (see the module docs).
    pub(crate) fn finish(self) -> Result<String, RequestError> {
        let path = if self.text.starts_with('/') {
            self.text
        } else {
            format!("/{}", self.text)
        };
        match crate::hygiene::normalize_path(&path) {
            Ok(normal) => Ok(normal.into_owned()),
            Err(reason) if self.from_request => Err(RequestError::BadPath { path, reason }),
            Err(reason) => Err(RequestError::BuildRequest(format!(
                "upstream path {path:?}: {reason}"
            ))),
        }
    }
}

/// Renders an integration's path template with the route's path parameters (path text).
pub(crate) fn render_template(
    template: &causeway_snapshot::Template,
    params: &[(String, String)],
) -> Result<String, RequestError> {
    use causeway_snapshot::TemplatePart;
    let mut path = PathBuilder::default();
    for part in template.parts() {
        match part {
            TemplatePart::Literal(text) => path.literal(text),
            TemplatePart::Param(name) => {
                let value = params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
                path.path_text(value.map_or("", String::as_str));
            }
        }
    }
    path.finish()
}

#[cfg(test)]
mod tests {
    use causeway_snapshot::Template;

    use super::*;

    fn render(template: &str, id: &str) -> Result<String, RequestError> {
        render_template(
            &Template::parse(template),
            &[("id".to_string(), id.to_string())],
        )
    }

    #[test]
    fn path_parameters_keep_their_meaning_and_cannot_climb_out_of_the_template() {
        assert_eq!(
            render("/items/{id}/x", "7").ok().as_deref(),
            Some("/items/7/x")
        );
        assert_eq!(
            render("/items/{id}", "a%20b").ok().as_deref(),
            Some("/items/a%20b")
        );
        // A greedy parameter spans segments.
        assert_eq!(
            render("/files/{id}", "a/b/c").ok().as_deref(),
            Some("/files/a/b/c")
        );
        // Decoded once and encoded again: an encoded escape stays an escape, never a `..`.
        assert_eq!(
            render("/items/{id}", "%252e%252e").ok().as_deref(),
            Some("/items/%252e%252e")
        );
        for climbing in ["..", "%2e%2e", "../admin", ".%2E/admin"] {
            assert!(
                matches!(
                    render("/items/{id}", climbing),
                    Err(RequestError::BadPath { .. })
                ),
                "{climbing}"
            );
        }
    }

    #[test]
    fn values_are_one_segment_and_a_bad_literal_is_the_configuration_s_fault() {
        let build = |value: &str| {
            let mut p = PathBuilder::default();
            p.literal("/v2/");
            p.value(value);
            p.finish()
        };
        assert_eq!(build("a b?c#d").ok().as_deref(), Some("/v2/a%20b%3Fc%23d"));
        assert_eq!(build("%2e%2e").ok().as_deref(), Some("/v2/%252e%252e"));
        for hostile in ["../admin", "a/b", ".."] {
            assert!(
                matches!(build(hostile), Err(RequestError::BadPath { .. })),
                "{hostile}"
            );
        }
        let mut only_config = PathBuilder::default();
        only_config.literal("/a/../b");
        assert!(matches!(
            only_config.finish(),
            Err(RequestError::BuildRequest(_))
        ));
    }
}
