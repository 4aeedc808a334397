//! What an import says about the constructs it did not carry over, and its errors.

use std::fmt;

use serde::Serialize;

/// How much a construct that was not carried over matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NoteKind {
    /// Documentation only (summaries, tags, method responses, examples): no effect on what
    /// is served.
    Ignored,
    /// Behaviour that is not carried over (or only approximated); the rest is served.
    Dropped,
    /// Dropping it would weaken authorization: the import fails unless explicitly allowed.
    Security,
}

impl NoteKind {
    /// The kind as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Ignored => "ignored",
            NoteKind::Dropped => "not carried over",
            NoteKind::Security => "SECURITY",
        }
    }
}

/// One construct of the document that was not carried over (or only partly).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// How much it matters.
    pub kind: NoteKind,
    /// JSON pointer (RFC 6901) of the construct in the document.
    pub pointer: String,
    /// Why it was not carried over.
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "#"
        } else {
            &self.pointer
        };
        write!(f, "{}: {pointer}: {}", self.kind.as_str(), self.message)
    }
}

/// Why a document could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Neither JSON nor YAML.
    #[error("the document is not valid YAML or JSON: {0}")]
    Parse(String),
    /// Parsed, but not an OpenAPI 3.x or Swagger 2.0 document.
    #[error("{pointer}: {message}")]
    NotOpenApi {
        /// Where the problem is.
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// The mapping file is malformed.
    #[error("the mapping file is invalid: {0}")]
    Mapping(String),
    /// A constraint the options impose (for example an invalid `--api-name`).
    #[error("{0}")]
    Options(String),
    /// The document has operations, but none could be carried over.
    #[error(
        "none of the document's operations can be served:\n{}",
        .notes.iter().map(|n| format!("  {n}")).collect::<Vec<_>>().join("\n")
    )]
    NothingImported {
        /// Why each operation was not carried over.
        notes: Vec<Note>,
    },
    /// Constructs that protect the API could not be mapped, and dropping them was not allowed.
    #[error(
        "{} security construct(s) cannot be carried over (pass --allow-insecure-drop to serve the routes without them):\n{}",
        .notes.len(),
        .notes.iter().map(|n| format!("  {n}")).collect::<Vec<_>>().join("\n")
    )]
    Insecure {
        /// The security notes, with their pointers.
        notes: Vec<Note>,
    },
}

/// Collects notes while importing.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    notes: Vec<Note>,
}

impl Notes {
    pub(crate) fn add(&mut self, kind: NoteKind, pointer: &str, message: impl Into<String>) {
        self.notes.push(Note {
            kind,
            pointer: pointer.to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn ignored(&mut self, pointer: &str, message: impl Into<String>) {
        self.add(NoteKind::Ignored, pointer, message);
    }

    pub(crate) fn dropped(&mut self, pointer: &str, message: impl Into<String>) {
        self.add(NoteKind::Dropped, pointer, message);
    }

    pub(crate) fn security(&mut self, pointer: &str, message: impl Into<String>) {
        self.add(NoteKind::Security, pointer, message);
    }

    /// Drops the notes under a pointer (when a construct is carried over after all).
    pub(crate) fn without_prefix(mut self, prefix: &str) -> Self {
        self.notes
            .retain(|n| !(n.pointer.starts_with(prefix) && n.kind == NoteKind::Ignored));
        self
    }

    /// The notes in document order of their pointers, duplicates removed.
    pub(crate) fn into_sorted(mut self) -> Vec<Note> {
        self.notes.sort_by(|a, b| {
            (&a.pointer, a.kind, &a.message).cmp(&(&b.pointer, b.kind, &b.message))
        });
        self.notes.dedup();
        self.notes
    }
}
