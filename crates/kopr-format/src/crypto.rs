//! Key derivation and the password-protected AES-256-GCM envelope.
//!
//! * [`derive_key_from_master_key`]: HKDF-SHA256 sub-keys of a master key.
//! * [`derive_key_from_password`]: scrypt or PBKDF2 keys from a user password,
//!   named the way Kopia names them in the `kopia.repository` blob.
//! * [`encrypt_aes256_gcm`] / [`decrypt_aes256_gcm`]: the envelope Kopia puts
//!   around the repository's secrets (the format blob's encrypted part).

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{FormatError, Result};

/// Name of the scrypt password key derivation (N = 65536, r = 8, p = 1).
pub const SCRYPT_ALGORITHM: &str = "scrypt-65536-8-1";

/// Name of the PBKDF2-HMAC-SHA256 password key derivation (600 000 rounds).
pub const PBKDF2_ALGORITHM: &str = "pbkdf2-sha256-600000";

/// Name of Kopia's deliberately weak derivation (a plain SHA-256 of the
/// password), which Kopia only registers so that its tests run fast.
/// It is accepted here so that repositories made by such tests can be read.
pub const TESTING_ONLY_INSECURE_ALGORITHM: &str = "testing-only-insecure";

/// Shortest salt accepted by the scrypt and PBKDF2 derivations, in bytes.
pub const MIN_PASSWORD_SALT_LEN: usize = 16;

const SCRYPT_LOG_N: u8 = 16; // N = 65536
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const PBKDF2_ROUNDS: u32 = 600_000;

/// HKDF "info" used for the AES key of the envelope.
const PURPOSE_AES_KEY: &[u8] = b"AES";
/// HKDF "info" used for the envelope's additional authenticated data.
const PURPOSE_AUTH_DATA: &[u8] = b"CHECKSUM";

const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;

/// Derives `len` bytes from `master_key` with HKDF-SHA256, using `salt` as the
/// HKDF salt and `purpose` as the HKDF info.
///
/// Fails on an empty master key, and when `len` exceeds what HKDF-SHA256 can
/// produce (255 × 32 bytes).
pub fn derive_key_from_master_key(
    master_key: &[u8],
    salt: &[u8],
    purpose: &[u8],
    len: usize,
) -> Result<Vec<u8>> {
    if master_key.is_empty() {
        return Err(FormatError::InvalidInput("empty master key".into()));
    }
    let mut out = vec![0u8; len];
    Hkdf::<Sha256>::new(Some(salt), master_key)
        .expand(purpose, &mut out)
        .map_err(|_| FormatError::InvalidInput(format!("cannot derive a {len}-byte HKDF key")))?;
    Ok(out)
}

/// Derives a `key_len`-byte key from a password, with the derivation that
/// Kopia names `algorithm` ([`SCRYPT_ALGORITHM`], [`PBKDF2_ALGORITHM`] or
/// [`TESTING_ONLY_INSECURE_ALGORITHM`]).
///
/// The password is used as its UTF-8 bytes. scrypt and PBKDF2 require a salt of
/// at least [`MIN_PASSWORD_SALT_LEN`] bytes.
pub fn derive_key_from_password(
    password: &str,
    salt: &[u8],
    key_len: usize,
    algorithm: &str,
) -> Result<Vec<u8>> {
    if key_len == 0 {
        return Err(FormatError::KeyDerivation(
            "key length must not be zero".into(),
        ));
    }
    match algorithm {
        SCRYPT_ALGORITHM => {
            check_salt(salt)?;
            scrypt_raw(
                password.as_bytes(),
                salt,
                SCRYPT_LOG_N,
                SCRYPT_R,
                SCRYPT_P,
                key_len,
            )
        }
        PBKDF2_ALGORITHM => {
            check_salt(salt)?;
            let mut out = vec![0u8; key_len];
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, PBKDF2_ROUNDS, &mut out);
            Ok(out)
        }
        TESTING_ONLY_INSECURE_ALGORITHM => {
            let digest = Sha256::digest(password.as_bytes());
            digest.get(..key_len).map(<[u8]>::to_vec).ok_or_else(|| {
                FormatError::KeyDerivation(format!(
                    "{algorithm} yields at most {} bytes, {key_len} requested",
                    digest.len()
                ))
            })
        }
        other => Err(FormatError::UnsupportedAlgorithm {
            kind: "password key derivation",
            name: other.to_string(),
        }),
    }
}

