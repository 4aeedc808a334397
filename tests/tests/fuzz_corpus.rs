//! The fuzz targets on the stable toolchain, on every `.ci/run`: each target's corpus
//! (`fuzz/corpus/<target>/`) is replayed through the target's property (`fuzz/src/lib.rs`, the
//! same functions `cargo fuzz` drives), then mutations of it (bit flips, byte edits, splices of
//! two entries) run for a few seconds (`CAUSEWAY_FUZZ_SECONDS`, default 3). Long coverage-guided
//! runs are `bench/fuzz.sh`. A failing input is written to `target/fuzz-failures/` and named in
//! the failure, with the seed that produced it.

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("corpus file");
            (path.display().to_string(), bytes)
        })
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "{} is empty", dir.display());
    entries
}

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// Bytes that matter to these parsers, tried more often than chance would.
const INTERESTING: &[&[u8]] = &[
    b"%",
    b"%2e",
    b"%2f",
    b"%c0%ae",
    b"..",
    b"/",
    b"\0",
    b"{",
    b"}",
    b"\r\n",
    b":",
    b"\"",
    b"\\u0000",
    b"- ",
    b"&a",
    b"*a",
    b"!!binary ",
    b"AWS4-HMAC-SHA256 ",
    b"99999999999999999999",
];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            2 => out.insert(at, (rng.next() & 0xff) as u8),
            3 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1);
                out.splice(at..at, other[from..from + len].iter().copied());
            }
            _ if !out.is_empty() => {
                let from = rng.below(out.len());
                let len = rng.below(32).min(out.len() - from);
                let copy = out[from..from + len].to_vec();
                out.splice(at..at, copy);
            }
            _ => out.push(b'/'),
        }
    }
    out.truncate(64 * 1024);
    out
}

/// Runs `check` on `input`; on a panic, keeps the input and fails naming it.
fn run(target: &str, check: fn(&[u8]), input: &[u8], origin: &str) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(input))) {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let dir = root().join("target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{target}-{}", input.len()));
        let _ = std::fs::write(&file, input);
        panic!(
            "fuzz target {target} broke its property on {origin}: {message}\n\
             input kept in {} ({:?}); reproduce with `cargo fuzz run {target} {}` in fuzz/",
            file.display(),
            String::from_utf8_lossy(input),
            file.display()
        );
    }
}

fn replay_and_mutate(target: &str) {
    let check = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check)
        .expect("a known target");
    let entries = corpus(target);
    for (path, bytes) in &entries {
        run(target, check, bytes, path);
    }
    let seconds = std::env::var("CAUSEWAY_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let seed = std::env::var("CAUSEWAY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seed);
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    // Mutants that did not break anything feed later mutations, as a fuzzer's queue would.
    let mut pool: Vec<Vec<u8>> = entries.into_iter().map(|(_, b)| b).collect();
    while Instant::now() < deadline {
        let base = &pool[rng.below(pool.len())];
        let other = &pool[rng.below(pool.len())];
        let mutant = mutate(&mut rng, base, other);
        run(
            target,
            check,
            &mutant,
            &format!("mutant {runs} of seed {seed} (CAUSEWAY_FUZZ_SEED={seed})"),
        );
        runs += 1;
        if pool.len() < 512 && rng.below(8) == 0 {
            pool.push(mutant);
        }
    }
    println!("{target}: corpus replayed, {runs} mutants in {seconds} s, seed {seed}");
    assert!(runs > 0, "no mutant ran");
}

#[test]
fn every_target_has_a_corpus_and_a_test() {
    let dirs: Vec<String> = std::fs::read_dir(root().join("fuzz/corpus"))
        .expect("fuzz/corpus")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    for (name, _) in checks::TARGETS {
        assert!(dirs.iter().any(|d| d == name), "no corpus for {name}");
        let target = root().join("fuzz/fuzz_targets").join(format!("{name}.rs"));
        assert!(target.exists(), "{} missing", target.display());
    }
    let targets = std::fs::read_dir(root().join("fuzz/fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .count();
    assert_eq!(targets, checks::TARGETS.len(), "a target is not in TARGETS");
}

#[test]
fn path_routing() {
    replay_and_mutate("path_routing");
}

#[test]
fn request_head() {
    replay_and_mutate("request_head");
}

#[test]
fn compile_yaml() {
    replay_and_mutate("compile_yaml");
}

#[test]
fn lambda_answer() {
    replay_and_mutate("lambda_answer");
}

#[test]
fn sigv4() {
    replay_and_mutate("sigv4");
}

#[test]
fn openapi_import() {
    replay_and_mutate("openapi_import");
}
