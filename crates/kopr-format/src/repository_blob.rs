//! The `kopia.repository` and `kopia.blobcfg` blobs: the only plaintext entry points of a repository.
//!
//! `kopia.repository` is pretty-printed JSON naming the key-derivation algorithm and holding the
//! repository configuration (hash, encryption, secrets, splitter, epoch parameters), encrypted with
//! AES-256-GCM under a key derived from the password and the repository's unique id.
//! `kopia.blobcfg` holds the object-lock retention settings, encrypted the same way.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::error::{FormatError, Result};

/// Blob id of the format blob.
pub const REPOSITORY_BLOB_ID: &str = "kopia.repository";
/// Blob id of the blob-storage configuration blob.
pub const BLOBCFG_BLOB_ID: &str = "kopia.blobcfg";
/// The only format-blob encryption Kopia knows.
pub const FORMAT_ENCRYPTION_AES256_GCM: &str = "AES256_GCM";
/// Length of the random unique id, which also salts the password-derived key.
pub const UNIQUE_ID_LEN: usize = 32;
/// Length of the derived format encryption key.
pub const FORMAT_KEY_LEN: usize = 32;
/// Kopia's default pack size (20 MiB).
pub const DEFAULT_MAX_PACK_SIZE: u32 = 20 << 20;
/// Current repository format version.
pub const FORMAT_VERSION_CURRENT: u32 = 3;

/// Serde helpers for Go's encoding of `[]byte` (standard base64 with padding).
mod b64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => B64.decode(s.as_bytes()).map_err(serde::de::Error::custom),
        }
    }
}

/// The plaintext JSON of `kopia.repository`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryBlob {
    /// Name of the tool that created the repository.
    #[serde(default)]
    pub tool: String,
    /// Version of that tool.
    #[serde(rename = "buildVersion", default)]
    pub build_version: String,
    /// Build information of that tool.
    #[serde(rename = "buildInfo", default)]
    pub build_info: String,
    /// Random id of the repository; salt of the password-derived key.
    #[serde(rename = "uniqueID", with = "b64")]
    pub unique_id: Vec<u8>,
    /// Password key derivation algorithm, e.g. `scrypt-65536-8-1`.
    #[serde(rename = "keyAlgo", default)]
    pub key_algo: String,
    /// Encryption of the embedded configuration (`AES256_GCM`).
    pub encryption: String,
    /// The encrypted [`RepositoryConfig`] (wrapped as `{"format": ...}`).
    #[serde(
        rename = "encryptedBlockFormat",
        with = "b64",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub encrypted_format: Vec<u8>,
}

/// Epoch manager parameters, with Go's JSON names (durations in nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[allow(non_snake_case)]
pub struct EpochParameters {
    /// Whether the epoch manager is used (always for format version 2+).
    #[serde(rename = "Enabled", default)]
    pub enabled: bool,
    /// How often the epoch state is refreshed, in nanoseconds.
    #[serde(rename = "EpochRefreshFrequency", default)]
    pub refresh_frequency_nanos: i64,
    /// How many settled epochs make a full (range) checkpoint.
    #[serde(rename = "FullCheckpointFrequency", default)]
    pub full_checkpoint_frequency: i64,
    /// Safety margin before superseded index blobs are deleted, in nanoseconds.
    #[serde(rename = "CleanupSafetyMargin", default)]
    pub cleanup_safety_margin_nanos: i64,
    /// Minimum duration of an epoch, in nanoseconds.
    #[serde(rename = "MinEpochDuration", default)]
    pub min_epoch_duration_nanos: i64,
    /// Advance the epoch after this many index blobs in it.
    #[serde(rename = "EpochAdvanceOnCountThreshold", default)]
    pub advance_on_count_threshold: i64,
    /// Advance the epoch after this many index bytes in it.
    #[serde(rename = "EpochAdvanceOnTotalSizeBytesThreshold", default)]
    pub advance_on_total_size_bytes_threshold: i64,
    /// Parallelism of deletions during cleanup.
    #[serde(rename = "DeleteParallelism", default)]
    pub delete_parallelism: i64,
}

const NANOS_PER_MINUTE: i64 = 60_000_000_000;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;

