//! `manifest list | show | delete`: Kopia's low-level commands on manifest items (snapshots,
//! policies, maintenance records), with Kopia's output shapes.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{bail, Context as _, Result};
use kopr_format::labels;
use serde::Serialize;

use super::{format_timestamp, go_json_indent, require_dangerous, Context, JsonList};
use crate::app::ManifestCommand;

/// Kopia's `manifest.EntryMetadata` in JSON, fields in its order.
#[derive(Serialize)]
struct EntryMetadata<'a> {
    id: &'a str,
    length: usize,
    labels: &'a BTreeMap<String, String>,
    mtime: String,
}

pub fn run(ctx: &Context, cmd: ManifestCommand) -> Result<()> {
    let (cfg, repo) = ctx.open_repository()?;
    let mm = repo.manifests();
    let mut out = std::io::stdout().lock();
    match cmd {
        ManifestCommand::List { filter, sort, json } => list(&repo, &filter, &sort, json, &mut out),
        ManifestCommand::Show { items } => {
            for id in items {
                let (md, data) = mm
                    .get::<Box<serde_json::value::RawValue>>(&id.as_str().into())
                    .with_context(|| format!("error getting metadata for {id:?}"))?;
                writeln!(out, "// id: {id}")?;
                writeln!(out, "// length: {}", md.data.get().len())?;
                writeln!(out, "// modified: {}", format_timestamp(md.modified))?;
                for (k, v) in &md.labels {
                    writeln!(out, "// label {k}:{v}")?;
                }
                writeln!(out, "{}", go_json_indent(data.get()))?;
            }
            Ok(())
        }
        ManifestCommand::Delete { items } => {
            require_dangerous(ctx)?;
            if cfg.read_only {
                return Err(super::ReadOnlyConnection.into());
            }
            for id in &items {
                mm.delete(&id.into())
                    .with_context(|| format!("unable to delete manifest {id}"))?;
            }
            repo.flush()?;
            Ok(())
        }
    }
}

/// `manifest list`: the items matching `filter` (`key:value`), sorted by the `sort` keys, then
/// by modification time.
fn list(
    repo: &kopr_repo::Repository,
    filter: &[String],
    sort: &[String],
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mm = repo.manifests();
    let mut labels = BTreeMap::new();
    for kv in filter {
        match kv.find(':') {
            Some(p) if p > 0 => {
                labels.insert(kv[..p].to_string(), kv[p + 1..].to_string());
            }
            _ => bail!("invalid list filter {kv:?}, missing ':'"),
        }
    }
    let mut items = mm.find(&labels).context("unable to find manifests")?;
    // Kopia: by the values of the --sort keys in turn, then by modification time.
    items.sort_by(|a, b| {
        for key in sort {
            let (v1, v2) = (
                a.labels.get(key).map_or("", String::as_str),
                b.labels.get(key).map_or("", String::as_str),
            );
            if v1 != v2 {
                return v1.cmp(v2);
            }
        }
        a.modified.cmp(&b.modified)
    });
    let mut list = JsonList::begin(json, out)?;
    for it in items {
        let length = it.data.get().len();
        if json {
            list.emit(
                out,
                &EntryMetadata {
                    id: &it.id,
                    length,
                    labels: &it.labels,
                    mtime: kopr_format::gotime::format(&it.modified),
                },
            )?;
        } else {
            let others: Vec<String> = it
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != labels::TYPE)
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            writeln!(
                out,
                "{} {:>10} {} type:{} {}",
                it.id,
                length,
                format_timestamp(it.modified),
                labels::type_of(&it.labels).unwrap_or(""),
                others.join(" ")
            )?;
        }
    }
    list.end(out)
}
