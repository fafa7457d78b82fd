//! `snapshot copy-history | move-history`: the snapshot manifests of one source (or of every
//! source of a user or host) saved again under another user, host or path, as Kopia does when a
//! machine is renamed or a directory moved. Contents are shared, so only manifests are written.

use super::*;

/// Copies or moves the history of snapshots from another user or host.
///
/// SOURCE and DESTINATION are `user@host`, `@host` or `user@host:/path`; the parts the
/// destination gives replace those of each source snapshot (`@host1 @host2` copies every
/// user's snapshots of host1 to host2). A destination with a path needs a source with a path,
/// one with a user a source with a user.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Source (user@host or user@host:path).
    pub source: String,
    /// Destination (defaults to current user@host).
    pub destination: Option<String>,
    /// Do not actually copy snapshots, only print what would happen.
    #[arg(long = "dry-run", short = 'n')]
    pub dry_run: bool,
}

/// Kopia's rule: the destination's non-empty parts replace the source's.
fn destination_of(source: &SourceInfo, overrides: &SourceInfo) -> SourceInfo {
    let pick = |o: &String, s: &String| if o.is_empty() { s.clone() } else { o.clone() };
    SourceInfo {
        host: pick(&overrides.host, &source.host),
        user_name: pick(&overrides.user_name, &source.user_name),
        path: pick(&overrides.path, &source.path),
    }
}

/// `snapshot copy-history` (`is_move` false) and `snapshot move-history`.
pub(super) fn copy_or_move(
    cfg: &ConnectionConfig,
    repo: &Repository,
    a: HistoryArgs,
    is_move: bool,
) -> Result<()> {
    let si = crate::commands::policy::parse_target(cfg, Some(&a.source), false)
        .context("invalid source")?;
    let di = match &a.destination {
        None => SourceInfo {
            host: cfg.hostname.clone(),
            user_name: cfg.username.clone(),
            path: String::new(),
        },
        Some(d) => crate::commands::policy::parse_target(cfg, Some(d), false)
            .context("invalid destination")?,
    };
    if si.host.is_empty() {
        bail!("invalid source: a host is required (user@host, @host or user@host:/path)");
    }
    if !di.path.is_empty() && si.path.is_empty() {
        bail!("path specified on destination but not source");
    }
    if !di.user_name.is_empty() && si.user_name.is_empty() {
        bail!("username specified on destination but not source");
    }
    let sources = snap::list_snapshots(repo, Some(&si))?;
    let all = snap::list_snapshots(repo, None)?;
    let mut action = if is_move { "moving" } else { "copying" }.to_string();
    if a.dry_run {
        action.push_str(" (dry run)");
    }
    for m in sources {
        let dst = destination_of(&m.source, &di);
        if dst == m.source {
            continue;
        }
        let root = m.root_entry.as_ref().map(|r| r.object_id.to_string());
        let exists = all.iter().any(|d| {
            d.source == dst
                && d.start_time == m.start_time
                && d.root_entry.as_ref().map(|r| r.object_id.to_string()) == root
        });
        if exists {
            if is_move && !a.dry_run {
                eprintln!(
                    "{dst} ({}) already exists - deleting source",
                    ts(m.start_time)
                );
                repo.manifests().delete(m.id.manifest_id())?;
            } else {
                eprintln!("{dst} ({}) already exists", ts(m.start_time));
            }
            continue;
        }
        eprintln!("{action} {} ({}) => {dst}", m.source, ts(m.start_time));
        if a.dry_run {
            continue;
        }
        let src_id = m.id.clone();
        let mut copy = m;
        copy.id = Default::default();
        copy.source = dst.clone();
        repo.manifests().put(dst.labels(), &copy)?;
        if is_move {
            repo.manifests().delete(src_id.manifest_id())?;
        }
    }
    repo.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_parts_replace_the_sources() {
        let s = SourceInfo {
            host: "h1".into(),
            user_name: "u1".into(),
            path: "/p1".into(),
        };
        let host_only = SourceInfo {
            host: "h2".into(),
            ..Default::default()
        };
        assert_eq!(
            destination_of(&s, &host_only),
            SourceInfo {
                host: "h2".into(),
                user_name: "u1".into(),
                path: "/p1".into()
            }
        );
        let full = SourceInfo {
            host: "h2".into(),
            user_name: "u2".into(),
            path: "/p2".into(),
        };
        assert_eq!(destination_of(&s, &full), full);
    }
}
