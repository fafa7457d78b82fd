//! `policy show`: the effective policy of a target in Kopia's table — every section, each
//! value with where it is defined (`(defined for this target)` or `inherited from …`), Kopia's
//! defaults where nothing sets a field — and `--json`, the effective policy with those
//! defaults, as Kopia prints it.

use anyhow::Result;
use kopr_format::snapshot::SourceInfo;
use kopr_repo::Repository;
use serde_json::{json, Value};

use crate::units;

/// Kopia's default policy, every section (what applies where no policy sets a field).
pub fn kopia_defaults() -> Value {
    json!({
        "retention": {"keepLatest": 10, "keepHourly": 48, "keepDaily": 7, "keepWeekly": 4,
            "keepMonthly": 24, "keepAnnual": 3, "ignoreIdenticalSnapshots": false},
        "files": {"ignoreDotFiles": [".kopiaignore"]},
        "errorHandling": {"ignoreFileErrors": false, "ignoreDirectoryErrors": false,
            "ignoreUnknownTypes": true},
        "scheduling": {"runMissed": true},
        "compression": {"compressorName": "none"},
        "metadataCompression": {"compressorName": "zstd-fastest"},
        "splitter": {},
        "actions": {},
        "osSnapshots": {"volumeShadowCopy": {"enable": 0}},
        "logging": {"directories": {"snapshotted": 5, "ignored": 5},
            "entries": {"snapshotted": 0, "ignored": 5, "cacheHit": 0, "cacheMiss": 0}},
        "upload": {"maxParallelSnapshots": 1, "parallelUploadAboveSize": 2u64 << 30}
    })
}

/// The targets whose policies apply to `si`, most specific first, as `policy::effective`
/// walks them, with each one's defined policy as JSON; stops after a `noParent` policy.
fn chain(repo: &Repository, si: &SourceInfo) -> Result<Vec<(SourceInfo, Value)>> {
    let mut targets = Vec::new();
    if !si.path.is_empty() {
        let mut p = std::path::PathBuf::from(&si.path);
        loop {
            targets.push(SourceInfo {
                path: p.to_string_lossy().into_owned(),
                ..si.clone()
            });
            if !p.pop() || p.as_os_str().is_empty() {
                break;
            }
        }
    }
    if !si.host.is_empty() {
        if !si.user_name.is_empty() {
            targets.push(SourceInfo {
                path: String::new(),
                ..si.clone()
            });
        }
        targets.push(SourceInfo {
            host: si.host.clone(),
            ..SourceInfo::default()
        });
    }
    targets.push(SourceInfo::default());
    let mut out = Vec::new();
    for t in targets {
        if let Some((_, p)) = kopr_repo::policy::get_defined(repo, &t)? {
            let no_parent = p.no_parent;
            out.push((t, serde_json::to_value(&p)?));
            if no_parent {
                break;
            }
        }
    }
    Ok(out)
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::Null => None,
        Value::Array(a) if a.is_empty() => None,
        Value::String(s) if s.is_empty() => None,
        v => Some(v),
    }
}

/// The effective policy of `si` as Kopia's JSON, defaults filled in.
pub fn effective_json(repo: &Repository, si: &SourceInfo) -> Result<Value> {
    let eff = kopr_repo::policy::effective(repo, si)?;
    let mut v = serde_json::to_value(&eff)?;
    if let (Value::Object(m), Value::Object(d)) = (&mut v, kopia_defaults()) {
        kopr_format::policy_fields::inherit_map(m, &d);
    }
    Ok(v)
}

struct Shown<'a> {
    si: &'a SourceInfo,
    eff: Value,
    chain: Vec<(SourceInfo, Value)>,
    rows: Vec<(String, String, String)>,
}

