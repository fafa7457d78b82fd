//! Test helpers shared by kopr's test suites: deterministic pseudo-random data, so tests are
//! reproducible and need no RNG crates, and a real S3 server on loopback ([`s3`]).

pub mod cli;
pub mod env;
pub mod s3;

/// `len` pseudo-random bytes from `seed` (xorshift64); the same seed gives the same bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Asserts that the trees at `a` and `b` hold the same directories and files (by relative path)
/// and that every file has the same bytes; names the first path that differs.
pub fn assert_same_tree(a: &std::path::Path, b: &std::path::Path) {
    use std::path::{Path, PathBuf};
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.push((rel, None));
                walk(root, &p, out);
            } else {
                out.push((rel, Some(std::fs::read(&p).unwrap())));
            }
        }
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    walk(a, a, &mut x);
    walk(b, b, &mut y);
    assert_eq!(
        x.iter().map(|e| &e.0).collect::<Vec<_>>(),
        y.iter().map(|e| &e.0).collect::<Vec<_>>(),
        "different entries"
    );
    for (p, q) in x.iter().zip(&y) {
        assert!(p.1 == q.1, "{} differs", p.0.display());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_seed_dependent() {
        assert_eq!(super::random_bytes(1, 64), super::random_bytes(1, 64));
        assert_ne!(super::random_bytes(1, 64), super::random_bytes(2, 64));
        assert_eq!(super::random_bytes(3, 1000).len(), 1000);
    }
}
