//! `policy set | show | list | edit | delete | export | import`.

use anyhow::{anyhow, bail, Context as _, Result};
use kopr_format::policy::Policy;
use kopr_format::snapshot::SourceInfo;
use kopr_repo::policy;

use super::Context;
use crate::app::{PolicyCommand, PolicySetArgs};
use crate::config::ConnectionConfig;

/// Parses a policy target: `--global`, a local path, `user@host[:path]`, `@host`.
pub fn parse_target(
    cfg: &ConnectionConfig,
    target: Option<&str>,
    global: bool,
) -> Result<SourceInfo> {
    match (target, global) {
        (None, true) => Ok(SourceInfo::default()),
        (Some(_), true) => bail!("--global cannot be combined with a target"),
        (None, false) => bail!("specify a target (path, user@host[:path], @host) or --global"),
        (Some("(global)"), false) => Ok(SourceInfo::default()),
        (Some(t), false) => {
            if let Some(host) = t.strip_prefix('@') {
                return Ok(SourceInfo {
                    host: host.to_string(),
                    ..Default::default()
                });
            }
            if let Some((user, rest)) = t.split_once('@') {
                let (host, path) = rest.split_once(':').unwrap_or((rest, ""));
                if host.is_empty() {
                    bail!("invalid hostname in {t:?}");
                }
                return Ok(SourceInfo {
                    host: host.into(),
                    user_name: user.into(),
                    path: path.into(),
                });
            }
            let abs =
                std::fs::canonicalize(t).with_context(|| format!("invalid directory {t:?}"))?;
            Ok(SourceInfo {
                host: cfg.hostname.clone(),
                user_name: cfg.username.clone(),
                path: abs.to_string_lossy().into_owned(),
            })
        }
    }
}

fn opt_int(v: &Option<String>, field: &mut Option<i64>, name: &str) -> Result<bool> {
    let Some(v) = v else { return Ok(false) };
    *field = if v == "inherit" {
        None
    } else {
        Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| anyhow!("invalid --{name} {v:?}: use a number or 'inherit'"))?,
        )
    };
    Ok(true)
}

fn apply(p: &mut Policy, a: &PolicySetArgs) -> Result<bool> {
    let r = &mut p.retention;
    let mut changed = false;
    changed |= opt_int(&a.keep_latest, &mut r.keep_latest, "keep-latest")?;
    changed |= opt_int(&a.keep_hourly, &mut r.keep_hourly, "keep-hourly")?;
    changed |= opt_int(&a.keep_daily, &mut r.keep_daily, "keep-daily")?;
    changed |= opt_int(&a.keep_weekly, &mut r.keep_weekly, "keep-weekly")?;
    changed |= opt_int(&a.keep_monthly, &mut r.keep_monthly, "keep-monthly")?;
    changed |= opt_int(&a.keep_annual, &mut r.keep_annual, "keep-annual")?;
    if let Some(c) = &a.compression {
        p.compression.compressor_name = match c.as_str() {
            "inherit" => String::new(),
            "none" => "none".into(),
            name if kopr_format::compression::by_name(name).is_some_and(|c| c.is_supported()) => {
                name.into()
            }
            name => bail!("unknown compression algorithm {name:?}"),
        };
        changed = true;
    }
    for (src, dst) in [
        (&a.add_never_compress, &mut p.compression.never_compress),
        (&a.add_only_compress, &mut p.compression.only_compress),
    ] {
        for e in src {
            let e = if e.starts_with('.') {
                e.clone()
            } else {
                format!(".{e}")
            };
            if !dst.contains(&e) {
                dst.push(e);
            }
            changed = true;
        }
    }
    if let Some(n) = a.compression_min_size {
        p.compression.min_size = n;
        changed = true;
    }
    for rule in &a.add_ignore {
        if !p.files.ignore_rules.contains(rule) {
            p.files.ignore_rules.push(rule.clone());
        }
        changed = true;
    }
    for rule in &a.remove_ignore {
        p.files.ignore_rules.retain(|r| r != rule);
        changed = true;
    }
    for name in &a.add_dot_ignore {
        if !p.files.dot_ignore_files.contains(name) {
            p.files.dot_ignore_files.push(name.clone());
        }
        changed = true;
    }
    changed |= opt_bool(&a.ignore_cache_dirs, &mut p.files.ignore_cache_dirs);
    let eh = &mut p.error_handling;
    changed |= opt_bool(&a.ignore_file_errors, &mut eh.ignore_file_errors);
    changed |= opt_bool(&a.ignore_dir_errors, &mut eh.ignore_directory_errors);
    changed |= super::policy_set::apply(p, &a.more)?;
    Ok(changed)
}