impl EpochParameters {
    /// Kopia's defaults for new repositories.
    pub fn kopia_default() -> Self {
        EpochParameters {
            enabled: true,
            refresh_frequency_nanos: 20 * NANOS_PER_MINUTE,
            full_checkpoint_frequency: 7,
            cleanup_safety_margin_nanos: 4 * NANOS_PER_HOUR,
            min_epoch_duration_nanos: 24 * NANOS_PER_HOUR,
            advance_on_count_threshold: 20,
            advance_on_total_size_bytes_threshold: 10 << 20,
            delete_parallelism: 4,
        }
    }
}

/// The repository configuration stored encrypted inside `kopia.repository`.
///
/// Field order follows Kopia's JSON (embedded Go structs are flattened in declaration order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryConfig {
    /// Content hash algorithm.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    /// Content encryption algorithm.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub encryption: String,
    /// Error-correction algorithm (empty when none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ecc: String,
    /// Error-correction space overhead.
    #[serde(
        rename = "eccOverheadPercent",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub ecc_overhead_percent: i64,
    /// Secret keying the content hash.
    #[serde(
        rename = "secret",
        with = "b64",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hmac_secret: Vec<u8>,
    /// Master key from which content encryption keys are derived.
    #[serde(
        rename = "masterKey",
        with = "b64",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub master_key: Vec<u8>,
    /// Format version (1, 2 or 3).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub version: u32,
    /// Pack size at which a pack blob is written.
    #[serde(rename = "maxPackSize", default, skip_serializing_if = "is_zero_u32")]
    pub max_pack_size: u32,
    /// Index format version (1 or 2).
    #[serde(rename = "indexVersion", default, skip_serializing_if = "is_zero_u32")]
    pub index_version: u32,
    /// Epoch manager parameters.
    #[serde(rename = "epochParameters", default)]
    pub epoch_parameters: EpochParameters,
    /// Whether the password can be changed (no copy of the format blob inside packs).
    #[serde(rename = "enablePasswordChange", default)]
    pub enable_password_change: bool,
    /// Object splitter.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub splitter: String,
    /// An upgrade lock, kept as-is.
    #[serde(
        rename = "upgradeLock",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub upgrade_lock: Option<serde_json::Value>,
    /// Features a client must understand, kept as-is.
    #[serde(
        rename = "requiredFeatures",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub required_features: Option<serde_json::Value>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

#[derive(Serialize, Deserialize)]
struct EncryptedConfigWrapper {
    format: RepositoryConfig,
}

/// The blob id prefixes that a repository with retention locks on every put and whose locks
/// full maintenance extends (Kopia's locking prefixes): legacy indexes (`n`), epoch-manager
/// blobs (`x`), the two format blobs and packs (`p` data, `q` metadata). Session markers
/// (`s`) and logs (`_log`) are never locked: maintenance must be able to delete them.
pub const LOCKING_PREFIXES: &[&str] = &["n", "x", "kopia.repository", "kopia.blobcfg", "p", "q"];

/// Object-lock settings stored in `kopia.blobcfg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BlobStorageConfig {
    /// `GOVERNANCE` or `COMPLIANCE`, empty when off.
    #[serde(
        rename = "retentionMode",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub retention_mode: String,
    /// Retention period in nanoseconds, 0 when off.
    #[serde(rename = "retentionPeriod", default, skip_serializing_if = "is_zero")]
    pub retention_period_nanos: i64,
}

impl BlobStorageConfig {
    /// Whether object-lock retention is configured.
    pub fn is_retention_enabled(&self) -> bool {
        !self.retention_mode.is_empty() && self.retention_period_nanos != 0
    }

    /// The mode and period to lock blobs with, when retention is configured.
    pub fn retention(&self) -> Option<(&str, std::time::Duration)> {
        (self.is_retention_enabled() && self.retention_period_nanos > 0).then(|| {
            (
                self.retention_mode.as_str(),
                std::time::Duration::from_nanos(self.retention_period_nanos as u64),
            )
        })
    }

    /// Kopia's validation: both or neither, and at least one day.
    pub fn validate(&self) -> Result<()> {
        if self.retention_mode.is_empty() != (self.retention_period_nanos == 0) {
            return Err(FormatError::InvalidInput(
                "both retention mode and period must be provided".into(),
            ));
        }
        if self.retention_period_nanos != 0 && self.retention_period_nanos < 24 * NANOS_PER_HOUR {
            return Err(FormatError::InvalidInput(
                "invalid retention-period, the minimum required is 1-day".into(),
            ));
        }
        Ok(())
    }
}

