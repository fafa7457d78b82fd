//! GCS credentials and access tokens: finding the credentials as Google's clients do
//! (options, `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's application-default file, the VM's
//! metadata server), signing a service account's JWT, and getting (and caching) an OAuth2
//! access token from the token endpoint.

use std::fmt;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use serde::Deserialize;

use super::{
    GcsOptions, GcsStorage, DEFAULT_TOKEN_URI, METADATA_HOST, METADATA_TOKEN_PATH, SCOPE_FULL,
    SCOPE_READ,
};
use crate::http;
use crate::{BlobError, Result};

/// The fields of a token request's form.
type TokenForm = Vec<(&'static str, String)>;

/// The parts of a credentials JSON kopr uses.
#[derive(Deserialize)]
pub(super) struct Credentials {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    token_uri: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    refresh_token: String,
}

/// How requests get their bearer token.
pub(super) enum Auth {
    None,
    ServiceAccount {
        email: String,
        key: ring::signature::RsaKeyPair,
        token_uri: String,
    },
    User {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_uri: String,
    },
    /// The VM's service account, through the metadata server at this token URL.
    Metadata {
        url: String,
    },
}

pub(super) fn creds_error(m: impl fmt::Display) -> BlobError {
    BlobError::Other(format!(
        "invalid GCS credentials ({m}): use --credentials-file with a service account key JSON (or GOOGLE_APPLICATION_CREDENTIALS)"
    ))
}

impl GcsStorage {
    /// The credentials, found as Google's clients find their default ones: the options', else
    /// `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's application-default file, else the
    /// metadata server (`env` reads the environment).
    pub(super) fn auth(opts: &GcsOptions, env: &dyn Fn(&str) -> Option<String>) -> Result<Auth> {
        let json: serde_json::Value = match (&opts.credentials, opts.credentials_file.as_str()) {
            (Some(v), _) => v.clone(),
            (None, file) => {
                let adc = || {
                    let dir = env("CLOUDSDK_CONFIG")
                        .map(std::path::PathBuf::from)
                        .or_else(|| {
                            env("HOME").map(|h| std::path::Path::new(&h).join(".config/gcloud"))
                        })?;
                    let f = dir.join("application_default_credentials.json");
                    f.is_file().then(|| f.to_string_lossy().into_owned())
                };
                let file = if file.is_empty() {
                    env("GOOGLE_APPLICATION_CREDENTIALS")
                        .or_else(adc)
                        .unwrap_or_default()
                } else {
                    file.to_string()
                };
                if file.is_empty() {
                    let host = env("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.into());
                    let scope = if opts.read_only {
                        SCOPE_READ
                    } else {
                        SCOPE_FULL
                    };
                    return Ok(Auth::Metadata {
                        url: format!("http://{host}{METADATA_TOKEN_PATH}?scopes={scope}"),
                    });
                }
                let bytes = std::fs::read(&file)
                    .map_err(|e| creds_error(format!("cannot read {file}: {e}")))?;
                serde_json::from_slice(&bytes).map_err(|e| creds_error(format!("{file}: {e}")))?
            }
        };
        let c: Credentials = serde_json::from_value(json).map_err(creds_error)?;
        let token_uri = if c.token_uri.is_empty() {
            DEFAULT_TOKEN_URI.to_string()
        } else {
            c.token_uri
        };
        match c.kind.as_str() {
            "service_account" => {
                let der = rustls_pemfile::private_key(&mut c.private_key.as_bytes())
                    .ok()
                    .flatten()
                    .ok_or_else(|| creds_error("no private_key PEM"))?;
                let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_der())
                    .map_err(|e| creds_error(format!("private_key: {e}")))?;
                Ok(Auth::ServiceAccount {
                    email: c.client_email,
                    key,
                    token_uri,
                })
            }
            "authorized_user" => Ok(Auth::User {
                client_id: c.client_id,
                client_secret: c.client_secret,
                refresh_token: c.refresh_token,
                token_uri,
            }),
            other => Err(creds_error(format!(
                "unsupported credentials type {other:?}"
            ))),
        }
    }

    /// The signed JWT a service account exchanges for a token (RS256).
    fn jwt(
        email: &str,
        key: &ring::signature::RsaKeyPair,
        aud: &str,
        scope: &str,
    ) -> Result<String> {
        let now = Utc::now().timestamp();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::json!({
                "iss": email, "scope": scope, "aud": aud, "iat": now, "exp": now + 3600
            })
            .to_string(),
        );
        let input = format!("{header}.{claims}");
        let mut sig = vec![0u8; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .map_err(|_| creds_error("cannot sign with private_key"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// A valid access token (cached until a minute before it expires).
    pub(super) fn token(&self) -> Result<Option<String>> {
        let Some((uri, form)) = self.token_request()? else {
            return Ok(None);
        };
        let mut cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(Some(t.clone()));
            }
        }
        let body = self.fetch_token(&uri, &form)?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
            BlobError::Other(format!("GCS token endpoint {uri}: invalid answer: {e}"))
        })?;
        let token = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .ok_or_else(|| BlobError::Other(format!("GCS token endpoint {uri}: no access_token")))?
            .to_string();
        let secs = v.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(3600);
        *cached = Some((
            token.clone(),
            Instant::now() + Duration::from_secs(secs.saturating_sub(60)),
        ));
        Ok(Some(token))
    }

    /// Where to ask for a token and the form to send (`None` without authentication).
    fn token_request(&self) -> Result<Option<(String, TokenForm)>> {
        Ok(Some(match &self.auth {
            Auth::None => return Ok(None),
            Auth::Metadata { url } => (url.clone(), Vec::new()),
            Auth::ServiceAccount {
                email,
                key,
                token_uri,
            } => {
                let scope = if self.opts.read_only {
                    SCOPE_READ
                } else {
                    SCOPE_FULL
                };
                let jwt = Self::jwt(email, key, token_uri, scope)?;
                (
                    token_uri.clone(),
                    vec![
                        (
                            "grant_type",
                            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
                        ),
                        ("assertion", jwt),
                    ],
                )
            }
            Auth::User {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            } => (
                token_uri.clone(),
                vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("client_id", client_id.clone()),
                    ("client_secret", client_secret.clone()),
                    ("refresh_token", refresh_token.clone()),
                ],
            ),
        }))
    }

    /// Asks the token endpoint (or the metadata server) and returns its JSON answer.
    fn fetch_token(&self, uri: &str, form: &TokenForm) -> Result<String> {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let metadata = matches!(self.auth, Auth::Metadata { .. });
        let sent = if metadata {
            self.agent.get(uri).set("metadata-flavor", "Google").call()
        } else {
            self.agent.post(uri).send_form(&pairs)
        };
        let resp = match sent {
            Ok(r) => r,
            Err(ureq::Error::Transport(t)) if metadata => {
                let detail = t.to_string();
                return Err(BlobError::Other(format!(
                    "no GCS credentials: use --credentials-file (or GOOGLE_APPLICATION_CREDENTIALS) with a service account key JSON; the metadata server of a Google VM ({}) was not reachable either: {detail}",
                    uri.split('/').nth(2).unwrap_or(METADATA_HOST)
                )));
            }
            Err(ureq::Error::Status(code, r)) => return Err(token_refused(uri, code, r, metadata)),
            Err(ureq::Error::Transport(t)) => {
                return Err(http::transport_error(
                    "GCS token",
                    uri,
                    "token",
                    &t,
                    self.timeouts,
                ))
            }
        };
        http::read_doc(resp, "GCS", "token")
    }
}

/// The error of a token endpoint's HTTP `code` answer `r`.
fn token_refused(uri: &str, code: u16, r: ureq::Response, metadata: bool) -> BlobError {
    let body = http::read_doc(r, "GCS", "token").unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("error_description")
                .or_else(|| v.get("error"))
                .and_then(|e| e.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    if code >= 500 || code == 429 {
        BlobError::Transient(format!("GCS token endpoint {uri}: HTTP {code} {msg}"))
    } else {
        BlobError::Permission(if metadata {
            format!("the metadata server gave no GCS token (HTTP {code} {msg}): give the VM a service account with storage access, or use --credentials-file")
        } else {
            format!("Google rejected the GCS credentials (HTTP {code} {msg}): check --credentials-file (the service account key may be revoked)")
        })
    }
}
