//! `snapshot estimate`: files, directories and bytes a snapshot of a directory would take, by
//! size, with what the policy leaves out, in Kopia's words.

use super::*;
use kopr_repo::snapshot::estimate::SampleBucket;

/// Estimate the snapshot size and upload time.
#[derive(Debug, Args)]
pub struct EstimateArgs {
    /// File or directory to analyze.
    pub source: PathBuf,
    /// Show files.
    #[arg(long = "show-files")]
    pub show_files: bool,
    /// Do not display scanning progress.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Upload speed to use for estimation (Mbit/s).
    #[arg(long = "upload-speed", default_value_t = 10.0)]
    pub upload_speed: f64,
    /// Max examples per bucket.
    #[arg(long = "max-examples-per-bucket", default_value_t = 10)]
    pub max_examples_per_bucket: usize,
    /// Output result in JSON format to stdout (kopr's own).
    #[arg(long)]
    pub json: bool,
}

fn show_buckets(out: &mut dyn Write, buckets: &[SampleBucket], show_files: bool) -> Result<()> {
    for (i, b) in buckets.iter().enumerate() {
        if b.count == 0 {
            continue;
        }
        let range = if i == 0 {
            format!("< {:<6}", units::bytes(b.min_size))
        } else {
            format!(
                "{:<6}...{:>6}",
                units::bytes(b.min_size),
                units::bytes(buckets[i - 1].min_size)
            )
        };
        writeln!(
            out,
            "{range:>18}: {:>7} files, total size {}",
            b.count,
            units::bytes(b.total_size)
        )?;
        if show_files {
            for e in &b.examples {
                writeln!(out, " - {e}")?;
            }
        }
    }
    Ok(())
}

/// `snapshot estimate`.
pub(super) fn estimate(cfg: &ConnectionConfig, repo: &Repository, a: EstimateArgs) -> Result<()> {
    let si = source_for(cfg, &a.source)?;
    let policy = kopr_repo::policy::effective(repo, &si)
        .with_context(|| format!("error creating policy tree for {si}"))?;
    if !a.quiet && !a.json {
        eprintln!("Analyzing {}...", si.path);
    }
    let est = kopr_repo::snapshot::estimate::estimate(
        Path::new(&si.path),
        &policy,
        a.max_examples_per_bucket,
    )?;
    for e in &est.errors {
        eprintln!("Error in {e}");
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&est)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "Snapshot includes {} file(s), total size {}",
        est.total_file_count,
        units::bytes(est.total_file_size)
    )?;
    show_buckets(&mut out, &est.included, a.show_files)?;
    writeln!(out)?;
    if est.excluded_file_count > 0 {
        writeln!(
            out,
            "Snapshot excludes {} file(s), total size {}",
            est.excluded_file_count,
            units::bytes(est.excluded_total_file_size)
        )?;
        show_buckets(&mut out, &est.excluded, true)?;
    } else {
        writeln!(out, "Snapshot excludes no files.")?;
    }
    if est.excluded_dir_count > 0 {
        writeln!(
            out,
            "Snapshot excludes {} directories. Examples:",
            est.excluded_dir_count
        )?;
        for d in &est.excluded_dirs {
            writeln!(out, " - {d}")?;
        }
    } else {
        writeln!(out, "Snapshot excludes no directories.")?;
    }
    if est.error_count > 0 {
        writeln!(out, "Encountered {} error(s).", est.error_count)?;
    }
    // Kopia truncates the estimate to whole seconds and prints it as a Go duration.
    let megabits = est.total_file_size as f64 * 8.0 / 1_000_000.0;
    let seconds = if a.upload_speed > 0.0 {
        (megabits / a.upload_speed) as i64
    } else {
        0
    };
    writeln!(out)?;
    writeln!(
        out,
        "Estimated upload time: {} at {} Mbit/s",
        units::duration(chrono::Duration::seconds(seconds)),
        a.upload_speed
    )?;
    Ok(())
}
