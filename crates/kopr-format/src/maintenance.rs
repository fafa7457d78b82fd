//! Kopia's maintenance records: the parameters manifest (`type: maintenance`) and the encrypted
//! schedule blob `kopia.maintenance` with the history of every task run.
//!
//! The schedule blob is `nonce(12) ‖ AES-256-GCM(JSON)` with additional data `maintenance`,
//! under a key derived from the master key with the purpose `maintenance schedule`.

use std::collections::BTreeMap;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{FormatError, Result};

/// The blob holding the schedule.
pub const SCHEDULE_BLOB_ID: &str = "kopia.maintenance";
/// Key-derivation purpose of the schedule key.
pub const SCHEDULE_KEY_PURPOSE: &[u8] = b"maintenance schedule";
/// Length of the schedule key.
pub const SCHEDULE_KEY_LEN: usize = 32;
/// Additional authenticated data of the schedule blob.
pub const SCHEDULE_AAD: &[u8] = b"maintenance";
/// Run records kept per task.
pub const MAX_RETAINED_RUNS: usize = 50;

const NONCE_LEN: usize = 12;

/// Go's `time.Duration` in JSON: integer nanoseconds.
pub mod go_duration {
    use super::*;

    /// Serializes as nanoseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_i64(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    /// Parses nanoseconds; negative values become zero.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
        let n = i64::deserialize(d)?;
        Ok(Duration::from_nanos(n.max(0) as u64))
    }
}

/// Go's `time.Time` in JSON where the zero time (`0001-01-01T00:00:00Z`) means "never".
pub mod go_time_or_zero {
    use super::*;

    const ZERO: &str = "0001-01-01T00:00:00Z";

    /// Serializes `None` as Go's zero time.
    pub fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&crate::gotime::format(t)),
            None => s.serialize_str(ZERO),
        }
    }

    /// Parses an RFC 3339 time; Go's zero time (or anything in year 1) becomes `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<DateTime<Utc>>, D::Error> {
        let s = String::deserialize(d)?;
        let t = DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)?;
        let year_one = Utc.with_ymd_and_hms(1, 1, 2, 0, 0, 0).single();
        Ok(match year_one {
            Some(limit) if t < limit => None,
            _ => Some(t),
        })
    }
}

/// One maintenance cycle's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleParams {
    /// Whether the cycle runs when due.
    #[serde(default)]
    pub enabled: bool,
    /// How often.
    #[serde(with = "go_duration", default)]
    pub interval: Duration,
}

/// How many maintenance log blobs (`_log…`) are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LogRetention {
    /// Total size cap in bytes.
    #[serde(rename = "maxTotalSize", default)]
    pub max_total_size: i64,
    /// Count cap.
    #[serde(rename = "maxCount", default)]
    pub max_count: i64,
    /// Age cap.
    #[serde(rename = "maxAge", with = "go_duration", default)]
    pub max_age: Duration,
}

impl LogRetention {
    /// Kopia's defaults: 1 GiB, 10000 logs, 30 days.
    pub fn kopia_default() -> Self {
        LogRetention {
            max_total_size: 1 << 30,
            max_count: 10_000,
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }

    /// The defaults when nothing is set.
    pub fn or_default(&self) -> Self {
        if self.max_count == 0 && self.max_age.is_zero() && self.max_total_size == 0 {
            Self::kopia_default()
        } else {
            self.clone()
        }
    }
}

/// The maintenance parameters manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceParams {
    /// `user@host` allowed to run maintenance.
    #[serde(default)]
    pub owner: String,
    /// Quick cycle.
    pub quick: CycleParams,
    /// Full cycle.
    pub full: CycleParams,
    /// Log retention.
    #[serde(rename = "logRetention", default)]
    pub log_retention: LogRetention,
    /// Whether full maintenance extends object-lock retention.
    #[serde(rename = "extendObjectLocks", default)]
    pub extend_object_locks: bool,
    /// Listing parallelism override (0 = default).
    #[serde(rename = "listParallelism", default)]
    pub list_parallelism: i64,
    /// kopr only (Kopia ignores the field, and drops it when it rewrites the manifest): the
    /// full content rewrite empties packs whose unused share of packed bytes exceeds this
    /// percentage; `None` means [`DEFAULT_MAX_UNUSED_PERCENT`], 100 disables the rule.
    #[serde(
        rename = "koprMaxUnusedPercent",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_unused_percent: Option<u32>,
}