/// `true`, `false` or `inherit` (clap has checked the value).
fn opt_bool(v: &Option<String>, field: &mut Option<bool>) -> bool {
    let Some(v) = v else { return false };
    *field = match v.as_str() {
        "inherit" => None,
        v => Some(v == "true"),
    };
    true
}

pub fn run(ctx: &Context, cmd: PolicyCommand) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    match cmd {
        PolicyCommand::Set(a) => {
            let si = parse_target(&cfg, a.target.as_deref(), a.global)?;
            let mut p = policy::get_defined(&repo, &si)?
                .map(|(_, p)| p)
                .unwrap_or_default();
            if !apply(&mut p, &a)? {
                bail!("no policy changes requested");
            }
            policy::set(&repo, &si, &p)?;
            repo.flush()?;
            println!("Setting policy for {si}");
            Ok(())
        }
        PolicyCommand::Show {
            target,
            global,
            json,
        } => {
            let si = parse_target(&cfg, target.as_deref(), global)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&super::policy_show::effective_json(&repo, &si)?)?
                );
            } else {
                print!("{}", super::policy_show::text(&repo, &si)?);
            }
            Ok(())
        }
        PolicyCommand::Edit(t) => edit(&cfg, &repo, &t),
        PolicyCommand::Delete(a) => delete(&cfg, &repo, &a),
        PolicyCommand::Export(a) => export(&cfg, &repo, &a),
        PolicyCommand::Import(a) => import(&cfg, &repo, &a),
        PolicyCommand::List { json } => {
            let all = policy::list(&repo)?;
            if json {
                let v: Vec<_> = all
                    .iter()
                    .map(|(si, id, p)| serde_json::json!({"id": id, "target": si, "policy": p}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (si, id, _) in all {
                    println!("{id} {si}");
                }
            }
            Ok(())
        }
    }
}

/// Kopia's policy target arguments: targets (`@host`, `user@host`, `user@host:path`, a local
/// path, or a policy's manifest id) or `--global`.
#[derive(Debug, clap::Args)]
pub struct PolicyTargets {
    /// Select a particular policy (a per-host policy `@host`, a per-user policy `user@host`, a
    /// per-path policy `user@host:path` or a local path). Use --global to target the global
    /// policy.
    pub targets: Vec<String>,
    /// Select the global policy.
    #[arg(long)]
    pub global: bool,
}

impl PolicyTargets {
    /// Whether any target was given.
    fn any(&self) -> bool {
        self.global || !self.targets.is_empty()
    }

    /// The targets, as Kopia resolves them.
    fn resolve(
        &self,
        cfg: &ConnectionConfig,
        repo: &kopr_repo::Repository,
    ) -> Result<Vec<SourceInfo>> {
        if self.global != self.targets.is_empty() {
            bail!("must pass either '--global' or a list of path targets");
        }
        if self.global {
            return Ok(vec![SourceInfo::default()]);
        }
        self.targets
            .iter()
            .map(|t| match policy::target_of(repo, &t.into()) {
                Some(si) => Ok(si),
                None => parse_target(cfg, Some(t), false)
                    .with_context(|| format!("unable to parse source info: {t:?}")),
            })
            .collect()
    }
}

/// `policy delete` flags.
#[derive(Debug, clap::Args)]
pub struct PolicyDeleteArgs {
    #[command(flatten)]
    pub targets: PolicyTargets,
    /// Do not remove.
    #[arg(long = "dry-run", short = 'n')]
    pub dry_run: bool,
}

/// `policy export` flags.
#[derive(Debug, clap::Args)]
pub struct PolicyExportArgs {
    #[command(flatten)]
    pub targets: PolicyTargets,
    /// File path to export to.
    #[arg(long = "to-file")]
    pub to_file: Option<std::path::PathBuf>,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Output result in indented JSON format.
    #[arg(long = "json-indent", hide = true)]
    pub json_indent: bool,
}

/// `policy import` flags.
#[derive(Debug, clap::Args)]
pub struct PolicyImportArgs {
    #[command(flatten)]
    pub targets: PolicyTargets,
    /// File path to import from.
    #[arg(long = "from-file")]
    pub from_file: Option<std::path::PathBuf>,
    /// Allow unknown fields in the policy file.
    #[arg(long = "allow-unknown-fields")]
    pub allow_unknown_fields: bool,
    /// Delete all other policies, keeping only those that got imported.
    #[arg(long = "delete-other-policies")]
    pub delete_other_policies: bool,
}

