//! `notification profile …` and `notification template …` (Kopia's commands, over
//! kopr-server's notification module), and the two hooks that notify after `snapshot create`
//! and `maintenance run`.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use kopr_format::snapshot::{SnapshotManifest, SourceInfo};
use kopr_repo::Repository;
use kopr_server::notification::{
    self as notify, events, EmailOptions, MethodConfig, Profile, WebhookOptions,
};

use super::{format_timestamp, Context};

/// `notification …`
#[derive(Debug, Subcommand)]
pub enum NotificationCommand {
    /// Manage notification profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Manage templates.
    #[command(subcommand)]
    Template(TemplateCommand),
}

/// `notification profile …`
// Parsed once per process: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Setup notifications.
    #[command(subcommand, visible_alias = "setup")]
    Configure(ConfigureCommand),
    /// List notification profiles.
    #[command(visible_alias = "ls")]
    List {
        /// Raw output (JSON).
        #[arg(long, alias = "json")]
        raw: bool,
    },
    /// Show notification profile.
    Show {
        /// Profile name.
        #[arg(long = "profile-name")]
        profile_name: String,
        /// Raw output (JSON).
        #[arg(long, alias = "json")]
        raw: bool,
    },
    /// Delete notification profile.
    #[command(visible_alias = "rm")]
    Delete {
        /// Profile name.
        #[arg(long = "profile-name")]
        profile_name: String,
    },
    /// Send test notification.
    #[command(visible_alias = "send-test-message")]
    Test {
        /// Profile name.
        #[arg(long = "profile-name")]
        profile_name: String,
    },
}

/// `notification profile configure …`
#[derive(Debug, Subcommand)]
pub enum ConfigureCommand {
    /// Webhook notification.
    Webhook(WebhookArgs),
    /// E-mail notification.
    Email(EmailArgs),
}

/// `configure email` flags (Kopia's).
#[derive(Debug, Args)]
pub struct EmailArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// SMTP server.
    #[arg(long = "smtp-server")]
    pub smtp_server: Option<String>,
    /// SMTP port.
    #[arg(long = "smtp-port")]
    pub smtp_port: Option<u16>,
    /// SMTP identity.
    #[arg(long = "smtp-identity")]
    pub smtp_identity: Option<String>,
    /// SMTP username.
    #[arg(long = "smtp-username")]
    pub smtp_username: Option<String>,
    /// SMTP password.
    #[arg(long = "smtp-password")]
    pub smtp_password: Option<String>,
    /// From address.
    #[arg(long = "mail-from")]
    pub mail_from: Option<String>,
    /// To address (comma-separated).
    #[arg(long = "mail-to")]
    pub mail_to: Option<String>,
    /// CC address (comma-separated).
    #[arg(long = "mail-cc")]
    pub mail_cc: Option<String>,
    /// Format of the message.
    #[arg(long, value_parser = ["txt", "html"])]
    pub format: Option<String>,
}

/// Flags of every `configure` method.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Profile name.
    #[arg(long = "profile-name")]
    pub profile_name: String,
    /// Test the notification.
    #[arg(long = "send-test-notification")]
    pub send_test_notification: bool,
    /// Minimum severity.
    #[arg(long = "min-severity", value_parser = ["verbose", "success", "report", "warning", "error"])]
    pub min_severity: Option<String>,
}

/// `configure webhook` flags.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Webhook endpoint URL.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// HTTP Method.
    #[arg(long, value_parser = ["POST", "PUT"])]
    pub method: Option<String>,
    /// HTTP Header (key:value).
    #[arg(long = "http-header")]
    pub http_header: Vec<String>,
    /// Format of the message.
    #[arg(long, value_parser = ["txt", "html"])]
    pub format: Option<String>,
}

/// `notification template …`
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List templates.
    List,
    /// Show template.
    Show {
        /// Template name.
        template: String,
        /// Show original template.
        #[arg(long)]
        original: bool,
    },
    /// Set the notification template.
    Set {
        /// Template name.
        template: String,
        /// Read new template from stdin.
        #[arg(long = "from-stdin", conflicts_with = "from_file")]
        from_stdin: bool,
        /// Read new template from file.
        #[arg(long = "from-file")]
        from_file: Option<PathBuf>,
    },
    /// Remove the notification template.
    #[command(visible_alias = "rm", alias = "delete")]
    Remove {
        /// Template name.
        template: String,
    },
}