fn check_salt(salt: &[u8]) -> Result<()> {
    if salt.len() < MIN_PASSWORD_SALT_LEN {
        return Err(FormatError::KeyDerivation(format!(
            "salt must be at least {MIN_PASSWORD_SALT_LEN} bytes, got {}",
            salt.len()
        )));
    }
    Ok(())
}

/// scrypt with explicit parameters (N = 2^`log_n`).
fn scrypt_raw(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
    key_len: usize,
) -> Result<Vec<u8>> {
    // `Params::len` only matters for the PHC string format; the output slice
    // decides how many bytes are derived.
    let params = scrypt::Params::new(log_n, r, p, scrypt::Params::RECOMMENDED_LEN)
        .map_err(|e| FormatError::KeyDerivation(format!("scrypt parameters: {e}")))?;
    let mut out = vec![0u8; key_len];
    scrypt::scrypt(password, salt, &params, &mut out)
        .map_err(|e| FormatError::KeyDerivation(format!("scrypt: {e}")))?;
    Ok(out)
}

/// Builds the envelope's cipher and its additional authenticated data.
fn envelope_cipher(master_key: &[u8], salt: &[u8]) -> Result<(Aes256Gcm, Vec<u8>)> {
    let aes_key = derive_key_from_master_key(master_key, salt, PURPOSE_AES_KEY, 32)?;
    let auth_data = derive_key_from_master_key(master_key, salt, PURPOSE_AUTH_DATA, 32)?;
    let cipher = Aes256Gcm::new_from_slice(&aes_key)
        .map_err(|_| FormatError::InvalidInput("bad AES-256 key length".into()))?;
    Ok((cipher, auth_data))
}

/// Encrypts `data` as Kopia does for the repository's secrets: AES-256-GCM
/// under an HKDF sub-key ("AES") of `master_key` and `salt`, with another
/// sub-key ("CHECKSUM") as additional authenticated data.
///
/// Output layout: 12-byte random nonce ‖ ciphertext ‖ 16-byte tag.
pub fn encrypt_aes256_gcm(data: &[u8], master_key: &[u8], salt: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; GCM_NONCE_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| FormatError::InvalidInput(format!("no random nonce: {e}")))?;
    seal_envelope(data, master_key, salt, &nonce)
}

fn seal_envelope(
    data: &[u8],
    master_key: &[u8],
    salt: &[u8],
    nonce: &[u8; GCM_NONCE_LEN],
) -> Result<Vec<u8>> {
    let (cipher, auth_data) = envelope_cipher(master_key, salt)?;
    let mut out = Vec::with_capacity(GCM_NONCE_LEN + data.len() + GCM_TAG_LEN);
    out.extend_from_slice(nonce);
    out.extend_from_slice(data);
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &auth_data,
            &mut out[GCM_NONCE_LEN..],
        )
        .map_err(|_| FormatError::InvalidInput("plaintext too large for AES-GCM".into()))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Reverses [`encrypt_aes256_gcm`]. A wrong key or salt, or altered data,
