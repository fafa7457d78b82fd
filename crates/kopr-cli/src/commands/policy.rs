//! `policy set | show | list`.

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

fn show(p: &Policy, defined: &Policy) {
    let r = &p.retention;
    let src = |v: Option<i64>, d: Option<i64>| {
        let val = v.map(|n| n.to_string()).unwrap_or_else(|| "(none)".into());
        if d.is_some() {
            format!("{val:<10} (defined for this target)")
        } else {
            format!("{val:<10} inherited")
        }
    };
    let dr = &defined.retention;
    println!("Retention:");
    println!(
        "  Annual snapshots:    {}",
        src(r.keep_annual, dr.keep_annual)
    );
    println!(
        "  Monthly snapshots:   {}",
        src(r.keep_monthly, dr.keep_monthly)
    );
    println!(
        "  Weekly snapshots:    {}",
        src(r.keep_weekly, dr.keep_weekly)
    );
    println!(
        "  Daily snapshots:     {}",
        src(r.keep_daily, dr.keep_daily)
    );
    println!(
        "  Hourly snapshots:    {}",
        src(r.keep_hourly, dr.keep_hourly)
    );
    println!(
        "  Latest snapshots:    {}",
        src(r.keep_latest, dr.keep_latest)
    );
    println!();
    println!("Files policy:");
    if p.files.ignore_rules.is_empty() {
        println!("  No ignore rules.");
    } else {
        println!("  Ignore rules:");
        for rule in &p.files.ignore_rules {
            println!("    {rule}");
        }
    }
    println!(
        "  Read ignore rules from files: {}",
        p.files.dot_ignore_files.join(", ")
    );
    println!(
        "  Ignore cache directories: {}",
        p.files.ignore_cache_dirs.unwrap_or(true)
    );
    println!();
    let eh = &p.error_handling;
    println!("Error handling policy:");
    println!(
        "  Ignore file read errors: {}",
        eh.ignore_file_errors.unwrap_or(false)
    );
    println!(
        "  Ignore directory read errors: {}",
        eh.ignore_directory_errors.unwrap_or(false)
    );
    println!();
    let c = &p.compression;
    let name = if c.compressor_name.is_empty() {
        "none"
    } else {
        &c.compressor_name
    };
    println!("Compression:");
    println!("  Compressor: {name}");
    if !c.only_compress.is_empty() {
        println!(
            "  Only compress files with extensions: {}",
            c.only_compress.join(", ")
        );
    }
    if !c.never_compress.is_empty() {
        println!(
            "  Never compress files with extensions: {}",
            c.never_compress.join(", ")
        );
    }
    if c.min_size > 0 {
        println!("  Minimum file size: {}", c.min_size);
    }
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
            let defined = policy::get_defined(&repo, &si)?
                .map(|(_, p)| p)
                .unwrap_or_default();
            let eff = policy::effective(&repo, &si)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&eff)?);
            } else {
                println!("Policy for {si}:");
                println!();
                show(&eff, &defined);
            }
            Ok(())
        }
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
