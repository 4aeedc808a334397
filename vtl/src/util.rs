//! `$util` functions and Java string helpers, with Java's observable behaviour.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Apache Commons Lang 2 `escapeJavaScript`: quotes, backslash, slash and control characters
/// escaped, everything beyond ASCII as `\uXXXX` (UTF-16 units, upper-case hex).
pub(crate) fn escape_javascript(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Java's `URLEncoder.encode(s, "UTF-8")`: space as `+`; letters, digits and `.-*_` as they are.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Java's `URLDecoder.decode(s, "UTF-8")`: `+` as space, `%XX` decoded; a bad escape is an
/// error as in Java.
pub(crate) fn url_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad escape at byte {i}"))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Base64 (standard alphabet, padded) of the UTF-8 bytes.
pub(crate) fn base64_encode(s: &str) -> String {
    STANDARD.encode(s.as_bytes())
}

/// Decodes base64 (standard alphabet; padding optional) to text (invalid UTF-8 replaced).
pub(crate) fn base64_decode(s: &str) -> Result<String, String> {
    let trimmed = s.trim().trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| e.to_string())
}

/// Translates a Java regex replacement (`$1`, `${name}`, `\$`) to the `regex` crate's syntax.
pub(crate) fn java_replacement(rep: &str) -> Result<String, String> {
    let chars: Vec<char> = rep.chars().collect();
    let mut out = String::with_capacity(rep.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let c = *chars
                    .get(i + 1)
                    .ok_or("character to be escaped is missing")?;
                if c == '$' {
                    out.push_str("$$");
                } else {
                    out.push(c);
                }
                i += 2;
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    let end = chars[i..]
                        .iter()
                        .position(|c| *c == '}')
                        .ok_or("named capturing group is missing trailing '}'")?;
                    let name: String = chars[i + 1..i + end].iter().collect();
                    out.push_str(&format!("${{{name}}}"));
                    i += end + 1;
                } else {
                    let start = i;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    if start == i {
                        return Err("illegal group reference".into());
                    }
                    let n: String = chars[start..i].iter().collect();
                    out.push_str(&format!("${{{n}}}"));
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}
