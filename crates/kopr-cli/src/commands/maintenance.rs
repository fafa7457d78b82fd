//! `maintenance info | set | run | explain`.

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use kopr_format::maintenance::{CycleParams, MaintenanceParams, Schedule};
use kopr_format::units;
use kopr_repo::maintenance::{
    self, explain, params, schedule, Mode, Observer, RunOptions, SafetyParameters,
};
use kopr_repo::Repository;
use serde::Serialize;

use super::{format_timestamp, repository::parse_duration_nanos, Context};
use crate::app::{MaintenanceCommand, MaintenanceRunArgs, MaintenanceSetArgs};

/// Runs a `maintenance` subcommand.
pub fn run(ctx: &Context, cmd: MaintenanceCommand) -> Result<()> {
    let (_, repo) = ctx.open_repository()?;
    match cmd {
        MaintenanceCommand::Info { json } => info(&repo, json),
        MaintenanceCommand::Set(args) => set(&repo, args),
        MaintenanceCommand::Run(args) => run_cycle(&repo, args),
        MaintenanceCommand::Explain { json, safety } => explain_cmd(&repo, json, &safety),
    }
}

#[derive(Serialize)]
struct InfoJson<'a> {
    #[serde(flatten)]
    params: &'a MaintenanceParams,
    schedule: &'a Schedule,
}

fn go_duration(d: std::time::Duration) -> String {
    units::duration(maintenance::chrono_dur(d))
}

fn cycle_info(cp: &CycleParams, next: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    println!("  scheduled: {}", cp.enabled);
    if cp.enabled {
        println!("  interval: {}", go_duration(cp.interval));
        match next {
            Some(t) if now < t => println!(
                "  next run: {} (in {})",
                format_timestamp(t),
                units::duration(t - now)
            ),
            _ => println!("  next run: now"),
        }
    }
}

