//! Notifications as Kopia has them: profiles stored as manifests (`type:
//! notificationProfile`, label `profile`; JSON `{"profile","method":{"type","config"},
//! "minSeverity"}`), templates overridden per repository (`type: notificationTemplate`, label
//! `template`; JSON `{"template"}`), Kopia's template names (`snapshot-report.txt`,
//! `generic-error.html`, …, with kopr's `maintenance-report.*` beside them) and variables
//! (`.Hostname`, `.EventTime`, `.EventArgs…`), Kopia's severities. A template renders to a
//! message: `Subject:` and other header lines, a blank line, the body. Senders: webhook (the
//! body as the request body, `Subject` and the template's headers as HTTP headers) and e-mail
//! (SMTP with `lettre`, STARTTLS when the server offers it, as Go's `smtp.SendMail`).

mod delivery;
pub mod events;
pub mod template;

pub use delivery::{deliver, parse_message, send, send_test, send_to, Message};

use std::collections::BTreeMap;

use kopr_format::labels;
use kopr_repo::Repository;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error of notifications.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] kopr_repo::RepoError),
    /// A bad profile, template or option.
    #[error("{0}")]
    Invalid(String),
    /// Sending failed.
    #[error("{0}")]
    Send(String),
}

type Result<T> = std::result::Result<T, NotifyError>;

/// Kopia's severities, by name.
pub const SEVERITIES: [(&str, i32); 5] = [
    ("verbose", -100),
    ("success", -10),
    ("report", 0),
    ("warning", 10),
    ("error", 20),
];

/// The number of a severity name.
pub fn severity_number(name: &str) -> Option<i32> {
    SEVERITIES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of a severity number (the number itself when it has none).
pub fn severity_name(v: i32) -> String {
    SEVERITIES
        .iter()
        .find(|(_, n)| *n == v)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| v.to_string())
}

/// How a profile sends: Kopia's `MethodConfig`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MethodConfig {
    /// `webhook`, `email`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The sender's options.
    pub config: Value,
}

/// A notification profile: Kopia's `notifyprofile.Config`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    /// Its name.
    #[serde(rename = "profile")]
    pub name: String,
    /// How it sends.
    pub method: MethodConfig,
    /// Messages below this severity are not sent.
    #[serde(rename = "minSeverity", default)]
    pub min_severity: i32,
}

/// Kopia's webhook options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WebhookOptions {
    /// URL.
    pub endpoint: String,
    /// POST or PUT.
    #[serde(default)]
    pub method: String,
    /// `txt` or `html`.
    #[serde(default)]
    pub format: String,
    /// `Key: value` lines.
    #[serde(default)]
    pub headers: String,
}

impl WebhookOptions {
    /// Fills defaults (POST, txt) and checks the endpoint, as Kopia.
    pub fn validate(&mut self) -> Result<()> {
        if self.method.is_empty() {
            self.method = "POST".into();
        }
        if self.method != "POST" && self.method != "PUT" {
            return Err(NotifyError::Invalid(format!(
                "invalid method {:?}: use POST or PUT",
                self.method
            )));
        }
        check_format(&mut self.format)?;
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(NotifyError::Invalid(
                "invalid endpoint: it must start with http:// or https://".into(),
            ));
        }
        Ok(())
    }
}

/// Kopia's e-mail options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EmailOptions {
    /// SMTP server host.
    #[serde(rename = "smtpServer")]
    pub smtp_server: String,
    /// SMTP port (default 587).
    #[serde(rename = "smtpPort", default)]
    pub smtp_port: u16,
    /// SMTP identity (usually empty).
    #[serde(rename = "smtpIdentity", default)]
    pub smtp_identity: String,
    /// SMTP user name (empty: no authentication).
    #[serde(rename = "smtpUsername", default)]
    pub smtp_username: String,
    /// SMTP password.
    #[serde(rename = "smtpPassword", default)]
    pub smtp_password: String,
    /// From address.
    #[serde(default)]
    pub from: String,
    /// To addresses, comma-separated.
    #[serde(default)]
    pub to: String,
    /// Cc addresses, comma-separated.
    #[serde(default)]
    pub cc: String,
    /// `html` (default) or `txt`.
    #[serde(default)]
    pub format: String,
}

