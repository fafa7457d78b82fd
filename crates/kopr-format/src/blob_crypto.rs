//! Encryption of whole blobs that are not packs: index blobs (`xn…`), session markers (`s…`)
//! and log blobs.
//!
//! The blob id is `prefix + hex(hash(plaintext)) [+ "-" + suffix]`; the IV is the last 16 bytes
//! of that hash, recovered from the id's last 32 hex digits before the first `-`.

use crate::encryption::Encryptor;
use crate::error::{FormatError, Result};
use crate::hashing::Hasher;

/// The IV of a blob, taken from its id.
pub fn blob_iv(blob_id: &str) -> Result<[u8; 16]> {
    let base = blob_id.split('-').next().unwrap_or(blob_id);
    if base.len() < 32 || !base.is_char_boundary(base.len() - 32) {
        return Err(FormatError::malformed(
            "blob id",
            format!("too short: {blob_id}"),
        ));
    }
    let mut iv = [0u8; 16];
    hex::decode_to_slice(&base[base.len() - 32..], &mut iv)
        .map_err(|_| FormatError::malformed("blob id", format!("not hex: {blob_id}")))?;
    Ok(iv)
}

/// Encrypts `payload` and returns the blob id it must be stored under, with the ciphertext.
pub fn encrypt_blob(
    hasher: &Hasher,
    encryptor: &Encryptor,
    payload: &[u8],
    prefix: &str,
    suffix: &str,
) -> Result<(String, Vec<u8>)> {
    let hash = hasher.hash(payload);
    let mut id = String::with_capacity(prefix.len() + 2 * hash.as_bytes().len() + 1 + suffix.len());
    id.push_str(prefix);
    id.push_str(&hex::encode(hash.as_bytes()));
    if !suffix.is_empty() {
        id.push('-');
        id.push_str(suffix);
    }
    let iv = blob_iv(&id)?;
    let mut out = Vec::with_capacity(payload.len() + encryptor.overhead());
    encryptor.encrypt(payload, &iv, &mut out);
    Ok((id, out))
}

/// Decrypts a blob stored under `blob_id`; tampering or a wrong id is an error.
pub fn decrypt_blob(encryptor: &Encryptor, payload: &[u8], blob_id: &str) -> Result<Vec<u8>> {
    let iv = blob_iv(blob_id)?;
    let mut out = Vec::with_capacity(payload.len());
    encryptor.decrypt(payload, &iv, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypter() -> (Hasher, Encryptor) {
        (
            Hasher::new("BLAKE2B-256-128", &[7u8; 32]).unwrap(),
            Encryptor::new("AES256-GCM-HMAC-SHA256", &[9u8; 32]).unwrap(),
        )
    }

    #[test]
    fn round_trip_and_id_shape() {
        let (h, e) = crypter();
        let (id, ct) = encrypt_blob(&h, &e, &[1, 2, 3], "n", "mysessionid").unwrap();
        assert!(id.starts_with('n') && id.ends_with("-mysessionid"));
        assert_eq!(id.len(), 1 + 32 + 1 + 11);
        assert_eq!(decrypt_blob(&e, &ct, &id).unwrap(), vec![1, 2, 3]);
        let (id2, ct2) = encrypt_blob(&h, &e, &[1, 2, 4], "n", "mysessionid").unwrap();
        assert_ne!(id, id2);
        assert!(decrypt_blob(&e, &ct, &id2).is_err());
        assert!(decrypt_blob(&e, &ct2, &id).is_err());
        assert!(decrypt_blob(&e, &ct, "invalid-blob-id").is_err());
        assert!(decrypt_blob(&e, &ct, "zzz0123456789abcdef0123456789abcde-suffix").is_err());
        assert!(decrypt_blob(&e, &[2, 3, 4], &id).is_err());
    }

    #[test]
    fn iv_comes_from_last_32_hex_before_dash() {
        let iv =
            blob_iv("xn0_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff-s01")
                .unwrap();
        assert_eq!(hex::encode(iv), "00112233445566778899aabbccddeeff");
    }
}