/// Runs a `notification` subcommand.
pub fn run(ctx: &Context, cmd: NotificationCommand) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    match cmd {
        NotificationCommand::Profile(c) => profile(&repo, c),
        NotificationCommand::Template(c) => template(&repo, c),
    }
}

fn profile(repo: &Repository, cmd: ProfileCommand) -> Result<()> {
    match cmd {
        ProfileCommand::Configure(ConfigureCommand::Webhook(a)) => configure_webhook(repo, a),
        ProfileCommand::Configure(ConfigureCommand::Email(a)) => configure_email(repo, a),
        ProfileCommand::List { raw } => {
            let profiles = notify::list_profiles(repo)?;
            if raw {
                println!("{}", serde_json::to_string_pretty(&profiles)?);
                return Ok(());
            }
            if profiles.is_empty() {
                println!("No notification profiles configured.");
            }
            for p in profiles {
                println!(
                    "Profile {:?} Type {:?} Minimum Severity: {}\n  {}",
                    p.name,
                    p.method.kind,
                    notify::severity_name(p.min_severity),
                    p.summary()
                );
            }
            Ok(())
        }
        ProfileCommand::Show { profile_name, raw } => {
            let p = must_get(repo, &profile_name)?;
            if raw {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                println!(
                    "Profile {:?} Type {:?} Minimum Severity: {}\n{}",
                    p.name,
                    p.method.kind,
                    notify::severity_name(p.min_severity),
                    p.summary()
                );
            }
            Ok(())
        }
        ProfileCommand::Delete { profile_name } => {
            if !notify::delete_profile(repo, &profile_name)? {
                bail!("notification profile {profile_name:?} not found");
            }
            Ok(())
        }
        ProfileCommand::Test { profile_name } => {
            let p = must_get(repo, &profile_name)?;
            eprintln!("Sending test notification to {}", p.summary());
            notify::send_test(repo, &p).context("unable to send test notification")?;
            Ok(())
        }
    }
}

fn must_get(repo: &Repository, name: &str) -> Result<Profile> {
    notify::get_profile(repo, name)?
        .with_context(|| format!("notification profile {name:?} not found"))
}

/// The stored options and severity of profile `name` of `kind`, or defaults for a new one.
fn existing<T: serde::de::DeserializeOwned + Default>(
    repo: &Repository,
    name: &str,
    kind: &str,
) -> Result<(T, i32)> {
    match notify::get_profile(repo, name)? {
        Some(p) if p.method.kind != kind => {
            bail!("profile {name:?} already exists but is not of type {kind:?}")
        }
        Some(p) => Ok((
            serde_json::from_value::<T>(p.method.config.clone())
                .with_context(|| format!("the stored profile {name:?} is not of type {kind:?}"))?,
            p.min_severity,
        )),
        None => Ok((T::default(), 0)),
    }
}

/// Saves (after a test message, with `--send-test-notification`) profile `c` of `kind`.
fn save(
    repo: &Repository,
    c: &CommonArgs,
    kind: &str,
    config: serde_json::Value,
    mut severity: i32,
) -> Result<()> {
    if let Some(s) = &c.min_severity {
        severity = notify::severity_number(s).unwrap_or(0);
    }
    let p = Profile {
        name: c.profile_name.clone(),
        method: MethodConfig {
            kind: kind.into(),
            config,
        },
        min_severity: severity,
    };
    if c.send_test_notification {
        notify::send_test(repo, &p).context("unable to send test notification")?;
    }
    eprintln!(
        "Saving notification profile {:?} of type {kind:?} with severity {:?}.",
        p.name,
        notify::severity_name(severity)
    );
    notify::save_profile(repo, &p)?;
    Ok(())
}

