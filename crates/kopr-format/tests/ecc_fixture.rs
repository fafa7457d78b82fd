//! Error correction against Kopia 0.23.1's `ecc` fixture (REED-SOLOMON-CRC32, 2% overhead):
//! every whole-blob-encrypted blob (index and log blobs) and every pack's local index decodes
//! without repair and re-encodes to the very bytes Kopia wrote, parity included.

use std::path::{Path, PathBuf};

use kopr_format::ecc::ReedSolomonCrc32;
use kopr_format::pack::Postamble;

fn fixture_repo() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/kopia-0.23.1/ecc/repo"
    ));
    if dir.is_dir() {
        return Some(dir.to_path_buf());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "fixture {} is missing",
        dir.display()
    );
    eprintln!("SKIPPED: fixture {} is missing", dir.display());
    None
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn blobs(root: &Path, top: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    files(&root.join(top), &mut out);
    out.sort();
    out
}

fn decode_and_re_encode(ecc: &ReedSolomonCrc32, what: &Path, stored: &[u8]) -> Vec<u8> {
    let mut sealed = Vec::new();
    let repaired = ecc
        .decode(stored, &mut sealed)
        .unwrap_or_else(|e| panic!("{}: {e}", what.display()));
    assert_eq!(repaired, 0, "{}", what.display());
    // AES-GCM output: a 12-byte nonce and a 16-byte tag at least.
    assert!(sealed.len() >= 28, "{}", what.display());
    let mut again = Vec::new();
    ecc.encode(&sealed, &mut again);
    assert!(again == stored, "{} re-encodes differently", what.display());
    sealed
}

#[test]
fn index_and_log_blobs_re_encode_byte_for_byte() {
    let Some(root) = fixture_repo() else { return };
    let ecc = ReedSolomonCrc32::new(2).unwrap();
    let mut seen = 0;
    let mut big_class = false;
    for top in ["x", "_"] {
        for p in blobs(&root, top) {
            let stored = std::fs::read(&p).unwrap();
            decode_and_re_encode(&ecc, &p, &stored);
            // 164 data + 2 parity shards from 1808 stored bytes on: the fixture's 3984-byte log
            big_class |= stored.len() > 1808;
            seen += 1;
        }
    }
    assert_eq!(seen, 4);
    assert!(big_class, "no blob of the 164+2 class");
}

#[test]
fn pack_local_indexes_re_encode_byte_for_byte() {
    let Some(root) = fixture_repo() else { return };
    let ecc = ReedSolomonCrc32::new(2).unwrap();
    let mut packs = blobs(&root, "p");
    packs.extend(blobs(&root, "q"));
    assert_eq!(packs.len(), 3);
    for p in packs {
        let pack = std::fs::read(&p).unwrap();
        let post = Postamble::find(&pack).unwrap_or_else(|| panic!("{}", p.display()));
        let local = post.local_index(&pack).unwrap();
        decode_and_re_encode(&ecc, &p, local);
    }
}
