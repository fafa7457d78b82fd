//! Content hashing: the keyed hash functions Kopia uses to name contents.
//!
//! Every algorithm is keyed with the repository's HMAC secret, in one of three
//! ways, exactly as Kopia does:
//! * `HMAC-*`: HMAC over the named digest, with the secret as HMAC key;
//! * `BLAKE2*`: the BLAKE2 built-in keyed mode, with the secret as key
//!   (BLAKE2b at 32 bytes, BLAKE2s at 32 or 16 bytes of native output);
//! * `BLAKE3-*`: BLAKE3 keyed mode, with the first 32 bytes of the secret as
//!   key, or, for a shorter secret, a key derived from it with BLAKE3's
//!   `derive_key` mode under the context `"kopia blake3 derived key v1"`.
//!
//! Names ending in `-128` keep the first 16 bytes of the 32-byte output.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Sha224, Sha256};
use sha3::{Sha3_224, Sha3_256};

use crate::error::{FormatError, Result};

mod blake3_many;

/// The algorithm new repositories use unless told otherwise: BLAKE3-256-128, which Kopia also
/// implements, hashes about four times as fast as Kopia's own default on x86-64 with AVX2.
pub const DEFAULT_HASH: &str = "BLAKE3-256-128";

/// Kopia's default (`kopia repository create` without `--block-hash`).
pub const KOPIA_DEFAULT_HASH: &str = "BLAKE2B-256-128";

/// The longest hash any algorithm produces, in bytes.
pub const MAX_HASH_LEN: usize = 32;

/// Inputs [`Hasher::hash_many`] hashes side by side when all of a batch are this short.
const MANY_AT_ONCE_UP_TO: usize = 64 << 10;

/// BLAKE3 key-derivation context Kopia uses to stretch short secrets.
const BLAKE3_DERIVE_CONTEXT: &str = "kopia blake3 derived key v1";
const BLAKE3_KEY_LEN: usize = 32;
const BLAKE2B_MAX_KEY_LEN: usize = 64;
const BLAKE2S_MAX_KEY_LEN: usize = 32;

/// Every hash algorithm name, in Kopia's (sorted) listing order.
const ALGORITHMS: &[&str] = &[
    "BLAKE2B-256",
    "BLAKE2B-256-128",
    "BLAKE2S-128",
    "BLAKE2S-256",
    "BLAKE3-256",
    "BLAKE3-256-128",
    "HMAC-SHA224",
    "HMAC-SHA256",
    "HMAC-SHA256-128",
    "HMAC-SHA3-224",
    "HMAC-SHA3-256",
];

/// The names of all supported hash algorithms, sorted as Kopia lists them.
pub fn supported_hash_algorithms() -> &'static [&'static str] {
    ALGORITHMS
}

/// A content hash of 1 to 32 bytes, stored inline (no allocation).
///
/// Bytes past the length are always zero, so the derived comparisons are
/// consistent; hashes of equal length order as their bytes do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash {
    bytes: [u8; MAX_HASH_LEN],
    len: u8,
}

impl ContentHash {
    /// The hash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Copies a hash of 1 to 32 bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > MAX_HASH_LEN {
            return None;
        }
        let mut out = ContentHash {
            bytes: [0; MAX_HASH_LEN],
            len: bytes.len() as u8,
        };
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(out)
    }

    /// Lowercase hexadecimal form of the hash bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

impl AsRef<[u8]> for ContentHash {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A keyed state ready to absorb data; cloned for every hash.
// The variants differ a lot in size, but the engine is built once and shared
// behind an `Arc`, so boxing the big ones would only add indirection.
#[allow(clippy::large_enum_variant)]
enum Engine {
    Blake2b(blake2b_simd::State),
    Blake2s(blake2s_simd::State),
    Blake3([u8; BLAKE3_KEY_LEN]),
    HmacSha224(Hmac<Sha224>),
    HmacSha256(Hmac<Sha256>),
    HmacSha3_224(Hmac<Sha3_224>),
    HmacSha3_256(Hmac<Sha3_256>),
}

/// A keyed content hash function, built once per repository.
///
/// Cloning is cheap (a reference count); the hasher is `Send + Sync` and every
/// call to [`Hasher::hash`] works on a stack copy of the pre-keyed state.
#[derive(Clone)]
pub struct Hasher {
    algorithm: &'static str,
    output_len: usize,
    engine: Arc<Engine>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the keyed state: it is derived from the secret.
        f.debug_struct("Hasher")
            .field("algorithm", &self.algorithm)
            .field("output_len", &self.output_len)
            .finish_non_exhaustive()
    }
}