impl RepositoryBlob {
    /// A new format blob with a fresh random unique id.
    pub fn new(tool: &str, version: &str, key_algo: &str) -> Self {
        let mut unique_id = vec![0u8; UNIQUE_ID_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut unique_id);
        RepositoryBlob {
            tool: tool.to_string(),
            build_version: version.to_string(),
            build_info: String::new(),
            unique_id,
            key_algo: key_algo.to_string(),
            encryption: FORMAT_ENCRYPTION_AES256_GCM.to_string(),
            encrypted_format: Vec::new(),
        }
    }

    /// Parses the JSON bytes of `kopia.repository`.
    pub fn parse(data: &[u8]) -> Result<Self> {
        serde_json::from_slice(data)
            .map_err(|e| FormatError::malformed("kopia.repository", e.to_string()))
    }

    /// Serializes as Kopia does: two-space indented JSON with a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Derives the key that encrypts the configuration from the password (slow by design).
    pub fn derive_format_key(&self, password: &str) -> Result<Vec<u8>> {
        let algo = if self.key_algo.is_empty() {
            crypto::SCRYPT_ALGORITHM
        } else {
            &self.key_algo
        };
        crypto::derive_key_from_password(password, &self.unique_id, FORMAT_KEY_LEN, algo)
    }

    /// Decrypts the embedded configuration. A wrong password gives [`FormatError::Decrypt`].
    pub fn decrypt_config(&self, format_key: &[u8]) -> Result<RepositoryConfig> {
        let plain = self.decrypt_bytes(&self.encrypted_format, format_key)?;
        let wrapper: EncryptedConfigWrapper = serde_json::from_slice(&plain)
            .map_err(|e| FormatError::malformed("repository config", e.to_string()))?;
        Ok(wrapper.format)
    }

    /// Encrypts `config` into this blob.
    pub fn encrypt_config(&mut self, config: &RepositoryConfig, format_key: &[u8]) -> Result<()> {
        let json = serde_json::to_vec(&EncryptedConfigWrapper {
            format: config.clone(),
        })
        .map_err(|e| FormatError::InvalidInput(e.to_string()))?;
        self.encrypted_format = self.encrypt_bytes(&json, format_key)?;
        Ok(())
    }

    /// Encodes `kopia.blobcfg` for this repository.
    pub fn encode_blobcfg(&self, cfg: &BlobStorageConfig, format_key: &[u8]) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(cfg).map_err(|e| FormatError::InvalidInput(e.to_string()))?;
        self.encrypt_bytes(&json, format_key)
    }

    /// Decodes `kopia.blobcfg` bytes.
    pub fn decode_blobcfg(&self, data: &[u8], format_key: &[u8]) -> Result<BlobStorageConfig> {
        let plain = self.decrypt_bytes(data, format_key)?;
        serde_json::from_slice(&plain)
            .map_err(|e| FormatError::malformed("kopia.blobcfg", e.to_string()))
    }

    /// This blob with its configuration re-encrypted from `old_key` to `new_key`, the
    /// decrypted bytes kept exactly as they are (fields kopr does not know included), as a
    /// password change needs. A wrong `old_key` gives [`FormatError::Decrypt`].
    pub fn rewrap_config(&self, old_key: &[u8], new_key: &[u8]) -> Result<RepositoryBlob> {
        let plain = self.decrypt_bytes(&self.encrypted_format, old_key)?;
        let mut out = self.clone();
        out.encrypted_format = self.encrypt_bytes(&plain, new_key)?;
        Ok(out)
    }

    /// `kopia.blobcfg` bytes re-encrypted from `old_key` to `new_key`, the decrypted bytes kept
    /// as they are.
    pub fn rewrap_blobcfg(&self, data: &[u8], old_key: &[u8], new_key: &[u8]) -> Result<Vec<u8>> {
        let plain = self.decrypt_bytes(data, old_key)?;
        self.encrypt_bytes(&plain, new_key)
    }

    fn encrypt_bytes(&self, data: &[u8], key: &[u8]) -> Result<Vec<u8>> {
        match self.encryption.as_str() {
            FORMAT_ENCRYPTION_AES256_GCM => crypto::encrypt_aes256_gcm(data, key, &self.unique_id),
            "NONE" => Ok(data.to_vec()),
            other => Err(FormatError::UnsupportedAlgorithm {
                kind: "format encryption",
                name: other.to_string(),
            }),
        }
    }

    fn decrypt_bytes(&self, data: &[u8], key: &[u8]) -> Result<Vec<u8>> {
        match self.encryption.as_str() {
            FORMAT_ENCRYPTION_AES256_GCM => crypto::decrypt_aes256_gcm(data, key, &self.unique_id)
                .map_err(|_| FormatError::Decrypt("invalid repository password".into())),
            "NONE" => Ok(data.to_vec()),
            other => Err(FormatError::UnsupportedAlgorithm {
                kind: "format encryption",
                name: other.to_string(),
            }),
        }
    }
}

