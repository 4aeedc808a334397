//! Reading a directory of YAML into an [`Inventory`], and noticing when it changes.

use std::path::{Path, PathBuf};

use anyhow::Context;
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
    /// Parses every file; collects all errors rather than stopping at the first.
    pub fn inventory(&self) -> Result<Inventory, Vec<LoadError>> {
        let mut inventory = Inventory::default();
        let mut errors = Vec::new();
        for (name, text) in &self.files {
            if let Err(e) = inventory.add_yaml(name, text) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(inventory)
        } else {
            Err(errors)
        }
    }
}
