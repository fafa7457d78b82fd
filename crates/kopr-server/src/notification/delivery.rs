//! Delivering notifications: a rendered template split into a message, sent through a
//! profile's method (webhook or e-mail), to every profile whose minimum severity it reaches.

use super::*;

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Subject.
    pub subject: String,
    /// Other header lines.
    pub headers: BTreeMap<String, String>,
    /// Severity number.
    pub severity: i32,
    /// Body.
    pub body: String,
}

/// Splits a rendered template into headers and body.
pub fn parse_message(text: &str, severity: i32) -> Result<Message> {
    let mut subject = String::new();
    let mut headers = BTreeMap::new();
    let mut lines = text.lines();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        if let Some(s) = line.strip_prefix("Subject:") {
            subject = s.trim().to_string();
        } else if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let body: Vec<&str> = lines.collect();
    if body.is_empty() {
        return Err(NotifyError::Invalid("no body found in message".into()));
    }
    Ok(Message {
        subject,
        headers,
        severity,
        body: body.join("\n"),
    })
}

/// Sends `msg` through `profile`.
pub fn deliver(profile: &Profile, msg: &Message) -> Result<()> {
    match profile.method.kind.as_str() {
        "webhook" => {
            let mut o: WebhookOptions = serde_json::from_value(profile.method.config.clone())
                .map_err(|e| NotifyError::Invalid(format!("invalid webhook options: {e}")))?;
            o.validate()?;
            let agent = ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(30))
                .build();
            let mut req = agent
                .request(&o.method, &o.endpoint)
                .set("Subject", &msg.subject);
            for l in o.headers.lines() {
                if let Some((k, v)) = l.trim().split_once(':') {
                    req = req.set(k.trim(), v.trim());
                }
            }
            for (k, v) in &msg.headers {
                req = req.set(k, v);
            }
            match req.send_string(&msg.body) {
                Ok(r) if r.status() == 200 => Ok(()),
                Ok(r) => Err(NotifyError::Send(format!(
                    "error sending webhook notification: {} {}",
                    r.status(),
                    r.status_text()
                ))),
                Err(ureq::Error::Status(code, r)) => Err(NotifyError::Send(format!(
                    "error sending webhook notification: {code} {}",
                    r.status_text()
                ))),
                Err(e) => Err(NotifyError::Send(format!(
                    "error sending webhook notification: {e}"
                ))),
            }
        }
        "email" => {
            let mut o: EmailOptions = serde_json::from_value(profile.method.config.clone())
                .map_err(|e| NotifyError::Invalid(format!("invalid e-mail options: {e}")))?;
            o.validate()?;
            o.send(msg)
        }
        other => Err(NotifyError::Invalid(format!(
            "notification method {other:?} is not supported by kopr yet"
        ))),
    }
}

/// Renders `base` for `profile` over `event_args` and sends it.
pub fn send_to(
    repo: &Repository,
    profile: &Profile,
    base: &str,
    event_args: Value,
    severity: i32,
) -> Result<()> {
    let text = resolve_template(repo, &profile.name, base, &profile.format())?;
    let t = template::Template::parse(&text).map_err(|e| NotifyError::Invalid(e.to_string()))?;
    let rendered = t
        .execute(&events::template_args(event_args))
        .map_err(|e| NotifyError::Invalid(e.to_string()))?;
    let msg = parse_message(&rendered, severity)?;
    deliver(profile, &msg)
}

/// Sends `base` to every profile whose minimum severity `severity` reaches; returns the
/// errors of the profiles that failed (one line each), after trying all of them.
pub fn send(repo: &Repository, base: &str, event_args: Value, severity: i32) -> Vec<String> {
    let profiles = match list_profiles(repo) {
        Ok(p) => p,
        Err(e) => return vec![format!("unable to list notification profiles: {e}")],
    };
    profiles
        .iter()
        .filter(|p| severity >= p.min_severity)
        .filter_map(|p| {
            send_to(repo, p, base, event_args.clone(), severity)
                .err()
                .map(|e| format!("notification profile {:?}: {e}", p.name))
        })
        .collect()
}

/// Sends the test message through `profile`.
pub fn send_test(repo: &Repository, profile: &Profile) -> Result<()> {
    send_to(
        repo,
        profile,
        "test-notification",
        Value::Object(Default::default()),
        severity_number("success").unwrap_or(-10),
    )
}