fn info(repo: &Repository, json: bool) -> Result<()> {
    let p = params::get_params(repo)?;
    let s = schedule::get_schedule(repo)?;
    if json {
        let v = InfoJson {
            params: &p,
            schedule: &s,
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let now = repo.contents().clock().now();
    println!("Owner: {}", p.owner);
    println!("Quick Cycle:");
    cycle_info(&p.quick, s.next_quick, now);
    println!("Full Cycle:");
    cycle_info(&p.full, s.next_full, now);
    let cl = p.log_retention.or_default();
    println!("Log Retention:");
    println!("  max count:       {}", cl.max_count);
    println!("  max age of logs: {}", go_duration(cl.max_age));
    println!("  max total size:  {}", units::bytes(cl.max_total_size));
    println!(
        "Object Lock Extension: {}",
        if p.extend_object_locks {
            "enabled"
        } else {
            "disabled"
        }
    );
    if p.list_parallelism != 0 {
        println!("List parallelism: {}", p.list_parallelism);
    }
    println!(
        "Packs more unused than: {}% (rewritten by full maintenance)",
        p.effective_max_unused_percent()
    );
    println!("Recent Maintenance Runs:");
    for (task, runs) in &s.runs {
        println!("  {task}:");
        for r in runs {
            let msg = if r.success {
                kopr_format::maintenance_stats::success_message(r.extra.as_ref())
            } else {
                format!("ERROR: {}", r.error)
            };
            println!(
                "    {} ({}) {msg}",
                format_timestamp(r.start),
                // Kopia truncates run durations to whole seconds.
                units::duration(chrono::Duration::seconds((r.end - r.start).num_seconds()))
            );
        }
    }
    Ok(())
}

fn dur(flag: &str, v: &str) -> Result<std::time::Duration> {
    let n = parse_duration_nanos(v).map_err(|e| anyhow!("invalid --{flag}: {e}"))?;
    if n < 0 {
        bail!("invalid --{flag} {v:?}: must not be negative");
    }
    Ok(std::time::Duration::from_nanos(n as u64))
}

fn set_cycle(
    cp: &mut CycleParams,
    name: &str,
    enable: Option<bool>,
    interval: Option<&str>,
    flag: &str,
) -> Result<bool> {
    let mut changed = false;
    if let Some(e) = enable {
        cp.enabled = e;
        changed = true;
        if e {
            eprintln!("Periodic {name} maintenance enabled.");
        } else {
            eprintln!("Periodic {name} maintenance disabled.");
        }
    }
    if let Some(v) = interval {
        let d = dur(flag, v)?;
        if d.is_zero() {
            bail!("invalid --{flag} {v:?}: must be positive");
        }
        cp.interval = d;
        changed = true;
        eprintln!("Interval for {name} maintenance set to {}.", go_duration(d));
    }
    Ok(changed)
}

fn set(repo: &Repository, a: MaintenanceSetArgs) -> Result<()> {
    let mut p = params::get_params(repo)?;
    let mut changed = set_log_retention(&mut p, &a)?;
    changed |= set_param_flags(repo, &mut p, &a)?;
    let mut s = schedule::get_schedule(repo)?;
    let sched_changed = set_pauses(repo, &mut s, &a)?;
    if !changed && !sched_changed {
        bail!("no changes specified");
    }
    if changed {
        maintenance::check_extend_retention(repo, &p)?;
        params::set_params(repo, &p)?;
        repo.flush()?;
    }
    if sched_changed {
        schedule::set_schedule(repo, &s)?;
    }
    Ok(())
}

/// The `--max-retained-log-*` flags; whether any was given.
fn set_log_retention(p: &mut MaintenanceParams, a: &MaintenanceSetArgs) -> Result<bool> {
    let mut changed = false;
    if let Some(n) = a.max_retained_log_count {
        p.log_retention = p.log_retention.or_default();
        p.log_retention.max_count = n;
        changed = true;
        eprintln!("Setting max retained log count to {n}.");
    }
    if let Some(v) = &a.max_retained_log_age {
        p.log_retention = p.log_retention.or_default();
        p.log_retention.max_age = dur("max-retained-log-age", v)?;
        changed = true;
        eprintln!(
            "Setting max retained log age to {}.",
            go_duration(p.log_retention.max_age)
        );
    }
    if let Some(mb) = a.max_retained_log_size_mb {
        p.log_retention = p.log_retention.or_default();
        p.log_retention.max_total_size = mb << 20;
        changed = true;
        eprintln!(
            "Setting total retained log size to {}.",
            units::bytes(p.log_retention.max_total_size)
        );
    }
    Ok(changed)
}

/// The parameter flags but the log retention ones; whether any was given.
fn set_param_flags(
    repo: &Repository,
    p: &mut MaintenanceParams,
    a: &MaintenanceSetArgs,
) -> Result<bool> {
    let mut changed = false;
    if let Some(n) = a.list_parallelism {
        p.list_parallelism = n;
        changed = true;
        eprintln!("Setting list parallelism to {n}.");
    }
    if let Some(n) = a.max_unused_percent {
        p.max_unused_percent = Some(n);
        changed = true;
        eprintln!("Setting max unused percent of packs to {n}.");
    }
    if let Some(o) = &a.owner {
        p.owner = if o == "me" {
            params::this_user(repo)
        } else {
            if !o.contains('@') {
                bail!("invalid --owner {o:?}: use 'me' or user@host");
            }
            o.clone()
        };
        changed = true;
        eprintln!("Setting maintenance owner to {}", p.owner);
    }
    let eq = a.enable_quick.or(a.no_enable_quick.then_some(false));
    let ef = a.enable_full.or(a.no_enable_full.then_some(false));
    changed |= set_cycle(
        &mut p.quick,
        "quick",
        eq,
        a.quick_interval.as_deref(),
        "quick-interval",
    )?;
    changed |= set_cycle(
        &mut p.full,
        "full",
        ef,
        a.full_interval.as_deref(),
        "full-interval",
    )?;
    if let Some(e) = a.extend_object_locks {
        p.extend_object_locks = e;
        changed = true;
        if e {
            eprintln!("Object Lock extension maintenance enabled.");
        } else {
            eprintln!("Object Lock extension maintenance disabled.");
        }
    }
    Ok(changed)
}

/// `--pause-quick` and `--pause-full`; whether any was given.
fn set_pauses(repo: &Repository, s: &mut Schedule, a: &MaintenanceSetArgs) -> Result<bool> {
    let mut sched_changed = false;
    let now = repo.contents().clock().now();
    if let Some(v) = &a.pause_quick {
        let t = now + maintenance::chrono_dur(dur("pause-quick", v)?);
        s.next_quick = Some(t);
        sched_changed = true;
        eprintln!("Quick maintenance paused until {}", format_timestamp(t));
    }
    if let Some(v) = &a.pause_full {
        let t = now + maintenance::chrono_dur(dur("pause-full", v)?);
        s.next_full = Some(t);
        sched_changed = true;
        eprintln!("Full maintenance paused until {}", format_timestamp(t));
    }
    Ok(sched_changed)
}

/// Maintenance's messages as `tracing` events: the console shows them at `--log-level`, the
/// log file and the repository's log record them with the task that logged them.
struct StderrLog {
    task: std::sync::Mutex<String>,
}

impl StderrLog {
    fn task(&self) -> String {
        self.task.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl Observer for StderrLog {
    fn log(&self, msg: &str) {
        tracing::info!(target: "maintenance", task = self.task(), "{msg}");
    }
    fn debug(&self, msg: &str) {
        tracing::debug!(target: "maintenance", task = self.task(), "{msg}");
    }
    fn before_task(&self, task: &str) -> kopr_repo::Result<()> {
        if let Ok(mut t) = self.task.lock() {
            *t = task.to_string();
        }
        // Test hook: die like a killed process right before a task (crash tests).
        if std::env::var("KOPR_TEST_CRASH_BEFORE_TASK").is_ok_and(|t| t == task) {
            std::process::abort();
        }
        Ok(())
    }
}

fn safety(name: &str) -> Result<SafetyParameters> {
    SafetyParameters::by_name(name)
        .ok_or_else(|| anyhow!("invalid --safety {name:?}: use full or none"))
}

fn run_cycle(repo: &Repository, a: MaintenanceRunArgs) -> Result<()> {
    let mode = if a.auto {
        let p = params::get_params(repo)?;
        let s = schedule::get_schedule(repo)?;
        let now = repo.contents().clock().now();
        match maintenance::due_mode(&p, &s, now) {
            Some(m) => m,
            None => {
                if let Some(t) = s.next_full.filter(|_| p.full.enabled) {
                    eprintln!(
                        "not due for full maintenance cycle until {}",
                        format_timestamp(t)
                    );
                }
                if let Some(t) = s.next_quick.filter(|_| p.quick.enabled) {
                    eprintln!(
                        "not due for quick maintenance cycle until {}",
                        format_timestamp(t)
                    );
                }
                return Ok(());
            }
        }
    } else if a.full {
        Mode::Full
    } else {
        Mode::Quick
    };
    let safety = safety(&a.safety)?;
    if a.safety == "none" {
        eprintln!("WARNING: --safety=none disables all safety margins; nothing else may use the repository during this run.");
    }
    let start = chrono::Utc::now();
    let result = maintenance::run(
        repo,
        &RunOptions {
            mode,
            safety,
            force: a.force,
        },
        &StderrLog {
            task: std::sync::Mutex::new(String::new()),
        },
    );
    crate::commands::notification::maintenance_ran(repo, mode == Mode::Full, start, &result);
    result?;
    Ok(())
}

fn when(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) if t <= now => "now".to_string(),
        Some(t) => format!("{} (in {})", format_timestamp(t), units::duration(t - now)),
        None => "not within the simulated schedule".to_string(),
    }
}

fn explain_cmd(repo: &Repository, json: bool, safety_name: &str) -> Result<()> {
    let s = safety(safety_name)?;
    let x = explain::explain(repo, &s)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&x)?);
        return Ok(());
    }
    let now = x.now;
    println!("Safety: {}", x.safety);
    if x.full_enabled {
        println!(
            "Full maintenance: every {}, next {}",
            x.full_interval,
            when(x.next_full_cycle, now)
        );
    } else {
        println!("Full maintenance: disabled (nothing is collected until it is enabled)");
    }
    println!("Successful snapshot GC runs on record: {}", x.gc_runs);
    println!(
        "Packs with live contents are emptied once more than {}% unused.",
        x.max_unused_percent
    );
    print_deleted_snapshots(&x);
    print_held_back(&x);
    println!(
        "A full cycle now would delete {} blobs ({}); with --safety=none {} blobs ({}).",
        x.full_cycle_now.blobs,
        units::bytes(x.full_cycle_now.bytes as i64),
        x.full_cycle_now_safety_none.blobs,
        units::bytes(x.full_cycle_now_safety_none.bytes as i64)
    );
    Ok(())
}