/// The default of [`MaintenanceParams::max_unused_percent`] (restic's `--max-unused`).
pub const DEFAULT_MAX_UNUSED_PERCENT: u32 = 5;

impl MaintenanceParams {
    /// Kopia's defaults: quick every hour, full every 24 hours, both enabled, no owner.
    pub fn kopia_default() -> Self {
        MaintenanceParams {
            owner: String::new(),
            quick: CycleParams {
                enabled: true,
                interval: Duration::from_secs(3600),
            },
            full: CycleParams {
                enabled: true,
                interval: Duration::from_secs(24 * 3600),
            },
            log_retention: LogRetention::kopia_default(),
            extend_object_locks: false,
            list_parallelism: 0,
            max_unused_percent: None,
        }
    }

    /// The effective unused share (percent) above which a pack is rewritten; 100 = never.
    pub fn effective_max_unused_percent(&self) -> u32 {
        self.max_unused_percent
            .unwrap_or(DEFAULT_MAX_UNUSED_PERCENT)
            .min(100)
    }
}

/// One run of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// When it started.
    #[serde(with = "crate::gotime")]
    pub start: DateTime<Utc>,
    /// When it ended.
    #[serde(with = "crate::gotime")]
    pub end: DateTime<Utc>,
    /// Whether it succeeded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub success: bool,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Task statistics (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Value>,
}

/// The maintenance schedule and run history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Schedule {
    /// When the next full cycle is due (`None`: now).
    #[serde(rename = "nextFullMaintenance", with = "go_time_or_zero", default)]
    pub next_full: Option<DateTime<Utc>>,
    /// When the next quick cycle is due (`None`: now).
    #[serde(rename = "nextQuickMaintenance", with = "go_time_or_zero", default)]
    pub next_quick: Option<DateTime<Utc>>,
    /// Runs of each task, newest first.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub runs: BTreeMap<String, Vec<RunInfo>>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, Vec<RunInfo>>, D::Error> {
    Ok(Option::<BTreeMap<String, Vec<RunInfo>>>::deserialize(d)?.unwrap_or_default())
}

impl Schedule {
    /// Records a run of `task`, newest first, keeping at most [`MAX_RETAINED_RUNS`].
    pub fn report_run(&mut self, task: &str, info: RunInfo) {
        let runs = self.runs.entry(task.to_string()).or_default();
        runs.insert(0, info);
        runs.truncate(MAX_RETAINED_RUNS);
    }

