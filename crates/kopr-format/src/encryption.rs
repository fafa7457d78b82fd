//! Content encryption: Kopia's AEAD schemes with a key per content.
//!
//! From the repository master key, HKDF-SHA256 (salt `"encryption"`, empty
//! info) derives a 32-byte key-derivation secret. Each content is then sealed
//! under its own key, HMAC-SHA256(secret, content id), with the content id as
//! additional authenticated data.
//!
//! Ciphertext layout: 12-byte random nonce ‖ encrypted data ‖ 16-byte tag,
//! so the overhead is 28 bytes for both algorithms.
//!
//! A repository with error correction adds its layer ([`crate::ecc`]) around that
//! ciphertext: [`Encryptor::with_ecc`] makes `encrypt` and `decrypt` apply it, so every user
//! of the repository's encryptor (contents, pack indexes, whole-blob crypto) gets it, as
//! Kopia wraps its encryptor.

use std::ops::Range;

use hkdf::Hkdf;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};
use sha2::Sha256;

use crate::ecc::ReedSolomonCrc32;
use crate::error::{FormatError, Result};

/// The algorithm new repositories use unless told otherwise.
pub const DEFAULT_ENCRYPTION: &str = "AES256-GCM-HMAC-SHA256";

const AES256_GCM_HMAC_SHA256: &str = "AES256-GCM-HMAC-SHA256";
const CHACHA20_POLY1305_HMAC_SHA256: &str = "CHACHA20-POLY1305-HMAC-SHA256";

/// Every encryption algorithm name, in Kopia's (sorted) listing order.
const ALGORITHMS: &[&str] = &[AES256_GCM_HMAC_SHA256, CHACHA20_POLY1305_HMAC_SHA256];