fn configure_email(repo: &Repository, a: EmailArgs) -> Result<()> {
    let (mut opt, severity) = existing::<EmailOptions>(repo, &a.common.profile_name, "email")?;
    // An update changes only what was given, as Kopia's.
    let set = |dst: &mut String, v: Option<String>| {
        if let Some(v) = v {
            *dst = v;
        }
    };
    set(&mut opt.smtp_server, a.smtp_server);
    set(&mut opt.smtp_identity, a.smtp_identity);
    set(&mut opt.smtp_username, a.smtp_username);
    set(&mut opt.smtp_password, a.smtp_password);
    set(&mut opt.from, a.mail_from);
    set(&mut opt.to, a.mail_to);
    set(&mut opt.cc, a.mail_cc);
    set(&mut opt.format, a.format);
    if let Some(p) = a.smtp_port {
        opt.smtp_port = p;
    }
    opt.validate()?;
    save(
        repo,
        &a.common,
        "email",
        serde_json::to_value(&opt)?,
        severity,
    )
}

fn configure_webhook(repo: &Repository, a: WebhookArgs) -> Result<()> {
    let c = a.common;
    let (mut opt, severity) = existing::<WebhookOptions>(repo, &c.profile_name, "webhook")?;
    // An update changes only what was given, as Kopia's.
    if let Some(e) = a.endpoint {
        opt.endpoint = e;
    }
    if let Some(m) = a.method {
        opt.method = m;
    }
    if let Some(f) = a.format {
        opt.format = f;
    }
    if !a.http_header.is_empty() {
        for h in &a.http_header {
            if !h.contains(':') {
                bail!("invalid --http-header {h:?}: use key:value");
            }
        }
        opt.headers = a.http_header.join("\n");
    }
    opt.validate()?;
    save(repo, &c, "webhook", serde_json::to_value(&opt)?, severity)
}

fn template(repo: &Repository, cmd: TemplateCommand) -> Result<()> {
    match cmd {
        TemplateCommand::List => {
            println!("{:<30} {:<15} MODIFIED", "NAME", "TYPE");
            for t in notify::list_templates(repo)? {
                let (kind, modified) = match t.last_modified {
                    None => ("<built-in>", String::new()),
                    Some(m) => ("<customized>", format_timestamp(m)),
                };
                println!("{:<30} {:<15} {modified}", t.name, kind);
            }
            Ok(())
        }
        TemplateCommand::Show { template, original } => {
            let custom = if original {
                None
            } else {
                notify::get_template(repo, &template)?
            };
            let text = match custom {
                Some(t) => t,
                None => notify::built_in(&template)
                    .map(str::to_string)
                    .with_context(|| format!("template {template:?} not found"))?,
            };
            println!("{}", text.trim_end_matches('\n'));
            Ok(())
        }
        TemplateCommand::Set {
            template,
            from_stdin,
            from_file,
        } => {
            let text = match (from_stdin, from_file) {
                (_, Some(f)) => std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?,
                (true, None) => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
                (false, None) => bail!("give the new template with --from-file or --from-stdin"),
            };
            notify::set_template(repo, &template, &text)?;
            Ok(())
        }
        TemplateCommand::Remove { template } => {
            if !notify::remove_template(repo, &template)? {
                bail!("template {template:?} is not customized");
            }
            Ok(())
        }
    }
}

/// After one source's `snapshot create`: notifies the profiles (warnings on stderr when a
/// profile fails; the snapshot's own result is not changed).
pub fn snapshot_created(
    repo: &Repository,
    source: &SourceInfo,
    result: &kopr_repo::Result<SnapshotManifest>,
) {
    let (manifest, error) = match result {
        Ok(m) => (Some(m.clone()), String::new()),
        Err(e) => (None, e.to_string()),
    };
    let previous = manifest.as_ref().and_then(|m| {
        kopr_repo::snapshot::list_snapshots(repo, Some(source))
            .ok()?
            .into_iter()
            .rfind(|p| p.id != m.id && p.start_time < m.start_time)
    });
    let outcome = events::SnapshotOutcome {
        source: source.clone(),
        manifest,
        previous,
        error,
    };
    for w in events::notify_snapshots(repo, &[outcome]) {
        eprintln!("WARNING: unable to send notification: {w}");
    }
}

/// After `maintenance run`: notifies the profiles of its success or failure.
pub fn maintenance_ran(
    repo: &Repository,
    full: bool,
    start: chrono::DateTime<chrono::Utc>,
    result: &kopr_repo::Result<impl Sized>,
) {
    let details = if full {
        "Full maintenance"
    } else {
        "Quick maintenance"
    };
    let r = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
    for w in events::notify_maintenance(repo, details, start, chrono::Utc::now(), r) {
        eprintln!("WARNING: unable to send notification: {w}");
    }
}
