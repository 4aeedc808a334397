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

/// What the YAML files under a path look like from outside: per file its name, length,
/// modification and change times and inode. Cheap to take (no file is read), and it changes
/// when a file is added, removed, written, replaced (a Kubernetes ConfigMap or Secret volume
/// swaps a symlink; the metadata followed through it is the new file's) or has its mode
/// changed; the change time cannot be set back by tools that preserve modification times. Two
/// writes of the same length within one tick of the filesystem's clock look alike; for those
/// [`SourceWatch`] reads everything at intervals anyway.
#[derive(Debug, PartialEq, Eq)]
pub struct Stamp(Vec<(PathBuf, FileStamp)>);

#[derive(Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    changed: (i64, i64),
    inode: u64,
}

/// Takes the [`Stamp`] of the YAML files under `path`.
pub fn stamp(path: &Path) -> anyhow::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for file in yaml_files(path)? {
        let meta =
            std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let file_stamp = FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            changed: (meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
        };
        out.push((file, file_stamp));
    }
    Ok(Stamp(out))
}

/// Decides when polling a directory must read and fingerprint its files again: when their
/// [`Stamp`] changed, or after [`FULL_READ_INTERVAL`] without a read (for the rewrites a stamp
/// cannot see). Reading and hashing a large configuration at every poll cost a steady share
/// of a core (every 500 ms in standalone, every 50 ms in `controller --from-dir`).
pub struct SourceWatch {
    last: Option<Stamp>,
    skipped: u32,
    full_every: u32,
}

/// The longest the files go unread while their stamps stay the same.
pub const FULL_READ_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl SourceWatch {
    /// A watch polled every `poll`.
    pub fn for_poll(poll: std::time::Duration) -> Self {
        let polls = FULL_READ_INTERVAL.as_millis() / poll.as_millis().max(1);
        Self::new(u32::try_from(polls).unwrap_or(u32::MAX).max(1))
    }

    fn new(full_every: u32) -> Self {
        Self {
            last: None,
            skipped: 0,
            full_every,
        }
    }

    /// Whether the files under `path` must be read now. An unreadable stamp says yes (the
    /// read reports the problem).
    pub fn must_read(&mut self, path: &Path) -> bool {
        let now = stamp(path).ok();
        let unchanged = now.is_some() && now == self.last && self.skipped + 1 < self.full_every;
        if unchanged {
            self.skipped += 1;
        } else {
            self.skipped = 0;
            self.last = now;
        }
        !unchanged
    }
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
        self.inventory_with(&mut ParseCache::default())
    }

    /// [`inventory`](Self::inventory), parsing only the files whose text changed since `cache`
    /// last saw them (a reload after one edit in a directory of 10,000 objects parses one file).
    pub fn inventory_with(&self, cache: &mut ParseCache) -> Result<Inventory, Vec<SourceError>> {
        let mut inventory = Inventory::default();
        let mut errors = Vec::new();
        let mut seen: BTreeMap<(String, String, String), String> = BTreeMap::new();
        cache
            .0
            .retain(|name, _| self.files.iter().any(|(n, _)| n == name));
        for (name, text) in &self.files {
            let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
            let parsed = match cache.0.get(name) {
                Some((cached, objects)) if *cached == digest => objects.clone(),
                _ => match parse_documents(name, text, "default") {
                    Ok(objects) => {
                        cache.0.insert(name.clone(), (digest, objects.clone()));
                        objects
                    }
                    Err(e) => {
                        cache.0.remove(name);
                        errors.push(SourceError::Load(e));
                        continue;
                    }
                },
            };
            let objects = parsed;
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

/// Objects parsed from each file, with the SHA-256 of the text they came from (not the text:
/// a directory with 100,000 API keys would keep every byte of its YAML twice).
#[derive(Debug, Default)]
pub struct ParseCache(
    std::collections::HashMap<String, ([u8; 32], Vec<causeway_compile::load::Object>)>,
);

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

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "apiVersion: causeway.dev/v1alpha1\nkind: Route\nmetadata: {name: NAME, namespace: default}\nspec:\n  apiRef: {name: a}\n  routeKey: GET /NAME\n  integration: {type: MOCK}\n";

    fn sources(files: &[(&str, &str)]) -> Sources {
        Sources {
            files: files
                .iter()
                .map(|(n, t)| ((*n).to_string(), (*t).to_string()))
                .collect(),
            fingerprint: [0; 32],
        }
    }

    fn routes(inventory: &Inventory) -> Vec<String> {
        let mut names: Vec<String> = inventory
            .routes
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_watch_reads_after_edits_additions_removals_and_every_full_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.yaml");
        std::fs::write(&a, "one").expect("write");
        let mut watch = SourceWatch::new(4);
        assert!(watch.must_read(dir.path()), "the first poll reads");
        assert!(!watch.must_read(dir.path()), "nothing changed");
        std::fs::write(&a, "three").expect("write");
        assert!(watch.must_read(dir.path()), "a longer file");
        // Same length, a later modification time.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::write(&a, "threE").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&a)
            .and_then(|f| f.set_modified(later))
            .expect("set mtime");
        assert!(
            watch.must_read(dir.path()),
            "same length, new modification time"
        );
        // Replaced through a rename (a new inode), as editors and ConfigMap volumes do.
        let tmp = dir.path().join(".a.tmp");
        std::fs::write(&tmp, "threE").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(later))
            .expect("set mtime");
        std::fs::rename(&tmp, &a).expect("rename");
        assert!(watch.must_read(dir.path()), "a replaced file");
        std::fs::write(dir.path().join("b.yml"), "x").expect("write");
        assert!(watch.must_read(dir.path()), "a new file");
        std::fs::remove_file(dir.path().join("b.yml")).expect("remove");
        assert!(watch.must_read(dir.path()), "a removed file");
        // Unchanged: read again at every fourth poll.
        let polls: Vec<bool> = (0..8).map(|_| watch.must_read(dir.path())).collect();
        assert_eq!(
            polls,
            [false, false, false, true, false, false, false, true]
        );
        // A missing directory: read (and let the read say what is wrong).
        let mut gone = SourceWatch::new(4);
        assert!(gone.must_read(&dir.path().join("missing")));
        assert!(gone.must_read(&dir.path().join("missing")));
    }

    #[test]
    fn the_parse_cache_follows_edits_removals_and_errors() {
        let (one, two) = (ROUTE.replace("NAME", "one"), ROUTE.replace("NAME", "two"));
        let mut cache = ParseCache::default();
        let first = sources(&[("a.yaml", &one), ("b.yaml", &two)]);
        let cached = first.inventory_with(&mut cache).expect("parses");
        assert_eq!(routes(&cached), routes(&first.inventory().expect("parses")));
        assert_eq!(routes(&cached), ["one", "two"]);

        // b.yaml edited: its new object replaces the old one.
        let three = ROUTE.replace("NAME", "three");
        let edited = sources(&[("a.yaml", &one), ("b.yaml", &three)]);
        let inventory = edited.inventory_with(&mut cache).expect("parses");
        assert_eq!(routes(&inventory), ["one", "three"]);

        // A broken file is an error (not its cached objects); b.yaml removed is gone.
        let broken = sources(&[("a.yaml", "kind: [")]);
        assert!(broken.inventory_with(&mut cache).is_err());
        let fixed = sources(&[("a.yaml", &one)]);
        assert_eq!(
            routes(&fixed.inventory_with(&mut cache).expect("parses")),
            ["one"]
        );
        assert_eq!(cache.0.len(), 1, "removed files leave the cache");
    }
}
