//! The options of an S3 connection (as stored in the connection config, Kopia's field names)
//! and its network time limits.

use super::*;

/// Overrides both network time limits ([`Timeouts`]), in whole seconds.
pub const TIMEOUT_ENV: &str = "KOPR_S3_TIMEOUT_SECS";

/// How long a request may wait on the network before it fails as a (transient) timeout, so a
/// server that accepts connections but never answers cannot hang kopr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the TCP connection.
    pub connect: Duration,
    /// For each read or write on the connection (not the whole transfer).
    pub io: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            io: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    /// The defaults, or both limits set to `KOPR_S3_TIMEOUT_SECS` when that is set.
    pub fn from_env() -> Result<Timeouts> {
        Timeouts::from_var(std::env::var(TIMEOUT_ENV).ok().as_deref())
    }

    pub(super) fn from_var(v: Option<&str>) -> Result<Timeouts> {
        let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Timeouts::default());
        };
        match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Timeouts {
                connect: Duration::from_secs(n),
                io: Duration::from_secs(n),
            }),
            _ => Err(BlobError::Other(format!(
                "invalid {TIMEOUT_ENV}={v:?}: expected a whole number of seconds above 0"
            ))),
        }
    }
}

/// Where and how to reach the bucket; serialized with Kopia's field names.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Options {
    /// Bucket name.
    #[serde(rename = "bucket")]
    pub bucket: String,
    /// Prepended to every blob id (Kopia adds no separator).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// `host[:port]`; AWS when empty.
    #[serde(default)]
    pub endpoint: String,
    /// Plain HTTP.
    #[serde(rename = "doNotUseTLS", default, skip_serializing_if = "is_false")]
    pub do_not_use_tls: bool,
    /// Accept any server certificate.
    #[serde(rename = "doNotVerifyTLS", default, skip_serializing_if = "is_false")]
    pub do_not_verify_tls: bool,
    /// PEM of the CA that signed the server's certificate (base64 in JSON, as Go's `[]byte`).
    #[serde(
        rename = "rootCA",
        default,
        skip_serializing_if = "Option::is_none",
        with = "b64_opt"
    )]
    pub root_ca: Option<Vec<u8>>,
    /// Access key id; `AWS_ACCESS_KEY_ID` when empty.
    #[serde(rename = "accessKeyID", default)]
    pub access_key_id: String,
    /// Secret access key; `AWS_SECRET_ACCESS_KEY` when empty.
    #[serde(rename = "secretAccessKey", default)]
    pub secret_access_key: String,
    /// Session token of temporary credentials; `AWS_SESSION_TOKEN` when empty and the keys
    /// come from the environment too.
    #[serde(rename = "sessionToken", default)]
    pub session_token: String,
    /// Signing region; `AWS_REGION`, else `us-east-1`, when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

mod b64_opt {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.filter(|s| !s.is_empty())
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("do_not_use_tls", &self.do_not_use_tls)
            .field("do_not_verify_tls", &self.do_not_verify_tls)
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl S3Options {
    /// Normalizes what a user may type: a scheme on the endpoint (`http://` means no TLS),
    /// a trailing slash.
    pub fn normalized(mut self) -> S3Options {
        let mut ep = self.endpoint.trim().to_string();
        if let Some(rest) = ep.strip_prefix("https://") {
            ep = rest.to_string();
        } else if let Some(rest) = ep.strip_prefix("http://") {
            ep = rest.to_string();
            self.do_not_use_tls = true;
        }
        self.endpoint = ep.trim_end_matches('/').to_string();
        self
    }
}

pub(super) fn env_or(v: &str, var: &str) -> String {
    if v.is_empty() {
        std::env::var(var).unwrap_or_default()
    } else {
        v.to_string()
    }
}