impl Shown<'_> {
    /// Where the field at `path` is defined.
    fn def(&self, path: &[&str]) -> String {
        let src = self
            .chain
            .iter()
            .find(|(_, p)| get(p, path).is_some())
            .map(|(t, _)| t.clone())
            .unwrap_or_default();
        if &src == self.si {
            "(defined for this target)".into()
        } else {
            format!("inherited from {src}")
        }
    }

    fn val(&self, path: &[&str]) -> Option<&Value> {
        get(&self.eff, path)
    }

    fn row(&mut self, name: &str, value: String, def: String) {
        self.rows.push((name.to_string(), value, def));
    }

    fn title(&mut self, name: &str) {
        self.row(name, String::new(), String::new());
    }

    fn int(&mut self, name: &str, path: &[&str]) {
        let v = self
            .val(path)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into());
        let d = self.def(path);
        self.row(name, v, d);
    }

    fn boolean(&mut self, name: &str, path: &[&str], default: bool) {
        let v = self.val(path).and_then(Value::as_bool).unwrap_or(default);
        let d = self.def(path);
        self.row(name, v.to_string(), d);
    }

    fn strings(&self, path: &[&str]) -> Vec<String> {
        self.val(path)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|s| {
                        s.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| s.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn str(&self, path: &[&str]) -> String {
        self.val(path)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    fn retention(&mut self) {
        self.title("Retention:");
        for (name, f) in [
            ("  Annual snapshots:", "keepAnnual"),
            ("  Monthly snapshots:", "keepMonthly"),
            ("  Weekly snapshots:", "keepWeekly"),
            ("  Daily snapshots:", "keepDaily"),
            ("  Hourly snapshots:", "keepHourly"),
            ("  Latest snapshots:", "keepLatest"),
        ] {
            self.int(name, &["retention", f]);
        }
        self.boolean(
            "  Ignore identical snapshots:",
            &["retention", "ignoreIdenticalSnapshots"],
            false,
        );
    }

    fn files(&mut self) {
        self.title("Files policy:");
        self.boolean(
            "  Ignore cache directories:",
            &["files", "ignoreCacheDirs"],
            true,
        );
        let rules = self.strings(&["files", "ignore"]);
        if rules.is_empty() {
            self.title("  No ignore rules:");
        } else {
            let d = self.def(&["files", "ignore"]);
            self.row("  Ignore rules:", String::new(), d);
            for r in rules {
                self.title(&format!("    {r}"));
            }
        }
        let dots = self.strings(&["files", "ignoreDotFiles"]);
        if !dots.is_empty() {
            let d = self.def(&["files", "ignoreDotFiles"]);
            self.row("  Read ignore rules from files:", String::new(), d);
            for f in dots {
                self.title(&format!("    {f}"));
            }
        }
        if let Some(n) = self
            .val(&["files", "maxFileSize"])
            .and_then(Value::as_i64)
            .filter(|n| *n > 0)
        {
            let d = self.def(&["files", "maxFileSize"]);
            self.row("  Ignore files above:", units::bytes(n), d);
        }
        self.boolean(
            "  Scan one filesystem only:",
            &["files", "oneFileSystem"],
            false,
        );
    }

    fn error_handling(&mut self) {
        self.title("Error handling policy:");
        self.boolean(
            "  Ignore file read errors:",
            &["errorHandling", "ignoreFileErrors"],
            false,
        );
        self.boolean(
            "  Ignore directory read errors:",
            &["errorHandling", "ignoreDirectoryErrors"],
            false,
        );
        self.boolean(
            "  Ignore unknown types:",
            &["errorHandling", "ignoreUnknownTypes"],
            true,
        );
    }

    fn scheduling(&mut self) {
        self.title("Scheduling policy:");
        self.title("  Scheduled snapshots:");
        let mut any = false;
        if let Some(s) = self
            .val(&["scheduling", "intervalSeconds"])
            .and_then(Value::as_i64)
            .filter(|s| *s != 0)
        {
            let d = self.def(&["scheduling", "intervalSeconds"]);
            self.row(
                "    Snapshot interval:",
                units::duration(chrono::Duration::seconds(s)),
                d,
            );
            any = true;
        }
        let times: Vec<String> = self
            .val(&["scheduling", "timeOfDay"])
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|t| {
                        format!(
                            "{}:{:02}",
                            t["hour"].as_i64().unwrap_or(0),
                            t["min"].as_i64().unwrap_or(0)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !times.is_empty() {
            self.boolean(
                "  Run missed snapshots:",
                &["scheduling", "runMissed"],
                false,
            );
            let d = self.def(&["scheduling", "timeOfDay"]);
            self.row("  Snapshot times:", String::new(), d);
            for t in times {
                self.title(&format!("    {t}"));
            }
            any = true;
        }
        let cron = self.strings(&["scheduling", "cron"]);
        if !cron.is_empty() {
            let d = self.def(&["scheduling", "cron"]);
            self.row("  Crontab expressions:", String::new(), d);
            for c in cron {
                self.title(&format!("    {c}"));
            }
            any = true;
        }
        if !any {
            self.title("    None.");
        }
        self.boolean("  Manual snapshot:", &["scheduling", "manual"], false);
    }

    fn upload(&mut self) {
        self.title("Uploads:");
        self.int(
            "  Max parallel snapshots (server/UI):",
            &["upload", "maxParallelSnapshots"],
        );
        self.int(
            "  Max parallel file reads:",
            &["upload", "maxParallelFileReads"],
        );
        let v = self
            .val(&["upload", "parallelUploadAboveSize"])
            .and_then(Value::as_i64)
            .map(units::bytes)
            .unwrap_or_else(|| "-".into());
        let d = self.def(&["upload", "parallelUploadAboveSize"]);
        self.row("  Parallel upload above size:", v, d);
    }

    fn compression(&mut self) {
        let name = self.str(&["compression", "compressorName"]);
        if name.is_empty() || name == "none" {
            self.title("Compression disabled.");
            return;
        }
        self.title("Compression:");
        let d = self.def(&["compression", "compressorName"]);
        self.row("  Compressor:", name, d);
        let only = self.strings(&["compression", "onlyCompress"]);
        let never = self.strings(&["compression", "neverCompress"]);
        if !only.is_empty() {
            let d = self.def(&["compression", "onlyCompress"]);
            self.row(
                "  Only compress files with the following extensions:",
                String::new(),
                d,
            );
            for r in only {
                self.title(&format!("     - {r}"));
            }
        } else if !never.is_empty() {
            let d = self.def(&["compression", "neverCompress"]);
            self.row(
                "  Compress all files except the following extensions:",
                String::new(),
                d,
            );
            for r in never {
                self.title(&format!("    {r}"));
            }
        } else {
            self.title("  Compress files regardless of extensions.");
        }
        let min = self
            .val(&["compression", "minSize"])
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let max = self
            .val(&["compression", "maxSize"])
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if max > 0 {
            self.title(&format!(
                "  Only compress files between {} and {}.",
                units::bytes(min),
                units::bytes(max)
            ));
        } else if min > 0 {
            self.title(&format!(
                "  Only compress files bigger than {}.",
                units::bytes(min)
            ));
        } else {
            self.title("  Compress files of all sizes.");
        }
    }

    fn metadata_compression(&mut self) {
        let name = self.str(&["metadataCompression", "compressorName"]);
        if name.is_empty() || name == "none" {
            self.title("Metadata compression disabled.");
            return;
        }
        self.title("Metadata compression:");
        let d = self.def(&["metadataCompression", "compressorName"]);
        self.row("  Compressor:", name, d);
    }

    fn splitter(&mut self) {
        let mut alg = self.str(&["splitter", "algorithm"]);
        if alg.is_empty() {
            alg = "(repository default)".into();
        }
        self.title("Splitter:");
        let d = self.def(&["splitter", "algorithm"]);
        self.row("  Algorithm override:", alg, d);
    }

    fn actions(&mut self) {
        let mut any = false;
        for (title, field, inheritable) in [
            (
                "Run command before snapshot root:",
                "beforeSnapshotRoot",
                true,
            ),
            (
                "Run command after snapshot root:",
                "afterSnapshotRoot",
                true,
            ),
            ("Run command before this folder:", "beforeFolder", false),
            ("Run command after this folder:", "afterFolder", false),
        ] {
            let Some(a) = self.val(&["actions", field]).cloned() else {
                continue;
            };
            let d = if inheritable {
                self.def(&["actions", field])
            } else {
                "(non-inheritable)".into()
            };
            self.row(title, String::new(), d);
            if let Some(script) = a
                .get("script")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                self.title("  Embedded script (stored in repository):");
                let indented = script
                    .lines()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                self.title(&indented);
            } else {
                let args: Vec<String> = a
                    .get("args")
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                self.title("  Command:");
                self.title(&format!(
                    "    {} {}",
                    a.get("path").and_then(Value::as_str).unwrap_or_default(),
                    args.join(" ")
                ));
            }
            let mode = a
                .get("mode")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .unwrap_or("sync")
                .to_string();
            self.row("  Mode:", mode, String::new());
            let t = a.get("timeout").and_then(Value::as_i64).unwrap_or(0);
            self.row(
                "  Timeout:",
                units::duration(chrono::Duration::seconds(t)),
                String::new(),
            );
            self.title("");
            any = true;
        }
        if !any {
            self.title("No actions defined.");
        }
    }

    fn os_snapshots(&mut self) {
        self.title("OS-level snapshot support:");
        let path = ["osSnapshots", "volumeShadowCopy", "enable"];
        let v = match self.val(&path).and_then(Value::as_i64) {
            Some(1) => "always",
            Some(2) => "when-available",
            _ => "never",
        };
        let d = self.def(&path);
        self.row("  Volume Shadow Copy:", v.into(), d);
    }

    fn logging(&mut self) {
        self.title("Logging details (0-none, 10-maximum):");
        for (name, a, b) in [
            ("  Directory snapshotted:", "directories", "snapshotted"),
            ("  Directory ignored:", "directories", "ignored"),
            ("  Entry snapshotted:", "entries", "snapshotted"),
            ("  Entry ignored:", "entries", "ignored"),
            ("  Entry cache hit:", "entries", "cacheHit"),
            ("  Entry cache miss:", "entries", "cacheMiss"),
        ] {
            let path = ["logging", a, b];
            let v = self.val(&path).and_then(Value::as_i64).unwrap_or(0);
            let d = self.def(&path);
            self.row(name, v.to_string(), d);
        }
    }
}

/// Kopia's alignment: values end in one column (the longest `name   value`), definitions
/// follow after three spaces.
fn aligned(rows: &[(String, String, String)]) -> String {
    let width = rows
        .iter()
        .filter(|(_, v, _)| !v.is_empty())
        .map(|(n, v, _)| n.len() + 3 + v.len())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(n, v, d)| {
            let mut l = n.clone();
            if !v.is_empty() || !d.is_empty() {
                let pad = width.saturating_sub(n.len() + v.len());
                l.push_str(&" ".repeat(pad));
                l.push_str(v);
            }
            if !d.is_empty() {
                l.push_str("   ");
                l.push_str(d);
            }
            l
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Kopia's `policy show` text for `si`.
pub fn text(repo: &Repository, si: &SourceInfo) -> Result<String> {
    let mut s = Shown {
        si,
        eff: effective_json(repo, si)?,
        chain: chain(repo, si)?,
        rows: Vec::new(),
    };
    // Kopia's defaults are defined at the global policy.
    s.chain.push((SourceInfo::default(), kopia_defaults()));
    s.retention();
    s.title("");
    s.files();
    s.title("");
    s.error_handling();
    s.title("");
    s.scheduling();
    s.title("");
    s.upload();
    s.title("");
    s.compression();
    s.title("");
    s.metadata_compression();
    s.title("");
    s.splitter();
    s.title("");
    s.actions();
    s.title("");
    s.os_snapshots();
    s.title("");
    s.logging();
    Ok(format!("Policy for {si}:\n\n{}\n", aligned(&s.rows)))
}
