//! Kopia's own repositories, opened by kopr: for each fixture written by Kopia 0.23.1 (see
//! `kopr_testkit::fixtures`), on a copy, `snapshot ls --all` lists exactly the live snapshots,
//! every live snapshot restores equal to the tree Kopia snapshotted (bytes, types, modes with
//! setuid/setgid/sticky, mtimes in nanoseconds, symlink targets, owners as root), `snapshot
//! verify` and `content verify` are clean, `content stats` and `snapshot ls --all
//! --storage-stats` print Kopia's text; then kopr writes into the copy (a snapshot, a deletion,
//! a full maintenance cycle with `--safety=none`) and every live snapshot still restores.

use std::path::PathBuf;

use kopr_format::snapshot::{DirManifest, EntryType};
use kopr_testkit::cli::Kopr;
use kopr_testkit::fixtures::{ExpectedSnapshot, Fixture};
use kopr_testkit::tree::{self, Compare};

const BIN: &str = env!("CARGO_BIN_EXE_kopr");

/// A connection to a copy of one fixture.
struct Opened {
    fx: Fixture,
    kopr: Kopr,
    tmp: tempfile::TempDir,
    repo: PathBuf,
}

/// `user`, `host` of a `user@host:/path` source.
fn identity(source: &str) -> (String, String) {
    let (user, rest) = source.split_once('@').expect("user@host:path");
    let host = rest.split_once(':').map(|(h, _)| h).unwrap_or(rest);
    (user.to_string(), host.to_string())
}

fn open(name: &str) -> Option<Opened> {
    let fx = Fixture::load(name)?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = fx.copy_repo(&tmp.path().join("repo"));
    let kopr =
        Kopr::new(BIN, &tmp.path().join("repository.config")).with_password(&fx.expected.password);
    let (user, host) = identity(&fx.expected.snapshots[0].source);
    kopr.ok(&[
        "repository",
        "connect",
        "filesystem",
        "--path",
        repo.to_str().expect("utf-8"),
        "--override-username",
        &user,
        "--override-hostname",
        &host,
    ]);
    Some(Opened {
        fx,
        kopr,
        tmp,
        repo,
    })
}