fn hmac_state<M: Mac + hmac::digest::KeyInit>(secret: &[u8]) -> M {
    // HMAC takes keys of any length; this cannot fail.
    <M as hmac::digest::KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

fn key_too_long(algorithm: &str, max: usize, got: usize) -> FormatError {
    FormatError::InvalidInput(format!(
        "{algorithm} takes a secret of at most {max} bytes, got {got}"
    ))
}

fn blake3_key(secret: &[u8]) -> [u8; BLAKE3_KEY_LEN] {
    match secret.get(..BLAKE3_KEY_LEN) {
        Some(prefix) => {
            let mut key = [0u8; BLAKE3_KEY_LEN];
            key.copy_from_slice(prefix);
            key
        }
        None => blake3::derive_key(BLAKE3_DERIVE_CONTEXT, secret),
    }
}

impl Hasher {
    /// Builds the hash function `algorithm` keyed with `hmac_secret`.
    ///
    /// Fails for an unknown name, and where Kopia fails: a secret longer than
    /// 64 bytes for BLAKE2b, longer than 32 bytes for BLAKE2s, or an empty
    /// secret for BLAKE2S-128.
    pub fn new(algorithm: &str, hmac_secret: &[u8]) -> Result<Hasher> {
        let name = ALGORITHMS
            .iter()
            .copied()
            .find(|n| *n == algorithm)
            .ok_or_else(|| FormatError::UnsupportedAlgorithm {
                kind: "hash",
                name: algorithm.to_string(),
            })?;
        let secret = hmac_secret;
        let (engine, output_len) = match name {
            "BLAKE2B-256" | "BLAKE2B-256-128" => {
                if secret.len() > BLAKE2B_MAX_KEY_LEN {
                    return Err(key_too_long(name, BLAKE2B_MAX_KEY_LEN, secret.len()));
                }
                let state = blake2b_simd::Params::new()
                    .hash_length(32)
                    .key(secret)
                    .to_state();
                let len = if name == "BLAKE2B-256" { 32 } else { 16 };
                (Engine::Blake2b(state), len)
            }
            "BLAKE2S-128" | "BLAKE2S-256" => {
                if secret.len() > BLAKE2S_MAX_KEY_LEN {
                    return Err(key_too_long(name, BLAKE2S_MAX_KEY_LEN, secret.len()));
                }
                // BLAKE2S-128 is native 16-byte BLAKE2s (not a truncation),
                // and like Kopia's it requires a key.
                let len = if name == "BLAKE2S-256" { 32 } else { 16 };
                if len == 16 && secret.is_empty() {
                    return Err(FormatError::InvalidInput(format!(
                        "{name} requires a non-empty secret"
                    )));
                }
                let state = blake2s_simd::Params::new()
                    .hash_length(len)
                    .key(secret)
                    .to_state();
                (Engine::Blake2s(state), len)
            }
            "BLAKE3-256" => (Engine::Blake3(blake3_key(secret)), 32),
            "BLAKE3-256-128" => (Engine::Blake3(blake3_key(secret)), 16),
            "HMAC-SHA224" => (Engine::HmacSha224(hmac_state(secret)), 28),
            "HMAC-SHA256" => (Engine::HmacSha256(hmac_state(secret)), 32),
            "HMAC-SHA256-128" => (Engine::HmacSha256(hmac_state(secret)), 16),
            "HMAC-SHA3-224" => (Engine::HmacSha3_224(hmac_state(secret)), 28),
            "HMAC-SHA3-256" => (Engine::HmacSha3_256(hmac_state(secret)), 32),
            _ => unreachable!("every name in ALGORITHMS is handled"),
        };
        Ok(Hasher {
            algorithm: name,
            output_len,
            engine: Arc::new(engine),
        })
    }

    /// Hashes `data`.
    pub fn hash(&self, data: &[u8]) -> ContentHash {
        self.hash_parts(std::iter::once(data))
    }

    /// Hashes the concatenation of `parts`, without joining them first.
    pub fn hash_parts<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> ContentHash {
        let mut full = [0u8; MAX_HASH_LEN];
        match &*self.engine {
            Engine::Blake2b(keyed) => {
                let mut st = keyed.clone();
                parts.into_iter().for_each(|p| {
                    st.update(p);
                });
                copy_prefix(&mut full, st.finalize().as_bytes());
            }
            Engine::Blake2s(keyed) => {
                let mut st = keyed.clone();
                parts.into_iter().for_each(|p| {
                    st.update(p);
                });
                copy_prefix(&mut full, st.finalize().as_bytes());
            }
            Engine::Blake3(key) => {
                let mut st = blake3::Hasher::new_keyed(key);
                parts.into_iter().for_each(|p| {
                    st.update(p);
                });
                copy_prefix(&mut full, st.finalize().as_bytes());
            }
            Engine::HmacSha224(keyed) => copy_prefix(&mut full, &run_mac(keyed, parts)),
            Engine::HmacSha256(keyed) => copy_prefix(&mut full, &run_mac(keyed, parts)),
            Engine::HmacSha3_224(keyed) => copy_prefix(&mut full, &run_mac(keyed, parts)),
            Engine::HmacSha3_256(keyed) => copy_prefix(&mut full, &run_mac(keyed, parts)),
        }
        self.truncated(&full)
    }

    /// Hashes each of `inputs`, in order: the same as [`Hasher::hash`] of each. BLAKE3 hashes
    /// the short ones side by side (see `blake3_many`), several times as fast as one at a
    /// time; the other algorithms hash one at a time.
    pub fn hash_many(&self, inputs: &[&[u8]]) -> Vec<ContentHash> {
        let Engine::Blake3(key) = &*self.engine else {
            return inputs.iter().map(|d| self.hash(d)).collect();
        };
        // Long inputs gain nothing: BLAKE3 already hashes their chunks side by side.
        let short = |d: &&[u8]| d.len() <= MANY_AT_ONCE_UP_TO;
        let shorts: Vec<&[u8]> = inputs.iter().copied().filter(short).collect();
        let mut side_by_side = blake3_many::keyed_hash_many(key, &shorts).into_iter();
        inputs
            .iter()
            .map(|d| match short(d).then(|| side_by_side.next()).flatten() {
                Some(h) => self.truncated(&h),
                None => self.hash(d),
            })
            .collect()
    }

    /// The first `output_len` bytes of a full hash, as a `ContentHash`.
    fn truncated(&self, full_hash: &[u8]) -> ContentHash {
        let mut full = [0u8; MAX_HASH_LEN];
        copy_prefix(&mut full, full_hash);
        // Zero what truncation drops, keeping the `ContentHash` invariant.
        full[self.output_len..].fill(0);
        ContentHash {
            bytes: full,
            len: self.output_len as u8,
        }
    }

    /// Length of the hashes this function produces, in bytes.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// The algorithm's name, as stored in the repository format.
    pub fn algorithm(&self) -> &str {
        self.algorithm
    }
}

fn run_mac<'a, M: Mac + Clone>(
    keyed: &M,
    parts: impl IntoIterator<Item = &'a [u8]>,
) -> hmac::digest::Output<M> {
    let mut mac = keyed.clone();
    parts.into_iter().for_each(|p| mac.update(p));
    mac.finalize().into_bytes()
}

