//! Every parser of bytes read from storage, behind one entry point per format, for the fuzz
//! targets (`fuzz/`) and the hostile-input tests: each must return an error on bad input,
//! never panic, and never allocate without bound.

use crate::index::{ContentId, Index};
use crate::maintenance::Schedule;
use crate::manifest::decode_batch;
use crate::object_id::{decode_indirect, ObjectId};
use crate::pack::Postamble;
use crate::repository_blob::RepositoryBlob;
use crate::session::SessionInfo;
use crate::snapshot::DirManifest;

/// The key the fuzz entry points use where a format needs one.
pub const FUZZ_KEY: [u8; 32] = [7u8; 32];

/// Output cap for decompression (as the repository uses for contents).
pub const FUZZ_MAX_OUTPUT: usize = 16 << 20;

/// The formats that have an entry point.
pub const TARGETS: &[&str] = &[
    "repository_blob",
    "index",
    "pack_postamble",
    "manifest_batch",
    "directory",
    "decompress",
    "indirect",
    "ids",
    "schedule",
    "blob_decrypt",
    "session_marker",
    "ecc",
];

/// The overheads the `ecc` entry point picks from (its first input byte, modulo the count).
pub const ECC_OVERHEADS: [i64; 7] = [1, 2, 3, 5, 10, 20, 100];

/// The `ecc` coder for a selector byte, built once per overhead (building one inverts a matrix).
pub fn ecc_coder(selector: u8) -> &'static crate::ecc::ReedSolomonCrc32 {
    static CODERS: [std::sync::OnceLock<crate::ecc::ReedSolomonCrc32>; ECC_OVERHEADS.len()] =
        [const { std::sync::OnceLock::new() }; ECC_OVERHEADS.len()];
    let i = usize::from(selector) % ECC_OVERHEADS.len();
    CODERS[i].get_or_init(
        || match crate::ecc::ReedSolomonCrc32::new(ECC_OVERHEADS[i]) {
            Ok(c) => c,
            Err(e) => panic!("the fixed overheads are valid: {e}"),
        },
    )
}

/// Splits a `blob_decrypt` input: `[algorithm selector][id length][blob id][ciphertext]`
/// (the algorithm is `selector % number of algorithms`, the id is read as lossy UTF-8).
pub fn split_blob_input(data: &[u8]) -> Option<(&'static str, String, &[u8])> {
    let (&sel, rest) = data.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let n = usize::from(n).min(rest.len());
    let (id, payload) = rest.split_at(n);
    let algs = crate::encryption::supported_encryption_algorithms();
    let alg = algs.get(usize::from(sel) % algs.len().max(1))?;
    Some((alg, String::from_utf8_lossy(id).into_owned(), payload))
}

/// Builds a `blob_decrypt` input (the inverse of [`split_blob_input`]); `None` when the id is
/// longer than 255 bytes or the algorithm unknown.
pub fn join_blob_input(algorithm: &str, blob_id: &str, payload: &[u8]) -> Option<Vec<u8>> {
    let sel = crate::encryption::supported_encryption_algorithms()
        .iter()
        .position(|a| *a == algorithm)?;
    let mut out = vec![u8::try_from(sel).ok()?, u8::try_from(blob_id.len()).ok()?];
    out.extend_from_slice(blob_id.as_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// Feeds `data` to the parser of `target` (one of [`TARGETS`]); returns whether it parsed.
pub fn parse(target: &str, data: &[u8]) -> bool {
    match target {
        "repository_blob" => repository_blob(data),
        "index" => index(data),
        "pack_postamble" => match Postamble::find(data) {
            Some(p) => p.local_index(data).is_ok(),
            None => false,
        },
        "manifest_batch" => decode_batch(data).is_ok(),
        "directory" => DirManifest::decode(data).is_ok(),
        "decompress" => decompress(data),
        "indirect" => decode_indirect(data).is_ok(),
        "ids" => {
            let s = String::from_utf8_lossy(data);
            let a = s.parse::<ObjectId>().is_ok();
            let b = s.parse::<ContentId>().is_ok();
            a || b
        }
        "schedule" => Schedule::open(&FUZZ_KEY, data).is_ok(),
        "blob_decrypt" => blob_decrypt(data),
        "ecc" => ecc(data),
        "session_marker" => session_marker(data),
        _ => false,
    }
}

/// A repository blob, then its config and blob-config decryption.
fn repository_blob(data: &[u8]) -> bool {
    match RepositoryBlob::parse(data) {
        Ok(b) => {
            let _ = b.decrypt_config(&FUZZ_KEY);
            let _ = b.decode_blobcfg(data, &FUZZ_KEY);
            true
        }
        Err(_) => false,
    }
}

/// An index, every entry up to the first bad one, and a look-up of the last good one.
fn index(data: &[u8]) -> bool {
    match Index::parse(data.to_vec()) {
        Ok(ix) => {
            let mut last = None;
            for e in ix.iter() {
                match e {
                    Ok(e) => last = Some(e.content_id),
                    Err(_) => break,
                }
            }
            if let Some(id) = last {
                let _ = ix.get(&id);
            }
            true
        }
        Err(_) => false,
    }
}

/// Decompression under the fuzzing output cap, which it must never pass.
fn decompress(data: &[u8]) -> bool {
    let mut out = Vec::new();
    let ok = crate::compression::decompress_limited(data, &mut out, FUZZ_MAX_OUTPUT).is_ok();
    assert!(out.len() <= FUZZ_MAX_OUTPUT + 1, "output beyond the cap");
    ok
}

/// `[algorithm][blob id][payload]`: a blob's decryption, and a session marker's open path.
fn blob_decrypt(data: &[u8]) -> bool {
    let Some((alg, id, payload)) = split_blob_input(data) else {
        return false;
    };
    let Ok(enc) = crate::encryption::Encryptor::new(alg, &FUZZ_KEY) else {
        return false;
    };
    match crate::blob_crypto::decrypt_blob(&enc, payload, &id) {
        Ok(plain) => {
            assert!(plain.len() <= payload.len(), "plaintext beyond the blob");
            // A marker is one kind of such blob: the whole open path must hold too.
            let _ = SessionInfo::open(&enc, &id, payload);
            true
        }
        Err(_) => false,
    }
}

/// `[overhead selector][error-corrected bytes]`: decoding repairs or refuses, and what it
/// gives back is never longer than what it was given.
fn ecc(data: &[u8]) -> bool {
    let Some((&sel, stored)) = data.split_first() else {
        return false;
    };
    let mut out = Vec::new();
    let ok = ecc_coder(sel).decode(stored, &mut out).is_ok();
    assert!(out.len() <= stored.len(), "decoded beyond the input");
    ok
}

/// The marker's plaintext (mutated ciphertext never gets past the AEAD tag, so the JSON is
/// fuzzed directly; decryption is `blob_decrypt`).
fn session_marker(data: &[u8]) -> bool {
    match SessionInfo::decode(data) {
        Ok(info) => {
            let _ = crate::session::session_id_from_blob_id(&info.id);
            info.encode().is_ok()
        }
        Err(_) => false,
    }
}