/// gives [`FormatError::Decrypt`].
pub fn decrypt_aes256_gcm(data: &[u8], master_key: &[u8], salt: &[u8]) -> Result<Vec<u8>> {
    let (cipher, auth_data) = envelope_cipher(master_key, salt)?;
    if data.len() < GCM_NONCE_LEN + GCM_TAG_LEN {
        return Err(FormatError::Decrypt(format!(
            "encrypted payload too short: {} bytes",
            data.len()
        )));
    }
    let (nonce, rest) = data.split_at(GCM_NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - GCM_TAG_LEN);
    let mut out = body.to_vec();
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &auth_data,
            &mut out,
            aes_gcm::Tag::from_slice(tag),
        )
        .map_err(|_| {
            FormatError::Decrypt("invalid repository password or corrupted data".into())
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector hex")
    }

    #[test]
    fn hkdf_matches_kopia_vector() {
        // Kopia internal/crypto/key_derivation_test.go.
        let key = derive_key_from_master_key(
            b"ABCDEFGHIJKLMNOP",
            b"0123456789012345",
            b"the-test-purpose",
            32,
        )
        .unwrap();
        assert_eq!(
            hex::encode(key),
            "828769ee8969bc37f11dbaa32838f8db6c19daa6e3ae5f5eed2da2d94d8faddb"
        );
    }

    #[test]
    fn hkdf_rejects_empty_master_key_and_huge_lengths() {
        assert!(derive_key_from_master_key(b"", b"salt", b"p", 32).is_err());
        assert!(derive_key_from_master_key(b"k", b"salt", b"p", 255 * 32 + 1).is_err());
        assert_eq!(
            derive_key_from_master_key(b"k", b"salt", b"p", 255 * 32)
                .unwrap()
                .len(),
            255 * 32
        );
    }

    #[test]
    fn scrypt_rfc7914_vector() {
        // RFC 7914 section 12, third vector (N = 1024, r = 8, p = 16).
        let key = scrypt_raw(b"password", b"NaCl", 10, 8, 16, 64).unwrap();
        assert_eq!(
            hex::encode(key),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162\
             2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
        );
    }

    #[test]
    fn scrypt_with_kopia_parameters() {
        // Python: hashlib.scrypt(pw, salt=salt, n=65536, r=8, p=1, dklen=32).
        let key = derive_key_from_password(
            "correct horse battery staple",
            b"kopr-salt-16byte",
            32,
            SCRYPT_ALGORITHM,
        )
        .unwrap();
        assert_eq!(
            hex::encode(key),
            "b2a21544468ebac6504291c60b2c636b22d0f982c11bc50fee19c2990bd8896e"
        );
    }

    #[test]
    fn pbkdf2_rfc7914_vectors() {
        // RFC 7914 section 11 (PBKDF2-HMAC-SHA256), first vector.
        let mut out = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"passwd", b"salt", 1, &mut out);
        assert_eq!(
            hex::encode(out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
    }

    #[test]
    fn pbkdf2_with_kopia_parameters() {
        // Python: hashlib.pbkdf2_hmac('sha256', pw, salt, 600000, 32).
        let key = derive_key_from_password(
            "correct horse battery staple",
            b"kopr-salt-16byte",
            32,
            PBKDF2_ALGORITHM,
        )
        .unwrap();
        assert_eq!(
            hex::encode(key),
            "d7ae385aa6f41263d2a88fd41bc35368c85c4132f46b27c614739e93eef7131b"
        );
    }

    #[test]
    fn password_derivation_rejects_bad_input() {
        let short_salt = [0u8; MIN_PASSWORD_SALT_LEN - 1];
        for alg in [SCRYPT_ALGORITHM, PBKDF2_ALGORITHM] {
            assert!(matches!(
                derive_key_from_password("pw", &short_salt, 32, alg),
                Err(FormatError::KeyDerivation(_))
            ));
        }
        assert!(matches!(
            derive_key_from_password("pw", &[0u8; 16], 32, "scrypt-1-1-1"),
            Err(FormatError::UnsupportedAlgorithm { .. })
        ));
        assert!(derive_key_from_password("pw", &[0u8; 16], 0, PBKDF2_ALGORITHM).is_err());
    }

    #[test]
    fn insecure_testing_derivation_is_truncated_sha256() {
        let key =
            derive_key_from_password("password", b"", 16, TESTING_ONLY_INSECURE_ALGORITHM).unwrap();
        // SHA-256("password"), first 16 bytes.
        assert_eq!(hex::encode(key), "5e884898da28047151d0e56f8dc62927");
        assert!(
            derive_key_from_password("password", b"", 33, TESTING_ONLY_INSECURE_ALGORITHM).is_err()
        );
    }

    const BLOB_MASTER_KEY: [u8; 32] = {
        let mut k = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            k[i] = i as u8;
            i += 1;
        }
        k
    };
    const BLOB_SALT: &[u8] = b"format-blob-salt-0123456789abcde";
    const BLOB_PLAINTEXT: &[u8] = br#"{"hello":"repository"}"#;
    // Python `cryptography`: HKDF-SHA256(salt=BLOB_SALT, info="AES"/"CHECKSUM"),
    // then AESGCM(aes_key).encrypt(nonce 00..0b, plaintext, auth_data).
    const BLOB_CIPHERTEXT: &str = "000102030405060708090a0baf2bd0b02a2bee9ffab0fe6b7de5ac62\
                                   5520e0fcf979d3c8ad137f4df8c3426569b44331854e";

    #[test]
    fn envelope_sub_keys_match_python() {
        let aes = derive_key_from_master_key(&BLOB_MASTER_KEY, BLOB_SALT, b"AES", 32).unwrap();
        let auth =
            derive_key_from_master_key(&BLOB_MASTER_KEY, BLOB_SALT, b"CHECKSUM", 32).unwrap();
        assert_eq!(
            hex::encode(aes),
            "807cc6609f13eed2a830e77db9c9dd5156c8683d0aa6939fc5a1751489752f1b"
        );
        assert_eq!(
            hex::encode(auth),
            "ebdb6f8d8af73c2af746d388e25a8fd0a127bb0f5efa7a6b4612ab5bf3eece8e"
        );
    }

    #[test]
    fn envelope_known_answer() {
        let ct = unhex(BLOB_CIPHERTEXT);
        let nonce: [u8; 12] = ct[..12].try_into().unwrap();
        assert_eq!(
            seal_envelope(BLOB_PLAINTEXT, &BLOB_MASTER_KEY, BLOB_SALT, &nonce).unwrap(),
            ct
        );
        assert_eq!(
            decrypt_aes256_gcm(&ct, &BLOB_MASTER_KEY, BLOB_SALT).unwrap(),
            BLOB_PLAINTEXT
        );
    }

    #[test]
    fn envelope_round_trip_uses_fresh_nonces() {
        let a = encrypt_aes256_gcm(b"secret", &BLOB_MASTER_KEY, BLOB_SALT).unwrap();
        let b = encrypt_aes256_gcm(b"secret", &BLOB_MASTER_KEY, BLOB_SALT).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 12 + 6 + 16);
        for ct in [a, b] {
            assert_eq!(
                decrypt_aes256_gcm(&ct, &BLOB_MASTER_KEY, BLOB_SALT).unwrap(),
                b"secret"
            );
        }
        let empty = encrypt_aes256_gcm(b"", &BLOB_MASTER_KEY, BLOB_SALT).unwrap();
        assert!(decrypt_aes256_gcm(&empty, &BLOB_MASTER_KEY, BLOB_SALT)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn envelope_rejects_tampering_and_wrong_keys() {
        let ct = unhex(BLOB_CIPHERTEXT);
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(
                    decrypt_aes256_gcm(&bad, &BLOB_MASTER_KEY, BLOB_SALT),
                    Err(FormatError::Decrypt(_))
                ),
                "flipped byte {i} was accepted"
            );
        }
        for len in 0..ct.len() {
            assert!(matches!(
                decrypt_aes256_gcm(&ct[..len], &BLOB_MASTER_KEY, BLOB_SALT),
                Err(FormatError::Decrypt(_))
            ));
        }
        let mut other_key = BLOB_MASTER_KEY;
        other_key[0] ^= 1;
        assert!(matches!(
            decrypt_aes256_gcm(&ct, &other_key, BLOB_SALT),
            Err(FormatError::Decrypt(_))
        ));
        assert!(matches!(
            decrypt_aes256_gcm(&ct, &BLOB_MASTER_KEY, b"another salt"),
            Err(FormatError::Decrypt(_))
        ));
        assert!(matches!(
            decrypt_aes256_gcm(&ct, b"", BLOB_SALT),
            Err(FormatError::InvalidInput(_))
        ));
    }
}