impl EmailOptions {
    /// Fills defaults (port 587, html) and checks the required fields, as Kopia.
    pub fn validate(&mut self) -> Result<()> {
        if self.smtp_port == 0 {
            self.smtp_port = 587;
        }
        if self.smtp_server.is_empty() {
            return Err(NotifyError::Invalid("SMTP server must be provided".into()));
        }
        if self.from.is_empty() {
            return Err(NotifyError::Invalid("From address must be provided".into()));
        }
        if self.to.is_empty() {
            return Err(NotifyError::Invalid("To address must be provided".into()));
        }
        if self.format.is_empty() {
            self.format = "html".into();
        }
        check_format(&mut self.format)
    }

    fn send(&self, msg: &Message) -> Result<()> {
        use lettre::message::header::ContentType;
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        use lettre::Transport as _;
        let addr = |a: &str| {
            a.trim()
                .parse::<lettre::message::Mailbox>()
                .map_err(|e| NotifyError::Invalid(format!("invalid e-mail address {a:?}: {e}")))
        };
        let mut b = lettre::Message::builder()
            .from(addr(&self.from)?)
            .subject(msg.subject.clone());
        for to in self.to.split(',').filter(|a| !a.trim().is_empty()) {
            b = b.to(addr(to)?);
        }
        for cc in self.cc.split(',').filter(|a| !a.trim().is_empty()) {
            b = b.cc(addr(cc)?);
        }
        let email = b
            .header(if self.format == "html" {
                ContentType::TEXT_HTML
            } else {
                ContentType::TEXT_PLAIN
            })
            .body(msg.body.clone())
            .map_err(|e| NotifyError::Invalid(format!("cannot build the e-mail: {e}")))?;
        let tls = TlsParameters::new(self.smtp_server.clone())
            .map_err(|e| NotifyError::Send(format!("cannot set up TLS: {e}")))?;
        // As Go's smtp.SendMail: STARTTLS when the server offers it.
        let mut t = lettre::SmtpTransport::builder_dangerous(&self.smtp_server)
            .port(self.smtp_port)
            .tls(Tls::Opportunistic(tls))
            .timeout(Some(std::time::Duration::from_secs(30)));
        if !self.smtp_username.is_empty() {
            t = t.credentials(Credentials::new(
                self.smtp_username.clone(),
                self.smtp_password.clone(),
            ));
        }
        t.build()
            .send(&email)
            .map(|_| ())
            .map_err(|e| NotifyError::Send(format!("error sending e-mail notification: {e}")))
    }
}

fn check_format(f: &mut String) -> Result<()> {
    match f.as_str() {
        "" => {
            *f = "txt".into();
            Ok(())
        }
        "txt" | "html" => Ok(()),
        other => Err(NotifyError::Invalid(format!(
            "invalid format {other:?}: use txt or html"
        ))),
    }
}

impl Profile {
    /// The message format the profile wants (`txt` or `html`).
    pub fn format(&self) -> String {
        let default = if self.method.kind == "email" {
            "html"
        } else {
            "txt"
        };
        self.method
            .config
            .get("format")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
            .unwrap_or(default)
            .to_string()
    }

    /// One line saying where it sends.
    pub fn summary(&self) -> String {
        let c = &self.method.config;
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        match self.method.kind.as_str() {
            "webhook" => format!(
                "Webhook {} {} Format {:?}",
                s("method"),
                s("endpoint"),
                self.format()
            ),
            "email" => format!(
                "SMTP server: {:?}, Mail from: {:?} Mail to: {:?} Format: {:?}",
                s("smtpServer"),
                s("from"),
                s("to"),
                self.format()
            ),
            other => format!("{other} sender"),
        }
    }
}