impl Opened {
    /// Live snapshot ids and root object ids as kopr lists them, sorted.
    fn listed(&self) -> Vec<(String, String)> {
        let out = self.kopr.ok(&["snapshot", "ls", "--all", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("snapshot ls --json");
        let mut ids: Vec<(String, String)> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or_default().to_string(),
                    m["rootEntry"]["obj"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        ids.sort();
        ids
    }

    /// Restores snapshot `s` to a new directory and compares it with its tree.
    fn assert_restores(&self, s: &ExpectedSnapshot, into: &str) {
        let dest = self.tmp.path().join(into);
        // Owners are restored by default (as root), as Kopia does.
        self.kopr
            .ok(&["snapshot", "restore", &s.id, dest.to_str().expect("utf-8")]);
        let d = tree::differences(&s.nodes(), &tree::scan(&dest), Compare::all());
        assert!(
            d.is_empty(),
            "{}: snapshot {} restores differently from what Kopia snapshotted:\n{}",
            self.fx.name,
            s.id,
            d.join("\n")
        );
    }

    /// Raw bytes of an object.
    fn object(&self, oid: &str) -> Vec<u8> {
        let out = self.kopr.run(&["show", oid]);
        assert!(out.status.success(), "show {oid}");
        out.stdout
    }

    /// Walks the directory objects below `root` (at most `limit`): each decodes and encodes
    /// back to exactly the bytes stored, so kopr writes directories as Kopia does (field
    /// names, omitted fields, `"entries":null`, Go mode bits, directories-first order).
    fn assert_directories_reencode(&self, root: &str, limit: usize) -> usize {
        let mut todo = vec![root.to_string()];
        let mut seen = 0;
        while let Some(oid) = todo.pop() {
            if seen == limit {
                break;
            }
            seen += 1;
            let bytes = self.object(&oid);
            let dm = DirManifest::decode(&bytes).expect("directory object decodes");
            assert_eq!(
                String::from_utf8_lossy(&dm.encode()),
                String::from_utf8_lossy(&bytes),
                "{}: directory {oid} re-encodes differently",
                self.fx.name
            );
            let mut sorted = dm.entries.clone();
            DirManifest::sort_entries(&mut sorted);
            assert_eq!(sorted, dm.entries, "{}: {oid} order", self.fx.name);
            todo.extend(
                dm.entries
                    .iter()
                    .filter(|e| e.entry_type == EntryType::Directory)
                    .map(|e| e.object_id.to_string()),
            );
        }
        seen
    }

    /// Every snapshot manifest in the repository's manifest contents decodes and encodes back
    /// to exactly the JSON stored (field names, order, omitted fields, time formats), so kopr
    /// writes snapshot manifests as Kopia does. Returns how many were checked.
    fn assert_snapshot_manifests_reencode(&self) -> usize {
        let ids = self.kopr.ok(&["content", "ls", "--prefix", "m"]);
        let mut checked = 0;
        for id in ids.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let out = self.kopr.run(&["content", "show", id]);
            assert!(out.status.success(), "content show {id}");
            let entries = kopr_format::manifest::decode_batch(&out.stdout).expect("manifest");
            for e in entries.iter().filter(|e| !e.deleted) {
                if e.labels.get("type").map(String::as_str) != Some("snapshot") {
                    continue;
                }
                let m: kopr_format::snapshot::SnapshotManifest =
                    serde_json::from_str(e.data.get()).expect("snapshot manifest");
                assert_eq!(
                    serde_json::to_string(&m).expect("encode"),
                    e.data.get(),
                    "{}: manifest {} re-encodes differently",
                    self.fx.name,
                    e.id
                );
                checked += 1;
            }
        }
        checked
    }

    fn assert_verifies(&self) {
        let out = self.kopr.ok(&["snapshot", "verify"]);
        assert!(out.contains(" 0 errors"), "{}: {out}", self.fx.name);
        let out = self.kopr.run(&["content", "verify", "--full"]);
        assert!(
            out.status.success(),
            "{}: content verify: {}{}",
            self.fx.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `content stats` with the "By Method" lines sorted (Kopia prints them in Go's map order,
/// which varies from run to run; `(uncompressed)` stays first).
fn normalized_content_stats(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut methods: Vec<String> = Vec::new();
    let mut in_methods = false;
    for line in text.lines() {
        if line == "By Method:" {
            in_methods = true;
            out.push(line.into());
            continue;
        }
        if in_methods && line.starts_with("  ") && !line.starts_with("  (uncompressed)") {
            methods.push(line.into());
            continue;
        }
        if in_methods && !line.starts_with("  ") {
            in_methods = false;
            methods.sort();
            out.append(&mut methods);
        }
        out.push(line.into());
    }
    methods.sort();
    out.append(&mut methods);
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

/// The "Recent Maintenance Runs:" part of `maintenance info`, task by task in name order
/// (Kopia prints tasks in Go's map order).
fn recent_runs(text: &str) -> Vec<(String, Vec<String>)> {
    let mut tasks: Vec<(String, Vec<String>)> = Vec::new();
    let part = text
        .split_once("Recent Maintenance Runs:\n")
        .map(|(_, p)| p)
        .unwrap_or_default();
    for line in part.lines() {
        if let Some(t) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
            tasks.push((t.to_string(), Vec::new()));
        } else if let Some(last) = tasks.last_mut() {
            last.1.push(line.trim().to_string());
        }
    }
    tasks.sort();
    tasks
}

/// The whole check of one fixture; `kopia_text` compares Kopia's printed outputs too.
fn check_fixture(name: &str, kopia_text: bool) {
    let Some(o) = open(name) else { return };
    let live: Vec<&ExpectedSnapshot> = o.fx.live_snapshots();
    assert!(!live.is_empty(), "{name}: no live snapshot");

    // Exactly the live snapshots, with Kopia's root objects.
    let mut want: Vec<(String, String)> = live
        .iter()
        .map(|s| (s.id.clone(), s.root.clone()))
        .collect();
    want.sort();
    assert_eq!(o.listed(), want, "{name}: snapshot ls --all");

    for (i, s) in live.iter().enumerate() {
        if s.tree.is_some() {
            o.assert_restores(s, &format!("restore-{i}"));
        }
        assert!(o.assert_directories_reencode(&s.root, 60) > 0);
    }
    o.assert_verifies();
    assert!(
        o.assert_snapshot_manifests_reencode() >= live.len(),
        "{name}: manifests"
    );
    compare_with_kopias_output(&o, name, kopia_text, &live);
    kopr_writes_into_kopias_repository(&o, name, &live);
}

/// With `kopia_text`: `content stats`, `repository status`, `maintenance info` and `snapshot ls --storage-stats` print what Kopia printed for the fixture.
fn compare_with_kopias_output(
    o: &Opened,
    name: &str,
    kopia_text: bool,
    live: &[&ExpectedSnapshot],
) {
    if kopia_text {
        let ours = o.kopr.ok(&["content", "stats"]);
        assert_eq!(
            normalized_content_stats(&ours),
            normalized_content_stats(o.fx.kopia_output("content stats")),
            "{name}: content stats"
        );
        same_repository_status(o, name);
        snapshot_ls_json_has_kopias_fields(o, name, live.len());
        let (user, host) = identity(&o.fx.expected.snapshots[0].source);
        let mi: serde_json::Value =
            serde_json::from_str(&o.kopr.ok(&["maintenance", "info", "--json"])).expect("json");
        assert_eq!(mi["owner"], format!("{user}@{host}").as_str(), "{mi}");
        assert!(mi["schedule"]["runs"].is_object(), "{mi}");
        let ours = o.kopr.ok(&["maintenance", "info"]);
        let kopia = o.fx.kopia_output("maintenance info");
        assert_eq!(
            recent_runs(&ours),
            recent_runs(kopia),
            "{name}: maintenance info"
        );
        let ours = o.kopr.ok(&["snapshot", "ls", "--all", "--storage-stats"]);
        assert_eq!(
            ours.trim_end(),
            o.fx.kopia_output("snapshot ls --all --storage-stats")
                .trim_end(),
            "{name}: snapshot ls --all --storage-stats"
        );
    }
}

/// `repository status` as the fixture recorded it (without the config file and capacity
/// lines, the repository's path replaced by `<repo>`), and its `--json` with Kopia's field
/// names (scripts written for Kopia read kopr's).
fn same_repository_status(o: &Opened, name: &str) {
    let ours: Vec<String> = o
        .kopr
        .ok(&["repository", "status"])
        .replace(o.repo.to_str().expect("utf-8"), "<repo>")
        .lines()
        .filter(|l| {
            !["Config file:", "Storage capacity:", "Storage available:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect();
    // Kopia records `dirShards: [3, 3]` in the config of the connection that *created* a
    // format-1 repository (the fixture's output came from it); a later `connect` records
    // none, as kopr's does, and both read the `.shards` file.
    let kopia_text = o.fx.kopia_output("repository status").replace(
        "\"dirShards\": [\n                         3,\n                         3\n                       ]",
        "\"dirShards\": null",
    );
    let kopia: Vec<&str> = kopia_text.lines().collect();
    assert_eq!(ours, kopia, "{name}: repository status");
    // `--json` with Kopia's field names (scripts written for Kopia read kopr's).
    let js: serde_json::Value =
        serde_json::from_str(&o.kopr.ok(&["repository", "status", "--json"])).expect("json");
    let (user, host) = identity(&o.fx.expected.snapshots[0].source);
    assert_eq!(js["clientOptions"]["hostname"], host.as_str(), "{js}");
    assert_eq!(js["clientOptions"]["username"], user.as_str(), "{js}");
    assert_eq!(js["storage"]["type"], "filesystem", "{js}");
    assert!(js["contentFormat"]["hash"].is_string(), "{js}");
    assert!(js["contentFormat"]["epochParameters"].is_object(), "{js}");
    assert!(js["objectFormat"]["splitter"].is_string(), "{js}");
    assert!(
        js["volume"]["capacity"].as_u64().is_some_and(|c| c > 0),
        "{js}"
    );
}

/// `snapshot ls --json` carries Kopia's `retentionReason` and `storageStats`, one entry per
/// live snapshot.
fn snapshot_ls_json_has_kopias_fields(o: &Opened, name: &str, live: usize) {
    let ls: serde_json::Value =
        serde_json::from_str(
            &o.kopr
                .ok(&["snapshot", "ls", "--all", "--json", "--storage-stats"]),
        )
        .expect("json");
    let ls = ls.as_array().expect("array");
    assert_eq!(ls.len(), live, "{name}");
    for m in ls {
        assert!(m["retentionReason"].is_array(), "{name}: {m}");
        assert!(
            m["storageStats"]["newData"]["packedContentBytes"].is_u64(),
            "{m}"
        );
        assert!(
            m["storageStats"]["runningTotal"]["contents"].is_u64(),
            "{m}"
        );
    }
}

/// kopr writes into Kopia's repository: a new snapshot, a deletion, full maintenance; the rest still restores.
fn kopr_writes_into_kopias_repository(o: &Opened, name: &str, live: &[&ExpectedSnapshot]) {
    // kopr writes into Kopia's repository: a new snapshot, a deletion, full maintenance.
    let src = o.tmp.path().join("kopr-source");
    std::fs::create_dir_all(src.join("sub/empty")).expect("mkdir");
    std::fs::write(src.join("sub/a.txt"), kopr_testkit::random_bytes(7, 50_000)).expect("write");
    std::fs::write(src.join("b.bin"), kopr_testkit::random_bytes(8, 3 << 20)).expect("write");
    o.kopr
        .ok(&["snapshot", "create", src.to_str().expect("utf-8")]);
    let deleted = live[0];
    o.kopr.ok(&["snapshot", "delete", &deleted.id, "--delete"]);
    o.kopr
        .ok(&["maintenance", "run", "--full", "--safety=none"]);
    // kopr's own runs carry Kopia's statistics, so both tools print what each task did.
    for (task, runs) in recent_runs(&o.kopr.ok(&["maintenance", "info"])) {
        let newest = runs.first().expect("a run");
        assert!(newest.contains(") SUCCESS: "), "{name}: {task}: {newest}");
    }
    let mut after: Vec<String> = o.listed().into_iter().map(|(id, _)| id).collect();
    assert_eq!(after.len(), live.len(), "{name}: one deleted, one added");
    assert!(
        !after.contains(&deleted.id),
        "{name}: deleted snapshot listed"
    );
    for (i, s) in live.iter().skip(1).enumerate() {
        if s.tree.is_some() {
            o.assert_restores(s, &format!("after-{i}"));
        }
        after.retain(|id| id != &s.id);
    }
    let ours = after.pop().expect("kopr's snapshot listed");
    let dest = o.tmp.path().join("kopr-restore");
    o.kopr
        .ok(&["snapshot", "restore", &ours, dest.to_str().expect("utf-8")]);
    kopr_testkit::assert_same_tree(&src, &dest);
    o.assert_verifies();
}

#[test]
fn default_fixture_opens_restores_and_survives_kopr_maintenance() {
    check_fixture("default", true);
}

/// `ls -l` shows Go's mode strings (`u` setuid, `g` setgid, `t` sticky), sizes, times and
/// object ids in Kopia's columns, for Kopia's own directory `perm/`.
#[test]
fn ls_long_has_kopias_columns_and_mode_letters() {
    let Some(o) = open("default") else { return };
    let snap = &o.fx.live_snapshots()[0];
    let out = o.kopr.ok(&["ls", "-l", &format!("{}/perm", snap.root)]);
    let row = |name: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{out}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    let suid = row("suid-tool");
    assert_eq!(suid[0], "urwxr-xr-x", "{out}");
    assert_eq!(suid[1], "18", "{out}");
    assert_eq!(suid[5], "945efad717c19ef8fffeccadf8ca1af7", "{out}");
    assert_eq!(row("setgid-dir/")[0], "dgrwxr-xr-x", "{out}");
    assert_eq!(row("sticky-tmp/")[0], "dtrwxrwxrwx", "{out}");
    assert_eq!(row("none.bin")[0], "----------", "{out}");
    assert!(
        out.lines().next().is_some_and(|l| l.starts_with('d')),
        "dirs first: {out}"
    );
}

#[test]
fn algorithms_fixture_chacha_sha3_rabinkarp_pbkdf2() {
    check_fixture("algorithms", true);
}

#[test]
fn compressors_fixture_every_kopia_compressor() {
    check_fixture("compressors", true);
}

#[test]
fn ecc_fixture_reed_solomon_crc32_2_percent() {
    check_fixture("ecc", true);
}

#[test]
fn velero_fixture_default_at_default_many_small_files() {
    check_fixture("velero", true);
}

/// kopr's own directory objects have Kopia's exact shape: directories before files (by name
/// alone `b.bin` would come first), an empty directory as `"entries":null`, setuid/setgid/
/// sticky as Go's mode bits, a mode of 0 omitted, and a snapshot restores them all.
#[test]
fn kopr_writes_directories_as_kopia_does() {
    use std::os::unix::fs::PermissionsExt;
    let Some(o) = open("default") else { return };
    let src = o.tmp.path().join("modes");
    std::fs::create_dir_all(src.join("sub/empty")).expect("mkdir");
    std::fs::create_dir_all(src.join("sticky")).expect("mkdir");
    std::fs::write(src.join("b.bin"), b"bytes").expect("write");
    std::fs::write(src.join("suid"), b"#!/bin/sh\n").expect("write");
    std::fs::write(src.join("locked"), b"secret").expect("write");
    let chmod = |p: &str, m: u32| {
        std::fs::set_permissions(src.join(p), std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    chmod("suid", 0o4755);
    chmod("locked", 0o000);
    chmod("sticky", 0o1777);
    chmod("sub", 0o2750);
    o.kopr
        .ok(&["snapshot", "create", src.to_str().expect("utf-8")]);
    let listed = o
        .kopr
        .ok(&["snapshot", "ls", src.to_str().expect("utf-8"), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&listed).expect("json");
    let root = v[0]["rootEntry"]["obj"].as_str().expect("root").to_string();
    let json = String::from_utf8(o.object(&root)).expect("utf-8");
    let names: Vec<String> = DirManifest::decode(json.as_bytes())
        .expect("decode")
        .entries
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(
        names,
        ["sticky", "sub", "b.bin", "locked", "suid"],
        "{json}"
    );
    assert!(
        json.contains(r#""name":"sticky","type":"d","mode":"04000777""#),
        "{json}"
    );
    assert!(
        json.contains(r#""name":"sub","type":"d","mode":"020000750""#),
        "{json}"
    );
    assert!(
        json.contains(r#""name":"suid","type":"f","mode":"040000755""#),
        "{json}"
    );
    assert!(
        json.contains(r#""name":"locked","type":"f","size":6"#),
        "{json}"
    );
    let sub = DirManifest::decode(json.as_bytes())
        .expect("decode")
        .entries[1]
        .object_id
        .to_string();
    let sub_json = String::from_utf8(o.object(&sub)).expect("utf-8");
    let empty = DirManifest::decode(sub_json.as_bytes())
        .expect("decode")
        .entries[0]
        .object_id
        .to_string();
    let empty_json = String::from_utf8(o.object(&empty)).expect("utf-8");
    assert!(
        empty_json.starts_with(r#"{"stream":"kopia:directory","entries":null,"summary":{"#),
        "{empty_json}"
    );
    assert_eq!(o.assert_directories_reencode(&root, 10), 4);
    let dest = o.tmp.path().join("modes-restored");
    o.kopr.ok(&[
        "snapshot",
        "restore",
        &snapshot_id(&v),
        dest.to_str().expect("utf-8"),
    ]);
    kopr_testkit::assert_same_tree(&src, &dest);
}

fn snapshot_id(v: &serde_json::Value) -> String {
    v[0]["id"].as_str().expect("id").to_string()
}

#[test]
fn format_v1_fixture_legacy_indexes() {
    check_fixture("format-v1", true);
}

#[test]
fn format_v2_fixture() {
    check_fixture("format-v2", true);
}