/// Decodes one policy document, refusing fields Kopia does not know unless `allow_unknown`.
fn decode_policy(v: serde_json::Value, allow_unknown: bool) -> Result<Policy> {
    if !allow_unknown {
        if let Some(f) = kopr_format::policy_fields::unknown_fields(&v).first() {
            bail!("json: unknown field {f:?}");
        }
    }
    Ok(serde_json::from_value(v)?)
}

/// `policy delete`.
pub fn delete(
    cfg: &ConnectionConfig,
    repo: &kopr_repo::Repository,
    a: &PolicyDeleteArgs,
) -> Result<()> {
    for si in a.targets.resolve(cfg, repo)? {
        eprintln!("Removing policy on \"{si}\"...");
        if a.dry_run {
            continue;
        }
        policy::remove(repo, &si).with_context(|| format!("error removing policy on {si}"))?;
    }
    repo.flush()?;
    Ok(())
}

/// `policy export`: Kopia's JSON map of target to defined policy.
pub fn export(
    cfg: &ConnectionConfig,
    repo: &kopr_repo::Repository,
    a: &PolicyExportArgs,
) -> Result<()> {
    use std::io::Write as _;
    let mut all = std::collections::BTreeMap::new();
    if a.targets.any() {
        for si in a.targets.resolve(cfg, repo)? {
            let (_, p) = policy::get_defined(repo, &si)?.ok_or_else(|| {
                anyhow!("can't get defined policy for \"{si}\": policy not found")
            })?;
            all.insert(si.to_string(), p);
        }
    } else {
        for (si, _, p) in policy::list(repo)? {
            all.insert(si.to_string(), p);
        }
    }
    let text = if a.json_indent {
        serde_json::to_string_pretty(&all)?
    } else {
        serde_json::to_string(&all)?
    };
    let mut out: Box<dyn std::io::Write> = match &a.to_file {
        None if a.overwrite => bail!("overwrite was passed but no file path was given"),
        None => Box::new(std::io::stdout().lock()),
        Some(path) => {
            let mut o = std::fs::OpenOptions::new();
            o.write(true);
            if a.overwrite {
                o.create(true).truncate(true);
            } else {
                o.create_new(true);
            }
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            let f = o.open(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow!("file already exists and overwrite flag is not set")
                } else {
                    anyhow!("error opening file to write to: {e}")
                }
            })?;
            Box::new(f)
        }
    };
    writeln!(out, "{text}").context("unable to write policy to output")?;
    out.flush().context("unable to write policy to output")?;
    Ok(())
}

/// `policy import`: the JSON map `policy export` writes, from a file or stdin.
pub fn import(
    cfg: &ConnectionConfig,
    repo: &kopr_repo::Repository,
    a: &PolicyImportArgs,
) -> Result<()> {
    let text = match &a.from_file {
        Some(p) => std::fs::read_to_string(p).context("unable to read policy file")?,
        None => std::io::read_to_string(std::io::stdin()).context("unable to read policy file")?,
    };
    let decode = || -> Result<Vec<(String, Policy)>> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)?;
        map.into_iter()
            .map(|(k, v)| Ok((k, decode_policy(v, a.allow_unknown_fields)?)))
            .collect()
    };
    let policies = decode().context("unable to decode policy file as valid json")?;
    let limit = if a.targets.any() {
        Some(a.targets.resolve(cfg, repo)?)
    } else {
        None
    };
    let mut imported = Vec::new();
    for (key, p) in policies {
        let si = parse_target(cfg, Some(&key), false)
            .with_context(|| format!("unable to parse source info: {key:?}"))?;
        if limit.as_ref().is_some_and(|l| !l.contains(&si)) {
            continue;
        }
        policy::set(repo, &si, &p).with_context(|| format!("can't save policy for {si}"))?;
        imported.push(si);
    }
    if a.delete_other_policies {
        for (si, _, _) in policy::list(repo)? {
            if !imported.contains(&si) {
                policy::remove(repo, &si)
                    .with_context(|| format!("can't delete policy for {si}"))?;
            }
        }
    }
    repo.flush()?;
    Ok(())
}