const PROFILE_TYPE: &str = "notificationProfile";
const TEMPLATE_TYPE: &str = "notificationTemplate";

fn profile_labels(name: &str) -> BTreeMap<String, String> {
    let mut l = labels::of_type(PROFILE_TYPE);
    l.insert("profile".to_string(), name.to_string());
    l
}

fn template_labels(name: &str) -> BTreeMap<String, String> {
    let mut l = labels::of_type(TEMPLATE_TYPE);
    l.insert("template".to_string(), name.to_string());
    l
}

/// Every profile, by name.
pub fn list_profiles(repo: &Repository) -> Result<Vec<Profile>> {
    let labels = labels::of_type(PROFILE_TYPE);
    let mut by_name: BTreeMap<String, Profile> = BTreeMap::new();
    for e in repo.manifests().find(&labels)? {
        let p: Profile = serde_json::from_str(e.data.get()).map_err(|err| {
            NotifyError::Invalid(format!("notification profile {} is malformed: {err}", e.id))
        })?;
        // Oldest first: the newest of a name wins.
        by_name.insert(p.name.clone(), p);
    }
    Ok(by_name.into_values().collect())
}

/// One profile.
pub fn get_profile(repo: &Repository, name: &str) -> Result<Option<Profile>> {
    let found = repo.manifests().find(&profile_labels(name))?;
    match found.last() {
        None => Ok(None),
        Some(e) => serde_json::from_str(e.data.get()).map(Some).map_err(|err| {
            NotifyError::Invalid(format!("notification profile {name:?} is malformed: {err}"))
        }),
    }
}

fn replace(
    repo: &Repository,
    labels: BTreeMap<String, String>,
    payload: Option<&impl Serialize>,
) -> Result<bool> {
    let old = repo.manifests().find(&labels)?;
    if let Some(p) = payload {
        repo.manifests().put(labels, p)?;
    }
    for e in &old {
        repo.manifests().delete(&e.id)?;
    }
    repo.flush()?;
    Ok(!old.is_empty())
}

/// Saves a profile, replacing the one of the same name.
pub fn save_profile(repo: &Repository, p: &Profile) -> Result<()> {
    replace(repo, profile_labels(&p.name), Some(p)).map(|_| ())
}

/// Deletes a profile; whether it existed.
pub fn delete_profile(repo: &Repository, name: &str) -> Result<bool> {
    replace(repo, profile_labels(name), None::<&Profile>)
}

/// The templates kopr ships, by name.
pub const BUILT_IN: [(&str, &str); 8] = [
    (
        "generic-error.html",
        include_str!("templates/generic-error.html"),
    ),
    (
        "generic-error.txt",
        include_str!("templates/generic-error.txt"),
    ),
    (
        "maintenance-report.html",
        include_str!("templates/maintenance-report.html"),
    ),
    (
        "maintenance-report.txt",
        include_str!("templates/maintenance-report.txt"),
    ),
    (
        "snapshot-report.html",
        include_str!("templates/snapshot-report.html"),
    ),
    (
        "snapshot-report.txt",
        include_str!("templates/snapshot-report.txt"),
    ),
    (
        "test-notification.html",
        include_str!("templates/test-notification.html"),
    ),
    (
        "test-notification.txt",
        include_str!("templates/test-notification.txt"),
    ),
];