impl RepositoryConfig {
    /// A configuration for a new repository with Kopia's defaults for everything not given.
    pub fn new_default(hash: &str, encryption: &str, splitter: &str) -> Self {
        let mut hmac_secret = vec![0u8; 32];
        let mut master_key = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut hmac_secret);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut master_key);
        RepositoryConfig {
            hash: hash.to_string(),
            encryption: encryption.to_string(),
            ecc: String::new(),
            ecc_overhead_percent: 0,
            hmac_secret,
            master_key,
            version: FORMAT_VERSION_CURRENT,
            max_pack_size: DEFAULT_MAX_PACK_SIZE,
            index_version: 2,
            epoch_parameters: EpochParameters::kopia_default(),
            enable_password_change: true,
            splitter: splitter.to_string(),
            upgrade_lock: None,
            required_features: None,
        }
    }

    /// Checks the parts of the configuration kopr relies on.
    pub fn validate(&self) -> Result<()> {
        if !(1..=3).contains(&self.version) {
            return Err(FormatError::InvalidInput(format!(
                "unsupported format version: {}",
                self.version
            )));
        }
        if !self.ecc.is_empty()
            && self.ecc_overhead_percent > 0
            && !crate::ecc::supported_ecc_algorithms().contains(&self.ecc.as_str())
        {
            return Err(FormatError::UnsupportedAlgorithm {
                kind: "error correction",
                name: self.ecc.clone(),
            });
        }
        if self.upgrade_lock.is_some() {
            return Err(FormatError::InvalidInput(
                "repository is locked for a format upgrade".into(),
            ));
        }
        Ok(())
    }

    /// Effective index version (1 for old repositories that did not record it).
    pub fn effective_index_version(&self) -> u32 {
        match self.index_version {
            0 if self.version >= 2 => 2,
            0 => 1,
            v => v,
        }
    }

    /// Effective pack size.
    pub fn effective_max_pack_size(&self) -> u32 {
        if self.max_pack_size == 0 {
            DEFAULT_MAX_PACK_SIZE
        } else {
            self.max_pack_size
        }
    }
}

/// HMAC-SHA256 key of the checksum in a pack's copy of the format blob.
const FORMAT_COPY_CHECKSUM_KEY: &[u8] = b"kopia-repository";
/// Largest checksummed format blob a pack may carry.
const MAX_FORMAT_COPY_LEN: usize = 65000;