/// The comments Kopia puts above the policy in the editor, and above some sections.
const EDIT_HELP: &str = "\n# Editing policy for '{target}'\n# Make changes to the policy, save your file and exit the editor.\n# The output must be valid JSON.\n# Lines starting with # are comments and automatically removed.\n";
const EDIT_RETENTION_HELP: &str = "  # Retention for snapshots of this directory. Options include:\n  #   \"keepLatest\": number\n  #   \"keepDaily\": number\n  #   \"keepHourly\": number\n  #   \"keepWeekly\": number\n  #   \"keepMonthly\": number\n  #   \"keepAnnual\": number\n";
const EDIT_FILES_HELP: &str = "\n  # Which files to include in snapshots. Options include:\n  #   \"ignore\": [\"*.ext\", \"*.ext2\"]\n  #   \"ignoreDotFiles\": [\".gitignore\", \".kopiaignore\"]\n  #   \"maxFileSize\": number\n  #   \"noParentDotFiles\": true\n  #   \"noParentIgnore\": true\n  #   \"oneFileSystem\": false\n";
const EDIT_SCHEDULING_HELP: &str = "\n  # Snapshot scheduling options. Options include:\n  #   \"intervalSeconds\": number /* 86400-day, 3600-hour, 60-minute */\n  #   \"timeOfDay\": [{\"hour\":H,\"min\":M},{\"hour\":H,\"min\":M}]\n  #   \"manual\": false /* Only create snapshots manually if set to true. NOTE: cannot be used with the above two fields */\n";

fn insert_help(s: String, look_for: &str, help: &str) -> String {
    match s.find(look_for) {
        Some(p) => format!("{}{help}{}", &s[..p], &s[p..]),
        None => s,
    }
}

/// `$VISUAL`, else `$EDITOR`, else `vi`, split on spaces as Kopia does (a quoted first word
/// may hold spaces).
fn editor_command() -> (String, Vec<String>) {
    let e = std::env::var("VISUAL")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("EDITOR").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "vi".into());
    if let Some(rest) = e.strip_prefix('"') {
        if let Some((cmd, args)) = rest.split_once('"') {
            let args = args.split_whitespace().map(str::to_string).collect();
            return (cmd.to_string(), args);
        }
    }
    let mut parts = e.split(' ').map(str::to_string);
    let cmd = parts.next().unwrap_or_default();
    (cmd, parts.filter(|p| !p.is_empty()).collect())
}

/// Reads one answer line from stdin ("" at its end).
fn answer() -> String {
    let mut s = String::new();
    let _ = std::io::stdin().read_line(&mut s);
    s.trim().to_lowercase()
}

/// `policy edit`: the defined policy as JSON in `$EDITOR`, checked, shown and stored after a
/// confirmation, as Kopia does.
pub fn edit(cfg: &ConnectionConfig, repo: &kopr_repo::Repository, t: &PolicyTargets) -> Result<()> {
    use std::io::Write as _;
    for si in t.resolve(cfg, repo)? {
        let original = policy::get_defined(repo, &si)?
            .map(|(_, p)| p)
            .unwrap_or_default();
        eprintln!("Editing policy for {si} using external editor...");
        let pretty = serde_json::to_string_pretty(&original)? + "\n";
        let mut s = EDIT_HELP.replace("{target}", &si.to_string()) + &pretty;
        s = insert_help(s, "  \"retention\": {", EDIT_RETENTION_HELP);
        s = insert_help(s, "  \"files\": {", EDIT_FILES_HELP);
        s = insert_help(s, "  \"scheduling\": {", EDIT_SCHEDULING_HELP);
        let dir = tempfile::tempdir().context("unable to create temp directory")?;
        let file = dir.path().join("policy.conf");
        std::fs::write(&file, &s).context("unable to write file to edit")?;
        let updated = loop {
            let (cmd, args) = editor_command();
            let status = std::process::Command::new(&cmd)
                .args(&args)
                .arg(&file)
                .status()
                .with_context(|| {
                    format!("unable to launch editor: error running editor command {cmd:?}")
                })?;
            if !status.success() {
                bail!("unable to launch editor: error running editor command {cmd:?}: {status}");
            }
            let edited: String = std::fs::read_to_string(&file)
                .context("error parsing edited file")?
                .lines()
                .filter(|l| !l.trim_start().starts_with('#') && !l.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            let parsed = serde_json::from_str::<serde_json::Value>(&edited)
                .map_err(anyhow::Error::from)
                .and_then(|v| decode_policy(v, false));
            match parsed {
                Ok(p) => break p,
                Err(e) => {
                    eprintln!("ERROR {e}");
                    print!("Reopen editor to fix? (Y/n) ");
                    std::io::stdout().flush()?;
                    if answer().starts_with('n') {
                        bail!("unable to launch editor: aborted");
                    }
                }
            }
        };
        if serde_json::to_string_pretty(&updated)? + "\n" == pretty {
            eprintln!("Policy for {si} unchanged");
            continue;
        }
        eprintln!(
            "Updated policy for {si}\n{}",
            serde_json::to_string_pretty(&updated)?
        );
        print!("Save updated policy? (y/N) ");
        std::io::stdout().flush()?;
        if answer().starts_with('y') {
            policy::set(repo, &si, &updated)
                .with_context(|| format!("can't save policy for {si}"))?;
            repo.flush()?;
        }
    }
    Ok(())
}