    /// The runs of `task`, newest first.
    pub fn runs_of(&self, task: &str) -> &[RunInfo] {
        self.runs.get(task).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Encrypts the schedule into the blob's bytes with a fresh random nonce.
    pub fn seal(&self, key: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        self.seal_with_nonce(key, &nonce)
    }

    /// Encrypts with a given nonce (tests).
    pub fn seal_with_nonce(&self, key: &[u8], nonce: &[u8; NONCE_LEN]) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self)
            .map_err(|e| FormatError::InvalidInput(format!("schedule JSON: {e}")))?;
        let cipher = Aes256Gcm::new_from_slice(key)
            .map_err(|_| FormatError::InvalidInput("bad schedule key length".into()))?;
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: &json,
                    aad: SCHEDULE_AAD,
                },
            )
            .map_err(|_| FormatError::InvalidInput("schedule too large".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts and parses the blob's bytes.
    pub fn open(key: &[u8], data: &[u8]) -> Result<Schedule> {
        if data.len() < NONCE_LEN {
            return Err(FormatError::Decrypt("invalid schedule blob".into()));
        }
        let cipher = Aes256Gcm::new_from_slice(key)
            .map_err(|_| FormatError::InvalidInput("bad schedule key length".into()))?;
        let (nonce, body) = data.split_at(NONCE_LEN);
        let json = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: SCHEDULE_AAD,
                },
            )
            .map_err(|_| FormatError::Decrypt("unable to decrypt schedule blob".into()))?;
        serde_json::from_slice(&json)
            .map_err(|e| FormatError::InvalidInput(format!("malformed schedule blob: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_json_has_kopias_shape() {
        let p = MaintenanceParams {
            owner: "alice@host".into(),
            ..MaintenanceParams::kopia_default()
        };
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(
            j,
            r#"{"owner":"alice@host","quick":{"enabled":true,"interval":3600000000000},"full":{"enabled":true,"interval":86400000000000},"logRetention":{"maxTotalSize":1073741824,"maxCount":10000,"maxAge":2592000000000000},"extendObjectLocks":false,"listParallelism":0}"#
        );
        let back: MaintenanceParams = serde_json::from_str(&j).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.effective_max_unused_percent(), 5);
    }

    #[test]
    fn max_unused_percent_is_an_extra_field_kopia_ignores() {
        let p = MaintenanceParams {
            max_unused_percent: Some(20),
            ..MaintenanceParams::kopia_default()
        };
        let j = serde_json::to_string(&p).unwrap();
        assert!(
            j.ends_with(r#""listParallelism":0,"koprMaxUnusedPercent":20}"#),
            "{j}"
        );
        let back: MaintenanceParams = serde_json::from_str(&j).unwrap();
        assert_eq!(back.effective_max_unused_percent(), 20);
        let over = MaintenanceParams {
            max_unused_percent: Some(250),
            ..MaintenanceParams::kopia_default()
        };
        assert_eq!(over.effective_max_unused_percent(), 100);
    }

    #[test]
    fn schedule_zero_times_and_runs_round_trip() {
        let s: Schedule = serde_json::from_str(
            r#"{"nextFullMaintenance":"0001-01-01T00:00:00Z","nextQuickMaintenance":"2024-11-01T18:29:04.5+02:00","runs":null}"#,
        )
        .unwrap();
        assert_eq!(s.next_full, None);
        assert_eq!(
            s.next_quick,
            Some(
                Utc.with_ymd_and_hms(2024, 11, 1, 16, 29, 4).unwrap()
                    + chrono::Duration::milliseconds(500)
            )
        );
        let mut s = s;
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        for i in 0..60 {
            s.report_run(
                "snapshot-gc",
                RunInfo {
                    start: t + chrono::Duration::seconds(i),
                    end: t + chrono::Duration::seconds(i + 1),
                    success: i % 2 == 0,
                    error: if i % 2 == 0 {
                        String::new()
                    } else {
                        "boom".into()
                    },
                    extra: None,
                },
            );
        }
        let runs = s.runs_of("snapshot-gc");
        assert_eq!(runs.len(), MAX_RETAINED_RUNS);
        assert_eq!(runs[0].start, t + chrono::Duration::seconds(59));
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.starts_with(r#"{"nextFullMaintenance":"0001-01-01T00:00:00Z","nextQuickMaintenance":"2024-11-01T16:29:04.5Z","runs":{"snapshot-gc":[{"start":"2024-01-02T03:05:04Z","end":"2024-01-02T03:05:05Z","error":"boom"}"#), "{j}");
    }

    #[test]
    fn schedule_blob_seals_and_opens() {
        let key = [7u8; 32];
        let s = Schedule {
            next_full: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
            ..Default::default()
        };
        let blob = s.seal_with_nonce(&key, &[1u8; 12]).unwrap();
        assert_eq!(&blob[..12], &[1u8; 12]);
        assert_eq!(Schedule::open(&key, &blob).unwrap(), s);
        // Wrong key, flipped bit, truncation: errors, never panics.
        assert!(Schedule::open(&[8u8; 32], &blob).is_err());
        let mut bad = blob.clone();
        bad[20] ^= 1;
        assert!(Schedule::open(&key, &bad).is_err());
        assert!(Schedule::open(&key, &blob[..5]).is_err());
        // The AAD is part of the format: sealing without it does not open.
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let json = serde_json::to_vec(&s).unwrap();
        let mut other = vec![1u8; 12];
        other.extend(
            cipher
                .encrypt(Nonce::from_slice(&[1u8; 12]), json.as_slice())
                .unwrap(),
        );
        assert!(Schedule::open(&key, &other).is_err());
    }
}