/// `maintenance explain`: when the data of each deleted snapshot leaves storage.
fn print_deleted_snapshots(x: &explain::Explanation) {
    let now = x.now;
    if !x.deleted_snapshots.is_empty() {
        println!("Deleted snapshots:");
        for d in &x.deleted_snapshots {
            println!(
                "  {} {} deleted {}:",
                d.id,
                d.source,
                format_timestamp(d.deleted_at)
            );
            println!(
                "    data written more than a day before deletion leaves storage {}",
                when(d.old_data_gone_by, now)
            );
            println!(
                "    data written just before deletion leaves storage {}",
                when(d.new_data_gone_by, now)
            );
        }
    }
}

/// `maintenance explain`: the storage held back, by rule and by blob (the first 50).
fn print_held_back(x: &explain::Explanation) {
    let now = x.now;
    if x.by_rule.is_empty() {
        println!("No storage is held back: nothing is waiting for deletion.");
    } else {
        println!("Storage held back:");
        for t in &x.by_rule {
            println!(
                "  {} blobs ({}): {}; earliest deletion {}",
                t.blobs,
                units::bytes(t.bytes as i64),
                t.description,
                when(t.earliest_deletion, now)
            );
        }
        println!("Blobs (first 50; --json lists all):");
        if x.packs.len() > 50 {
            println!("  ... {} blobs in all", x.packs.len());
        }
        for p in x.packs.iter().take(50) {
            let rewrite = p
                .rewrite_at
                .map(|t| format!(", live contents copied out {}", when(Some(t), now)))
                .unwrap_or_default();
            println!(
                "  {} {} {:?} ({:.1}% unused{rewrite}) -> {}",
                p.blob_id,
                units::bytes(p.bytes as i64),
                p.rule,
                if p.live_contents == 0 {
                    100.0
                } else {
                    p.unused_percent
                },
                when(p.earliest_deletion, now)
            );
        }
    }
}