/// HKDF salt for the per-content key-derivation secret.
const PURPOSE_ENCRYPTION_KEY: &[u8] = b"encryption";
const KEY_DERIVATION_SECRET_LEN: usize = 32;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The names of all supported encryption algorithms, sorted as Kopia lists them.
pub fn supported_encryption_algorithms() -> &'static [&'static str] {
    ALGORITHMS
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cipher {
    Aes256Gcm,
    ChaCha20Poly1305,
}

/// Encrypts and decrypts contents with one repository's master key.
///
/// Built once per repository; `Send + Sync`, so it can be shared by reference
/// (or in an `Arc`) between threads.
#[derive(Clone)]
pub struct Encryptor {
    algorithm: &'static str,
    cipher: Cipher,
    /// HMAC-SHA256 keyed with the key-derivation secret, cloned per content.
    key_mac: Hmac<Sha256>,
    /// Error correction around the ciphertext, when the repository has it.
    ecc: Option<std::sync::Arc<ReedSolomonCrc32>>,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Encryptor")
            .field("algorithm", &self.algorithm)
            .field("ecc", &self.ecc)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Builds the encryptor `algorithm` for `master_key`.
    ///
    /// Fails on an unknown name or an empty master key (Kopia would accept an
    /// empty key, but never creates one).
    pub fn new(algorithm: &str, master_key: &[u8]) -> Result<Encryptor> {
        let (name, cipher) = match algorithm {
            AES256_GCM_HMAC_SHA256 => (AES256_GCM_HMAC_SHA256, Cipher::Aes256Gcm),
            CHACHA20_POLY1305_HMAC_SHA256 => {
                (CHACHA20_POLY1305_HMAC_SHA256, Cipher::ChaCha20Poly1305)
            }
            other => {
                return Err(FormatError::UnsupportedAlgorithm {
                    kind: "encryption",
                    name: other.to_string(),
                })
            }
        };
        if master_key.is_empty() {
            return Err(FormatError::InvalidInput("empty master key".into()));
        }
        let mut secret = [0u8; KEY_DERIVATION_SECRET_LEN];
        Hkdf::<Sha256>::new(Some(PURPOSE_ENCRYPTION_KEY), master_key)
            .expand(&[], &mut secret)
            .map_err(|_| FormatError::InvalidInput("cannot derive encryption secret".into()))?;
        let key_mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret)
            .map_err(|_| FormatError::InvalidInput("bad HMAC key".into()))?;
        secret.fill(0);
        Ok(Encryptor {
            algorithm: name,
            cipher,
            key_mac,
            ecc: None,
        })
    }

    /// This encryptor with `ecc` (or none) around its ciphertexts.
    pub fn with_ecc(mut self, ecc: Option<ReedSolomonCrc32>) -> Encryptor {
        self.ecc = ecc.map(std::sync::Arc::new);
        self
    }

    /// The error correction around the ciphertexts, if any.
    pub fn ecc(&self) -> Option<&ReedSolomonCrc32> {
        self.ecc.as_deref()
    }

    /// The key that seals the content `content_id`.
    fn content_key(&self, content_id: &[u8]) -> LessSafeKey {
        let mut mac = self.key_mac.clone();
        mac.update(content_id);
        let key = mac.finalize().into_bytes();
        let alg = match self.cipher {
            Cipher::Aes256Gcm => &AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        };
        // Both algorithms take the 32-byte HMAC-SHA256 output as their key.
        LessSafeKey::new(UnboundKey::new(alg, &key).expect("32-byte AEAD key"))
    }

    /// Encrypts `plaintext` for `content_id` and appends nonce, ciphertext and
    /// tag (`plaintext.len() + overhead()` bytes) to `out`, error-corrected when the
    /// encryptor has ECC.
    ///
    /// # Panics
    ///
    /// If `plaintext` exceeds the cipher's message limit (64 GiB for AES-GCM, 4 GiB with
    /// ECC), far beyond any content Kopia writes.
    pub fn encrypt(&self, plaintext: &[u8], content_id: &[u8], out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        match &self.ecc {
            None => self.encrypt_with_nonce(plaintext, content_id, &nonce, out),
            Some(ecc) => {
                let mut sealed = Vec::with_capacity(plaintext.len() + OVERHEAD);
                self.encrypt_with_nonce(plaintext, content_id, &nonce, &mut sealed);
                ecc.encode(&sealed, out);
            }
        }
    }

    fn encrypt_with_nonce(
        &self,
        plaintext: &[u8],
        content_id: &[u8],
        nonce: &[u8; NONCE_LEN],
        out: &mut Vec<u8>,
    ) {
        let key = self.content_key(content_id);
        out.reserve(plaintext.len() + OVERHEAD);
        out.extend_from_slice(nonce);
        let body_start = out.len();
        out.extend_from_slice(plaintext);
        let body = &mut out[body_start..];
        let tag = key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(content_id),
            body,
        );
        match tag {
            Ok(tag) => out.extend_from_slice(tag.as_ref()),
            Err(_) => panic!(
                "plaintext of {} bytes is too large to encrypt",
                plaintext.len()
            ),
        }
    }

    /// Decrypts `ciphertext` (as made by [`Encryptor::encrypt`] for the same
    /// `content_id`) and appends the plaintext to `out`.
    ///
    /// Any alteration of the ciphertext (beyond what error correction repairs), or another
    /// content id, gives [`FormatError::Decrypt`] and leaves `out` as it was.
    pub fn decrypt(&self, ciphertext: &[u8], content_id: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let Some(ecc) = &self.ecc else {
            return self.open(ciphertext, content_id, out);
        };
        let sealed = self.ecc_decode(ecc, ciphertext, content_id)?;
        self.open(&sealed, content_id, out)
    }

    /// Decrypts `ciphertext` where it lies, without copying it first, and returns the
    /// plaintext: a part of `ciphertext`. For readers that own the fetched bytes and need
    /// them only once (restores, verification). Errors are those of [`Encryptor::decrypt`];
    /// after one, `ciphertext` holds unspecified bytes.
    pub fn decrypt_in_place<'a>(
        &self,
        ciphertext: &'a mut [u8],
        content_id: &[u8],
    ) -> Result<&'a mut [u8]> {
        let Some(ecc) = &self.ecc else {
            let plain = self.open_in_place(ciphertext, content_id)?;
            return Ok(&mut ciphertext[plain]);
        };
        let mut sealed = self.ecc_decode(ecc, ciphertext, content_id)?;
        let plain = self.open_in_place(&mut sealed, content_id)?;
        // The plaintext is shorter than the error-corrected bytes that carried it.
        let len = plain.len();
        ciphertext[..len].copy_from_slice(&sealed[plain]);
        Ok(&mut ciphertext[..len])
    }

    /// The sealed bytes inside error-corrected `ciphertext`.
    fn ecc_decode(
        &self,
        ecc: &ReedSolomonCrc32,
        ciphertext: &[u8],
        content_id: &[u8],
    ) -> Result<Vec<u8>> {
        let mut sealed = Vec::with_capacity(ciphertext.len());
        ecc.decode(ciphertext, &mut sealed).map_err(|e| {
            FormatError::Decrypt(format!(
                "cannot decrypt content {}: {e}",
                hex::encode(content_id)
            ))
        })?;
        Ok(sealed)
    }

    /// The AEAD part of [`Encryptor::decrypt`].
    fn open(&self, ciphertext: &[u8], content_id: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let nonce = nonce_of(ciphertext)?;
        let start = out.len();
        out.extend_from_slice(&ciphertext[NONCE_LEN..]);
        match self.open_body(nonce, content_id, &mut out[start..]) {
            Ok(len) => {
                out.truncate(start + len);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// The AEAD part of [`Encryptor::decrypt_in_place`]: where in `sealed` the plaintext is.
    fn open_in_place(&self, sealed: &mut [u8], content_id: &[u8]) -> Result<Range<usize>> {
        let nonce = nonce_of(sealed)?;
        let len = self.open_body(nonce, content_id, &mut sealed[NONCE_LEN..])?;
        Ok(NONCE_LEN..NONCE_LEN + len)
    }

    /// Authenticates and decrypts `body_and_tag` in place; the plaintext's length.
    fn open_body(
        &self,
        nonce: [u8; NONCE_LEN],
        content_id: &[u8],
        body_and_tag: &mut [u8],
    ) -> Result<usize> {
        self.content_key(content_id)
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(content_id),
                body_and_tag,
            )
            .map(|plain| plain.len())
            .map_err(|_| {
                FormatError::Decrypt(format!(
                    "cannot decrypt content {}: wrong key or corrupted data",
                    hex::encode(content_id)
                ))
            })
    }

    /// Bytes that encryption adds to a plaintext (nonce and tag): 28. Error correction, when
    /// on, adds more, depending on the size (see [`ReedSolomonCrc32::encoded_len`]).
    pub fn overhead(&self) -> usize {
        OVERHEAD
    }

    /// The algorithm's name, as stored in the repository format.
    pub fn algorithm(&self) -> &str {
        self.algorithm
    }
}

/// The nonce at the start of sealed bytes, which must be long enough to hold nonce and tag.
fn nonce_of(sealed: &[u8]) -> Result<[u8; NONCE_LEN]> {
    match sealed.get(..NONCE_LEN) {
        Some(n) if sealed.len() >= OVERHEAD => {
            let mut nonce = [0u8; NONCE_LEN];
            nonce.copy_from_slice(n);
            Ok(nonce)
        }
        _ => Err(FormatError::Decrypt(format!(
            "ciphertext too short: {} bytes",
            sealed.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KOPIA_MASTER_KEY: &[u8] = b"01234567890123456789012345678901";

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector hex")
    }

    /// Kopia repo/encryption/encryption_test.go, TestCiphertextSamples:
    /// (content id, plaintext, AES sample, ChaCha sample).
    const KOPIA_SAMPLES: &[(&[u8], &[u8], &str, &str)] = &[
        (
            b"aabbccddeeffgghhiijjkkllmmnnoopp",
            b"foo",
            "e43ba07f85a6d70c5f1102ca06cf19c597e5f91e527b21f00fb76e8bec3fd1",
            "118359f3d4d589d939efbbc3168ae4c77c51bcebce6845fe6ef5d11342faa6",
        ),
        (
            b"00000000000000000000000000000000",
            b"quick brown fox jumps over the lazy dog",
            "eaad755a238f1daa4052db2e5ccddd934790b6cca415b3ccfd46ac5746af33d9\
             d30f4400ffa9eb3a64fb1ce21b888c12c043bf6787d4a5c15ad10f21f6a6027ee3afe0",
            "836d2ba87892711077adbdbe1452d3b2c590bbfdf6fd3387dc6810220a32ec19\
             de862e1a4f865575e328424b5f178afac1b7eeff11494f719d119b7ebb924d1d0846a3",
        ),
    ];

    fn all_encryptors() -> Vec<Encryptor> {
        supported_encryption_algorithms()
            .iter()
            .map(|a| Encryptor::new(a, KOPIA_MASTER_KEY).unwrap())
            .collect()
    }

    #[test]
    fn decrypts_kopia_ciphertext_samples() {
        let aes = Encryptor::new(AES256_GCM_HMAC_SHA256, KOPIA_MASTER_KEY).unwrap();
        let chacha = Encryptor::new(CHACHA20_POLY1305_HMAC_SHA256, KOPIA_MASTER_KEY).unwrap();
        for (cid, plaintext, aes_ct, chacha_ct) in KOPIA_SAMPLES {
            for (enc, ct) in [(&aes, aes_ct), (&chacha, chacha_ct)] {
                let ct = unhex(ct);
                assert_eq!(ct.len(), plaintext.len() + enc.overhead());
                let mut out = b"prefix".to_vec();
                enc.decrypt(&ct, cid, &mut out).unwrap();
                assert_eq!(&out[..6], b"prefix");
                assert_eq!(&out[6..], *plaintext, "{}", enc.algorithm());
                // Re-sealing with the sample's nonce gives the sample back.
                let mut again = Vec::new();
                let nonce: [u8; NONCE_LEN] = ct[..NONCE_LEN].try_into().unwrap();
                enc.encrypt_with_nonce(plaintext, cid, &nonce, &mut again);
                assert_eq!(again, ct, "{}", enc.algorithm());
            }
        }
    }

    #[test]
    fn known_answers_from_python() {
        // Python `cryptography`: secret = HKDF-SHA256(master, salt="encryption",
        // info=""), key = HMAC-SHA256(secret, content id), then AESGCM /
        // ChaCha20Poly1305(key).encrypt(nonce, plaintext, content id).
        let cid = unhex("0123456789abcdef0123456789abcdef");
        let nonce: [u8; 12] = unhex("f0e1d2c3b4a5968778695a4b").try_into().unwrap();
        let plaintext = b"The quick brown fox jumps over the lazy dog";
        let expected = [
            (
                AES256_GCM_HMAC_SHA256,
                "f0e1d2c3b4a5968778695a4b6102b01c62c6f701c51f88bd478333fc2c762c58\
                 857021eec869d641a907d7d124c8be0a759e15832d6b7f96bd0d7d214a04f6f4fe7e1b5bae043d",
            ),
            (
                CHACHA20_POLY1305_HMAC_SHA256,
                "f0e1d2c3b4a5968778695a4b78b091441e7c02174d18cf33014efb0560d00334\
                 995ff2d3ba01389f985c1e4911c479b53bc13c25191d235e86579edadf0832609e91fed0b16e7c",
            ),
        ];
        for (alg, want) in expected {
            let enc = Encryptor::new(alg, KOPIA_MASTER_KEY).unwrap();
            let mut out = Vec::new();
            enc.encrypt_with_nonce(plaintext, &cid, &nonce, &mut out);
            assert_eq!(hex::encode(&out), want, "{alg}");
        }
    }

    #[test]
    fn round_trip_appends_and_uses_fresh_nonces() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        for enc in all_encryptors() {
            for len in [0, 1, 15, 16, 17, 1000, data.len()] {
                let mut ct1 = vec![9u8; 3];
                enc.encrypt(&data[..len], b"content-1", &mut ct1);
                assert_eq!(&ct1[..3], &[9, 9, 9]);
                let ct1 = ct1.split_off(3);
                assert_eq!(ct1.len(), len + enc.overhead());
                let mut ct2 = Vec::new();
                enc.encrypt(&data[..len], b"content-1", &mut ct2);
                assert_ne!(ct1, ct2, "nonce reused");
                let mut pt = Vec::new();
                enc.decrypt(&ct1, b"content-1", &mut pt).unwrap();
                enc.decrypt(&ct2, b"content-1", &mut pt).unwrap();
                assert_eq!(pt, [&data[..len], &data[..len]].concat());
            }
        }
    }

    #[test]
    fn decrypting_in_place_gives_what_decrypt_gives_and_rejects_what_it_rejects() {
        let ecc = || crate::ecc::ReedSolomonCrc32::new(2).unwrap();
        let with_ecc = all_encryptors()
            .into_iter()
            .map(|e| e.with_ecc(Some(ecc())));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 + i / 7) as u8).collect();
        for enc in all_encryptors().into_iter().chain(with_ecc) {
            for len in [0, 1, 17, 4096, data.len()] {
                let mut ct = Vec::new();
                enc.encrypt(&data[..len], b"cid", &mut ct);
                let mut copied = Vec::new();
                enc.decrypt(&ct, b"cid", &mut copied).unwrap();
                let mut in_place = ct.clone();
                let plain = enc.decrypt_in_place(&mut in_place, b"cid").unwrap();
                assert_eq!(plain, &data[..len]);
                assert_eq!(plain, &copied[..]);
                // another id, damage past what ECC repairs, or a short input: errors
                let mut other = ct.clone();
                assert!(enc.decrypt_in_place(&mut other, b"cie").is_err());
                let mut bad = ct.clone();
                for b in &mut bad {
                    *b ^= 0x11;
                }
                assert!(matches!(
                    enc.decrypt_in_place(&mut bad, b"cid"),
                    Err(FormatError::Decrypt(_))
                ));
            }
            for len in 0..OVERHEAD {
                let mut short = vec![0u8; len];
                assert!(enc.decrypt_in_place(&mut short, b"cid").is_err());
            }
        }
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        for enc in all_encryptors() {
            let mut ct = Vec::new();
            enc.encrypt(b"some content bytes", b"cid", &mut ct);
            for i in 0..ct.len() {
                for bit in [0x01u8, 0x80] {
                    let mut bad = ct.clone();
                    bad[i] ^= bit;
                    let mut out = b"keep".to_vec();
                    assert!(
                        matches!(
                            enc.decrypt(&bad, b"cid", &mut out),
                            Err(FormatError::Decrypt(_))
                        ),
                        "{}: byte {i} bit {bit:#x} accepted",
                        enc.algorithm()
                    );
                    assert_eq!(out, b"keep", "output must be left untouched");
                }
            }
        }
    }

    #[test]
    fn wrong_content_id_truncation_and_wrong_key_are_rejected() {
        let other = b"another master key, 32 bytes....";
        for enc in all_encryptors() {
            let mut ct = Vec::new();
            enc.encrypt(b"payload", b"content-a", &mut ct);
            let mut out = Vec::new();
            for cid in [&b"content-b"[..], b"", b"content-a\0"] {
                assert!(matches!(
                    enc.decrypt(&ct, cid, &mut out),
                    Err(FormatError::Decrypt(_))
                ));
            }
            for len in 0..ct.len() {
                assert!(matches!(
                    enc.decrypt(&ct[..len], b"content-a", &mut out),
                    Err(FormatError::Decrypt(_))
                ));
            }
            let mut extended = ct.clone();
            extended.push(0);
            assert!(enc.decrypt(&extended, b"content-a", &mut out).is_err());
            let stranger = Encryptor::new(enc.algorithm(), other).unwrap();
            assert!(stranger.decrypt(&ct, b"content-a", &mut out).is_err());
            assert!(out.is_empty());
        }
    }

    #[test]
    fn algorithms_are_not_interchangeable() {
        let aes = Encryptor::new(AES256_GCM_HMAC_SHA256, KOPIA_MASTER_KEY).unwrap();
        let chacha = Encryptor::new(CHACHA20_POLY1305_HMAC_SHA256, KOPIA_MASTER_KEY).unwrap();
        let mut ct = Vec::new();
        aes.encrypt(b"x", b"id", &mut ct);
        assert!(chacha.decrypt(&ct, b"id", &mut Vec::new()).is_err());
    }

    #[test]
    fn constructor_checks() {
        assert_eq!(
            supported_encryption_algorithms(),
            &["AES256-GCM-HMAC-SHA256", "CHACHA20-POLY1305-HMAC-SHA256"]
        );
        assert!(supported_encryption_algorithms().contains(&DEFAULT_ENCRYPTION));
        assert!(matches!(
            Encryptor::new("NONE", KOPIA_MASTER_KEY),
            Err(FormatError::UnsupportedAlgorithm { .. })
        ));
        assert!(Encryptor::new(DEFAULT_ENCRYPTION, b"").is_err());
        let enc = Encryptor::new(DEFAULT_ENCRYPTION, KOPIA_MASTER_KEY).unwrap();
        assert_eq!(enc.overhead(), 28);
        assert_eq!(enc.algorithm(), DEFAULT_ENCRYPTION);
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Encryptor>();
    }

    #[test]
    fn ecc_wraps_the_sealed_bytes() {
        let ecc = || crate::ecc::ReedSolomonCrc32::new(2).unwrap();
        for alg in supported_encryption_algorithms() {
            let plain = Encryptor::new(alg, KOPIA_MASTER_KEY).unwrap();
            let enc = plain.clone().with_ecc(Some(ecc()));
            assert!(plain.ecc().is_none());
            assert_eq!(enc.ecc().map(|e| e.data_shards()), Some(164));
            for len in [0, 1, 100, 5000, 300_000] {
                let data = &(0..len).map(|i| (i * 13) as u8).collect::<Vec<_>>()[..];
                let mut ct = Vec::new();
                enc.encrypt(data, b"cid", &mut ct);
                assert_eq!(ct.len(), ecc().encoded_len(len + OVERHEAD));
                // under the ECC is exactly what the plain encryptor seals
                let mut sealed = Vec::new();
                ecc().decode(&ct, &mut sealed).unwrap();
                let mut pt = Vec::new();
                plain.decrypt(&sealed, b"cid", &mut pt).unwrap();
                assert_eq!(pt, data);
                // and the ECC encryptor opens it, repairing a damaged shard
                ct[len / 3 + 7] ^= 0xff;
                let mut pt = b"p".to_vec();
                enc.decrypt(&ct, b"cid", &mut pt).unwrap();
                assert_eq!(&pt[1..], data);
                // without ECC the same bytes do not open
                assert!(plain.decrypt(&ct, b"cid", &mut Vec::new()).is_err());
            }
            // damage beyond repair is a decryption error naming the cause; output untouched
            let mut ct = Vec::new();
            enc.encrypt(b"short", b"cid", &mut ct);
            for b in &mut ct[..40] {
                *b ^= 0x11;
            }
            let mut out = b"keep".to_vec();
            let err = enc.decrypt(&ct, b"cid", &mut out).unwrap_err();
            assert!(matches!(err, FormatError::Decrypt(_)), "{err}");
            assert!(err.to_string().contains("can be rebuilt"), "{err}");
            assert_eq!(out, b"keep");
        }
    }
}