/// The copy of `kopia.repository` that Kopia puts at the start of every pack of a repository
/// without password change (format version 1), so the format can be recovered from any pack:
/// `len ‖ format bytes ‖ HMAC-SHA256("kopia-repository", format bytes) ‖ len`, where `len`
/// (16 bits, little-endian) counts the bytes and the checksum.
pub fn pack_format_copy(format_bytes: &[u8]) -> Result<Vec<u8>> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(FORMAT_COPY_CHECKSUM_KEY)
        .map_err(|_| FormatError::InvalidInput("bad HMAC key".into()))?;
    mac.update(format_bytes);
    let sum = mac.finalize().into_bytes();
    let len = format_bytes.len() + sum.len();
    if len > MAX_FORMAT_COPY_LEN {
        return Err(FormatError::InvalidInput(format!(
            "format blob too big: {len}"
        )));
    }
    let l = (len as u16).to_le_bytes();
    let mut out = Vec::with_capacity(len + 4);
    out.extend_from_slice(&l);
    out.extend_from_slice(format_bytes);
    out.extend_from_slice(&sum);
    out.extend_from_slice(&l);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_blob() -> RepositoryBlob {
        // pbkdf2 is much faster to run in a unit test than scrypt; both are exercised in crypto.
        RepositoryBlob::new("kopr", "test", crypto::PBKDF2_ALGORITHM)
    }

    #[test]
    fn config_round_trip_through_encryption() {
        let mut blob = fast_blob();
        let key = blob.derive_format_key("secret").unwrap();
        let cfg = RepositoryConfig::new_default(
            "BLAKE2B-256-128",
            "AES256-GCM-HMAC-SHA256",
            "DYNAMIC-4M-BUZHASH",
        );
        blob.encrypt_config(&cfg, &key).unwrap();
        let parsed = RepositoryBlob::parse(&blob.to_bytes()).unwrap();
        assert_eq!(parsed, blob);
        assert_eq!(parsed.decrypt_config(&key).unwrap(), cfg);
    }

    #[test]
    fn wrong_password_is_a_decrypt_error() {
        let mut blob = fast_blob();
        let key = blob.derive_format_key("secret").unwrap();
        let cfg =
            RepositoryConfig::new_default("BLAKE2B-256-128", "AES256-GCM-HMAC-SHA256", "FIXED-1M");
        blob.encrypt_config(&cfg, &key).unwrap();
        let wrong = blob.derive_format_key("Secret").unwrap();
        assert!(matches!(
            blob.decrypt_config(&wrong),
            Err(FormatError::Decrypt(_))
        ));
    }

    #[test]
    fn json_layout_matches_kopia() {
        let blob = RepositoryBlob {
            tool: "https://github.com/kopia/kopia".into(),
            build_version: "v0.18.0".into(),
            build_info: "abc".into(),
            unique_id: vec![1, 2, 3],
            key_algo: "scrypt-65536-8-1".into(),
            encryption: "AES256_GCM".into(),
            encrypted_format: vec![255, 0],
        };
        let text = String::from_utf8(blob.to_bytes()).unwrap();
        assert_eq!(
            text,
            "{\n  \"tool\": \"https://github.com/kopia/kopia\",\n  \"buildVersion\": \"v0.18.0\",\n  \"buildInfo\": \"abc\",\n  \"uniqueID\": \"AQID\",\n  \"keyAlgo\": \"scrypt-65536-8-1\",\n  \"encryption\": \"AES256_GCM\",\n  \"encryptedBlockFormat\": \"/wA=\"\n}\n"
        );
    }

    #[test]
    fn config_json_field_names_and_order_match_kopia() {
        let mut cfg = RepositoryConfig::new_default(
            "BLAKE2B-256-128",
            "AES256-GCM-HMAC-SHA256",
            "DYNAMIC-4M-BUZHASH",
        );
        cfg.hmac_secret = vec![0; 2];
        cfg.master_key = vec![1; 2];
        let json = serde_json::to_string(&EncryptedConfigWrapper { format: cfg }).unwrap();
        assert_eq!(
            json,
            "{\"format\":{\"hash\":\"BLAKE2B-256-128\",\"encryption\":\"AES256-GCM-HMAC-SHA256\",\
             \"secret\":\"AAA=\",\"masterKey\":\"AQE=\",\"version\":3,\"maxPackSize\":20971520,\
             \"indexVersion\":2,\"epochParameters\":{\"Enabled\":true,\"EpochRefreshFrequency\":1200000000000,\
             \"FullCheckpointFrequency\":7,\"CleanupSafetyMargin\":14400000000000,\
             \"MinEpochDuration\":86400000000000,\"EpochAdvanceOnCountThreshold\":20,\
             \"EpochAdvanceOnTotalSizeBytesThreshold\":10485760,\"DeleteParallelism\":4},\
             \"enablePasswordChange\":true,\"splitter\":\"DYNAMIC-4M-BUZHASH\"}}"
        );
    }

    #[test]
    fn blobcfg_round_trip_and_validation() {
        let blob = fast_blob();
        let key = blob.derive_format_key("pw").unwrap();
        let cfg = BlobStorageConfig {
            retention_mode: "COMPLIANCE".into(),
            retention_period_nanos: 48 * NANOS_PER_HOUR,
        };
        let bytes = blob.encode_blobcfg(&cfg, &key).unwrap();
        assert_eq!(blob.decode_blobcfg(&bytes, &key).unwrap(), cfg);
        assert!(BlobStorageConfig::default().validate().is_ok());
        assert!(BlobStorageConfig {
            retention_mode: "GOVERNANCE".into(),
            retention_period_nanos: 0
        }
        .validate()
        .is_err());
        assert!(BlobStorageConfig {
            retention_mode: "GOVERNANCE".into(),
            retention_period_nanos: NANOS_PER_HOUR
        }
        .validate()
        .is_err());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(RepositoryBlob::parse(b"not json").is_err());
        assert!(RepositoryBlob::parse(b"{\"uniqueID\": \"!!!\"}").is_err());
    }
}