/// The built-in text of a template.
pub fn built_in(name: &str) -> Option<&'static str> {
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A template, as `notification template list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TemplateInfo {
    /// Name.
    pub name: String,
    /// When it was customized (`None`: built in).
    #[serde(rename = "lastModified", skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether it is the built-in text.
    #[serde(rename = "isBuiltIn", skip_serializing_if = "std::ops::Not::not")]
    pub is_built_in: bool,
}

#[derive(Serialize, Deserialize)]
struct TemplateManifest {
    template: String,
}

/// Every template, built in or customized, by name.
pub fn list_templates(repo: &Repository) -> Result<Vec<TemplateInfo>> {
    let mut out: BTreeMap<String, TemplateInfo> = BUILT_IN
        .iter()
        .map(|(n, _)| {
            (
                n.to_string(),
                TemplateInfo {
                    name: n.to_string(),
                    last_modified: None,
                    is_built_in: true,
                },
            )
        })
        .collect();
    let labels = labels::of_type(TEMPLATE_TYPE);
    for e in repo.manifests().find(&labels)? {
        let name = e.labels.get("template").cloned().unwrap_or_default();
        out.insert(
            name.clone(),
            TemplateInfo {
                name,
                last_modified: Some(e.modified),
                is_built_in: false,
            },
        );
    }
    Ok(out.into_values().collect())
}

/// The customized text of a template, if any.
pub fn get_template(repo: &Repository, name: &str) -> Result<Option<String>> {
    let found = repo.manifests().find(&template_labels(name))?;
    match found.last() {
        None => Ok(None),
        Some(e) => serde_json::from_str::<TemplateManifest>(e.data.get())
            .map(|t| Some(t.template))
            .map_err(|err| NotifyError::Invalid(format!("template {name:?} is malformed: {err}"))),
    }
}

/// Customizes a template (its text must parse).
pub fn set_template(repo: &Repository, name: &str, text: &str) -> Result<()> {
    template::Template::parse(text).map_err(|e| NotifyError::Invalid(e.to_string()))?;
    replace(
        repo,
        template_labels(name),
        Some(&TemplateManifest {
            template: text.to_string(),
        }),
    )
    .map(|_| ())
}

/// Goes back to the built-in text; whether the template was customized.
pub fn remove_template(repo: &Repository, name: &str) -> Result<bool> {
    replace(repo, template_labels(name), None::<&TemplateManifest>)
}

/// The text that applies to `profile` for `base` (`snapshot-report`) in `format`: the
/// profile's own (`PROFILE.base.format`), the repository's, then the built-in one.
pub fn resolve_template(
    repo: &Repository,
    profile: &str,
    base: &str,
    format: &str,
) -> Result<String> {
    for name in [
        format!("{profile}.{base}.{format}"),
        format!("{base}.{format}"),
    ] {
        if let Some(t) = get_template(repo, &name)? {
            return Ok(t);
        }
    }
    built_in(&format!("{base}.{format}"))
        .map(str::to_string)
        .ok_or_else(|| NotifyError::Invalid(format!("no template {base}.{format}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_template_parses_and_renders() {
        for (name, text) in BUILT_IN {
            let t = template::Template::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let args = if name.starts_with("snapshot") {
                events::snapshot_report(&[], "h")
            } else {
                events::error_info(
                    "Maintenance",
                    "d",
                    chrono::Utc::now(),
                    chrono::Utc::now(),
                    "boom",
                )
            };
            let out = t.execute(&events::template_args(args)).unwrap();
            let m = parse_message(&out, 0).unwrap();
            assert!(m.subject.starts_with("kopr: "), "{name}: {}", m.subject);
            assert!(!m.body.contains("<no value>"), "{name}: {}", m.body);
        }
    }

    #[test]
    fn webhook_options_are_checked() {
        let mut o = WebhookOptions {
            endpoint: "http://127.0.0.1:1/x".into(),
            ..Default::default()
        };
        o.validate().unwrap();
        assert_eq!((o.method.as_str(), o.format.as_str()), ("POST", "txt"));
        o.endpoint = "ftp://x".into();
        assert!(o.validate().is_err());
        o.endpoint = "http://x".into();
        o.format = "md".into();
        assert!(o.validate().is_err());
    }

    #[test]
    fn messages_split_into_headers_and_body() {
        let m = parse_message("Subject: hi\nX-A: b\n\nline1\nline2", 20).unwrap();
        assert_eq!(m.subject, "hi");
        assert_eq!(m.headers.get("X-A").map(String::as_str), Some("b"));
        assert_eq!(m.body, "line1\nline2");
        assert!(parse_message("Subject: x\n\n", 0).is_err());
    }
}
