//! Reading a directory of YAML into an [`Inventory`], and noticing when it changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use causeway_compile::load::parse_documents;
use causeway_compile::{Inventory, LoadError};
use sha2::{Digest, Sha256};

/// The YAML files under `path` (or `path` itself), sorted, skipping hidden entries.
pub fn yaml_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let p = entry.path();
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The files' texts, read once, with a fingerprint of their names and contents.
pub struct Sources {
    /// (display name, text) per file.
    pub files: Vec<(String, String)>,
    /// SHA-256 over names and contents: equal fingerprints mean nothing changed.
    pub fingerprint: [u8; 32],
}

/// Reads every YAML file under `path`.
pub fn read_sources(path: &Path) -> anyhow::Result<Sources> {
    let mut hasher = Sha256::new();
    let mut files = Vec::new();
    for file in yaml_files(path)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let name = file.display().to_string();
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
        files.push((name, text));
    }
    Ok(Sources {
        files,
        fingerprint: hasher.finalize().into(),
    })
}

impl Sources {
    /// Parses every file; collects all errors rather than stopping at the first. The same
    /// object (kind, namespace, name) defined twice is an error naming both places, since which
    /// copy would win is not something a user should have to guess.
    pub fn inventory(&self) -> Result<Inventory, Vec<SourceError>> {
        let mut inventory = Inventory::default();
        let mut errors = Vec::new();
        let mut seen: BTreeMap<(String, String, String), String> = BTreeMap::new();
        for (name, text) in &self.files {
            let objects = match parse_documents(name, text, "default") {
                Ok(objects) => objects,
                Err(e) => {
                    errors.push(SourceError::Load(e));
                    continue;
                }
            };
            for (index, object) in objects.into_iter().enumerate() {
                let id = object.id();
                let here = format!("{name} (object {})", index + 1);
                match seen.get(&id) {
                    Some(first) => errors.push(SourceError::Duplicate {
                        kind: id.0.clone(),
                        object: format!("{}/{}", id.1, id.2),
                        first: first.clone(),
                        second: here,
                    }),
                    None => {
                        seen.insert(id, here);
                        inventory.add(object);
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(inventory)
        } else {
            Err(errors)
        }
    }
}

/// Why a set of files cannot become an inventory.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file that does not parse.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The same object twice.
    #[error("{kind} {object} is defined twice: in {first} and in {second}")]
    Duplicate {
        /// Kind.
        kind: String,
        /// `namespace/name`.
        object: String,
        /// Where it was first seen.
        first: String,
        /// Where it was seen again.
        second: String,
    },
}