fn copy_prefix(dst: &mut [u8; MAX_HASH_LEN], src: &[u8]) {
    let n = src.len().min(MAX_HASH_LEN);
    dst[..n].copy_from_slice(&src[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed 32-byte secret used for all known answers below.
    const SECRET: &[u8] = b"kopr-test-hmac-secret-0123456789";
    const FOX: &[u8] = b"The quick brown fox jumps over the lazy dog";

    /// 3000 bytes: several blocks of every algorithm, and 3 BLAKE3 chunks.
    fn long_input() -> Vec<u8> {
        (0..3000u32).map(|i| (i % 251) as u8).collect()
    }

    /// Known answers for (empty, FOX, long_input()) computed independently with
    /// Python 3 (hashlib blake2b/blake2s with key= and digest_size=, hmac with
    /// sha256/sha224/sha3_224/sha3_256, and the `blake3` package in keyed mode).
    const VECTORS: &[(&str, [&str; 3])] = &[
        (
            "BLAKE2B-256-128",
            [
                "30a017e4afad9d8f44ef38bdcf6384dd",
                "1ced14cbbd6c9c1e1716dfa15dd3baaa",
                "219445a7fdc86af37937e8692d4f6ffb",
            ],
        ),
        (
            "BLAKE2B-256",
            [
                "30a017e4afad9d8f44ef38bdcf6384dd4aaa4f06a81698e7e71b110ce01bb463",
                "1ced14cbbd6c9c1e1716dfa15dd3baaa9a94da0277bf0f2ebe4c3bc0ab2878a8",
                "219445a7fdc86af37937e8692d4f6ffbd9b7ecc0b76c5e460ea4a4da997fd4c7",
            ],
        ),
        (
            "BLAKE2S-128",
            [
                "ca0137f53415bf7bc07ff142940e8ce8",
                "2e5881354a04471e56d36d4f300c444d",
                "411da142ae77f926690187a76dd60644",
            ],
        ),
        (
            "BLAKE2S-256",
            [
                "31f9a4ee570d6064e57b30e3a89a2bbaa942a583ec47e012ecd4ac1e178b9b2d",
                "4571a0e9ca770271c2f1c71b3bde70f3e9240f4f99c6914dbbd7648a1600ce54",
                "7e3d1a16bec9b2a5c80ec99816c304c3518fdc5c8ed6e274e7d686bcc20cd2f9",
            ],
        ),
        (
            "HMAC-SHA256",
            [
                "8ce3cf5b0add81b9192b09148e2a8dc82683a503c0fec07bffd83f70d9c7e259",
                "db2975b4d71433324d3d61709c1825b9bf6a23d2a21d9cd71878e02f8f645239",
                "0f572eff26a3856c82fccaac9d3351af73aa2933d792a036ed027a369ec18694",
            ],
        ),
        (
            "HMAC-SHA256-128",
            [
                "8ce3cf5b0add81b9192b09148e2a8dc8",
                "db2975b4d71433324d3d61709c1825b9",
                "0f572eff26a3856c82fccaac9d3351af",
            ],
        ),
        (
            "HMAC-SHA224",
            [
                "9fee14cc751fc3b95dd781065f5bf2b2d3e19cc6b2ae9efb8b1929f2",
                "3f5aac3b14e6653a33fdcf93d804b3139f7bb9506a7b49a23f4937a4",
                "1c4e7ca6d4443ba9ea696c7474bda19b4816b2beb8b3ed4d33a81f6d",
            ],
        ),
        (
            "HMAC-SHA3-224",
            [
                "16a6d94c70f18086b8938dc609c09f2ee1d140c801d95dd6cbd2b0b5",
                "b67c0565daa50710256f37c551fccbecc3cc06c958b69a564f5068e9",
                "5259f61563e3a4e38d75920c6e6c5b47d0b8b4024a3f7d09b9c65b5f",
            ],
        ),
        (
            "HMAC-SHA3-256",
            [
                "8a577be4ca05042087dcc64578caa5017ea00a22eb51d8d1b19a3e55021ce988",
                "cbceab65ea69c836bd5e4fb11c4ece9d5c77642a9eca53d91b3ee718b7a9daa2",
                "05dcbc00b6f0b8f7ff82ba0e536c6ab90a2dccfeabf58c2e41a77043c5e787dc",
            ],
        ),
        (
            "BLAKE3-256",
            [
                "ea4bb232b71802c2475971f360b7151f47a577be79dde359c7c6b4e17e47e660",
                "95c3c21d994380e0961ef5de2d671698c3d2a07cf3897cf67e24ede94a74c499",
                "7758b3ba3c5ff4ea729e7f352540e80e3adaaae8da48b4d7f1050b2677d86a42",
            ],
        ),
        (
            "BLAKE3-256-128",
            [
                "ea4bb232b71802c2475971f360b7151f",
                "95c3c21d994380e0961ef5de2d671698",
                "7758b3ba3c5ff4ea729e7f352540e80e",
            ],
        ),
    ];

    fn hash_hex(alg: &str, secret: &[u8], data: &[u8]) -> String {
        Hasher::new(alg, secret).unwrap().hash(data).to_hex()
    }

    #[test]
    fn known_answers_for_every_algorithm() {
        let long = long_input();
        let inputs: [&[u8]; 3] = [b"", FOX, &long];
        assert_eq!(VECTORS.len(), supported_hash_algorithms().len());
        for (alg, expected) in VECTORS {
            let h = Hasher::new(alg, SECRET).unwrap();
            assert_eq!(h.algorithm(), *alg);
            for (data, want) in inputs.iter().zip(expected) {
                let got = h.hash(data);
                assert_eq!(got.to_hex(), *want, "{alg} over {} bytes", data.len());
                assert_eq!(got.as_bytes().len(), h.output_len(), "{alg}");
            }
        }
    }

    #[test]
    fn hash_parts_equals_hash_of_concatenation() {
        let long = long_input();
        for alg in supported_hash_algorithms() {
            let h = Hasher::new(alg, SECRET).unwrap();
            let (a, b) = long.split_at(1234);
            let (b, c) = b.split_at(7);
            assert_eq!(h.hash_parts([a, b, c]), h.hash(&long), "{alg}");
            assert_eq!(h.hash_parts([]), h.hash(b""), "{alg}");
        }
    }

    #[test]
    fn supported_list_is_sorted_and_complete() {
        let algs = supported_hash_algorithms();
        assert_eq!(algs.len(), 11);
        assert!(algs.windows(2).all(|w| w[0] < w[1]));
        assert!(algs.contains(&DEFAULT_HASH));
        assert!(Hasher::new("SHA256", SECRET).is_err());
    }

    #[test]
    fn blake3_secret_handling() {
        // Short secret: key = BLAKE3 derive_key("kopia blake3 derived key v1", secret).
        assert_eq!(
            hash_hex("BLAKE3-256", &SECRET[..16], FOX),
            "a8a1f69b8184a1c02542d1d5984c11902771d44cd6114672f2e014c25ad8c554"
        );
        assert_eq!(
            hash_hex("BLAKE3-256", b"", FOX),
            "c6c496830923f38c93caccc397b73e72d6cad3546b7f983b04fe94961a1d00b0"
        );
        // Long secret: only its first 32 bytes count.
        assert_eq!(
            hash_hex(
                "BLAKE3-256",
                b"kopr-test-hmac-secret-0123456789EXTRA123",
                FOX
            ),
            hash_hex("BLAKE3-256", SECRET, FOX)
        );
    }

    #[test]
    fn blake2_secret_limits() {
        assert_eq!(
            hash_hex("BLAKE2B-256", b"", FOX),
            "01718cec35cd3d796dd00020e0bfecb473ad23457d063b75eff29c0ffa2e58a9"
        );
        let key64 = [SECRET, SECRET].concat();
        assert_eq!(
            hash_hex("BLAKE2B-256", &key64, FOX),
            "83bd5a9a07b3ce31d36ba990a167826a7fb50880b2981a7d9dead2003fb073f3"
        );
        assert!(Hasher::new("BLAKE2B-256-128", &[0u8; 65]).is_err());
        assert!(Hasher::new("BLAKE2S-256", &[0u8; 33]).is_err());
        assert!(Hasher::new("BLAKE2S-128", &[0u8; 33]).is_err());
        assert!(Hasher::new("BLAKE2S-128", b"").is_err());
        assert!(Hasher::new("BLAKE2S-256", b"").is_ok());
    }

    #[test]
    fn hmac_secrets_of_any_length() {
        assert_eq!(
            hash_hex("HMAC-SHA256", b"", FOX),
            "fb011e6154a19b9a4c767373c305275a5a69e8b68b0b4c9200c383dced19a416"
        );
        let key100 = [SECRET, SECRET, SECRET, b"abcd"].concat();
        assert_eq!(
            hash_hex("HMAC-SHA256", &key100, FOX),
            "815e22093d5746db86ec51e01dbad917d0446bd0089ddcdd40dca8126559413d"
        );
        let key200 = [SECRET, SECRET, SECRET, SECRET, SECRET, SECRET, b"abcdefgh"].concat();
        assert_eq!(
            hash_hex("HMAC-SHA3-256", &key200, FOX),
            "f1f20ba730943a54f12543db0b4ba1d9ac258cb1e1d0c10a574277151e882519"
        );
    }

    #[test]
    fn different_secrets_give_different_hashes() {
        for alg in supported_hash_algorithms() {
            let a = Hasher::new(alg, SECRET).unwrap().hash(FOX);
            let b = Hasher::new(alg, b"another-secret-of-32-bytes......")
                .unwrap()
                .hash(FOX);
            assert_ne!(a, b, "{alg}");
        }
    }

    #[test]
    fn content_hash_basics() {
        assert!(ContentHash::from_slice(&[]).is_none());
        assert!(ContentHash::from_slice(&[0u8; 33]).is_none());
        let h = ContentHash::from_slice(&[0xab, 0x01]).unwrap();
        assert_eq!(h.as_bytes(), &[0xab, 0x01]);
        assert_eq!(format!("{h:?}"), "ContentHash(ab01)");
        assert_eq!(h.to_string(), "ab01");
        let computed = Hasher::new(DEFAULT_HASH, SECRET).unwrap().hash(FOX);
        assert_eq!(ContentHash::from_slice(computed.as_bytes()), Some(computed));
    }

    #[test]
    fn hasher_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Hasher>();
        let h = Hasher::new(DEFAULT_HASH, SECRET).unwrap();
        let expected = h.hash(FOX);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || h.hash(FOX))
            })
            .collect();
        for t in handles {
            assert_eq!(t.join().unwrap(), expected);
        }
    }

    #[test]
    fn hash_many_answers_as_hash_does_for_every_algorithm() {
        // Short and long inputs mixed, so BLAKE3 hashes some side by side and some alone.
        let long = long_input();
        let huge: Vec<u8> = (0..(MANY_AT_ONCE_UP_TO + 1) as u32)
            .map(|i| i as u8)
            .collect();
        let inputs: Vec<&[u8]> = vec![FOX, &[], &long, &huge, &long[..1024], FOX, &long[7..]];
        for alg in supported_hash_algorithms() {
            let h = Hasher::new(alg, SECRET).unwrap();
            let one_by_one: Vec<ContentHash> = inputs.iter().map(|d| h.hash(d)).collect();
            assert_eq!(h.hash_many(&inputs), one_by_one, "{alg}");
            assert!(h.hash_many(&[]).is_empty(), "{alg}");
        }
    }

    #[test]
    fn hash_many_of_blake3_meets_the_known_answers() {
        for (alg, answers) in VECTORS.iter().filter(|(a, _)| a.starts_with("BLAKE3")) {
            let h = Hasher::new(alg, SECRET).unwrap();
            let long = long_input();
            let hashes = h.hash_many(&[&[], FOX, &long]);
            let hex: Vec<String> = hashes.iter().map(ContentHash::to_hex).collect();
            assert_eq!(hex, answers.to_vec(), "{alg}");
        }
    }
}
