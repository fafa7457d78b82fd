//! Drives the real `kopr` binary through the commands users reach for when something is wrong
//! (`repository change-password`, `manifest`, `blob show | delete`, `session list`, `index epoch
//! list`) and checks what each one did to the repository, not only its exit status; `logs`,
//! `cache`, `snapshot pin`, the aliases and `completion` are in `cli_commands_more.rs`.

use kopr_testkit::cli::{one_error_line, Kopr, PASSWORD};
use kopr_testkit::fixtures::Fixture;
use std::path::PathBuf;

mod commands_common;
use commands_common::*;

#[test]
fn change_password_reopens_with_the_new_one_only_and_keeps_every_snapshot() {
    let e = Env::small_tree(BIN);
    let id = e.snapshot();
    let key_file = PathBuf::from(format!("{}.kopr-key", e.k.cfg().display()));
    let key_before = std::fs::read(&key_file).expect("derived key remembered at create");
    let blobcfg_before = std::fs::metadata(e.blob_file("kopia.blobcfg"))
        .unwrap()
        .len();

    let err =
        e.k.ok_stderr(&["repository", "change-password", "--new-password", "n3w-pw"]);
    assert!(
        err.contains("NOTE: Repository password has been changed."),
        "{err}"
    );

    // The old password is refused, the new one opens and every snapshot restores.
    let old = e.k.run(&["snapshot", "ls"]);
    assert!(
        one_error_line(&old).contains("invalid repository password"),
        "{}",
        stderr(&old)
    );
    let newk = e.k.clone().with_password("n3w-pw");
    assert!(newk.ok(&["snapshot", "ls", "-m"]).contains(&id));
    assert_restores(&newk, &id, &e.src, &e.dir.path().join("r1"));
    // Written again under the new key, same size (same plaintext).
    assert_eq!(
        std::fs::metadata(e.blob_file("kopia.blobcfg"))
            .unwrap()
            .len(),
        blobcfg_before
    );

    // The persisted password and the remembered key are the new ones: with no password given
    // the connection opens, and the key file changed.
    let out =
        e.k.cmd(&["snapshot", "ls", "-m"])
            .env_remove("KOPR_PASSWORD")
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let key_after = std::fs::read(&key_file).unwrap();
    assert_ne!(key_before, key_after);

    // Reconnecting from scratch with the new password works; with the old one it does not.
    e.k.ok(&["repository", "disconnect"]);
    let path = e.repo.to_str().unwrap();
    let bad =
        e.k.run(&["repository", "connect", "filesystem", "--path", path]);
    assert!(one_error_line(&bad).contains("invalid repository password"));
    newk.ok(&["repository", "connect", "filesystem", "--path", path]);
    assert_restores(&newk, &id, &e.src, &e.dir.path().join("r2"));

    // And back again: a second change works from the new password.
    newk.ok(&["repository", "change-password", "--new-password", PASSWORD]);
    assert_restores(&e.k, &id, &e.src, &e.dir.path().join("r3"));
}

#[test]
fn change_password_reads_the_environment_and_refuses_no_password() {
    let e = Env::small_tree(BIN);
    let out = e.k.run(&["repository", "change-password"]);
    assert!(one_error_line(&out).contains("new password required"));
    let out =
        e.k.cmd(&["repository", "change-password"])
            .env("KOPIA_NEW_PASSWORD", "from-env")
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    e.k.clone()
        .with_password("from-env")
        .ok(&["snapshot", "ls"]);
}

/// A crash at each step of the change leaves a repository that one of the two passwords opens
/// with every snapshot intact.
#[test]
fn change_password_interrupted_at_each_write_loses_nothing() {
    for crash_after in 1..=2 {
        let e = Env::small_tree(BIN);
        let id = e.snapshot();
        let out =
            e.k.cmd(&["repository", "change-password", "--new-password", "n3w-pw"])
                .env("KOPR_TEST_CRASH_AFTER_BLOB_WRITES", crash_after.to_string())
                .output()
                .unwrap();
        assert!(!out.status.success(), "the hook must have fired");
        assert!(
            stderr(&out).contains(&format!("abort after blob write {crash_after}")),
            "{}",
            stderr(&out)
        );
        // After the first write (kopia.repository) the blobcfg is still absent, which means
        // what it said (no retention); after the second it is back.
        assert_eq!(e.blob_file("kopia.blobcfg").exists(), crash_after == 2);
        let newk = e.k.clone().with_password("n3w-pw");
        let old = e.k.run(&["snapshot", "ls"]);
        assert!(one_error_line(&old).contains("invalid repository password"));
        assert_restores(&newk, &id, &e.src, &e.dir.path().join("r"));
        newk.ok(&["snapshot", "verify"]);
        // The interrupted run persisted nothing: with no password given, the old persisted one
        // is tried and refused; the remembered key does not open the repository either.
        let out =
            e.k.cmd(&["snapshot", "ls"])
                .env_remove("KOPR_PASSWORD")
                .output()
                .unwrap();
        assert!(one_error_line(&out).contains("invalid repository password"));
    }
}

#[test]
fn change_password_is_refused_for_format_version_1_and_changes_nothing() {
    let Some(fx) = Fixture::load("format-v1") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (repo, k) = fx.connect_copy(BIN, dir.path());
    let before = std::fs::read(repo.join("kopia.repository.f")).unwrap();
    let out = k.run(&["repository", "change-password", "--new-password", "n3w-pw"]);
    let line = one_error_line(&out);
    assert!(
        line.contains("password changes are not supported"),
        "{line}"
    );
    assert_eq!(
        before,
        std::fs::read(repo.join("kopia.repository.f")).unwrap()
    );
    k.ok(&["snapshot", "ls", "--all"]);
}

/// `manifest list` lines: `ID LENGTH DATE TIME ZONE type:T labels...`.
fn manifest_lines(k: &Kopr, args: &[&str]) -> Vec<(String, String)> {
    let mut a = vec!["manifest", "list"];
    a.extend_from_slice(args);
    k.ok(&a)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let ty = f.iter().find(|w| w.starts_with("type:")).unwrap();
            (f[0].to_string(), ty.to_string())
        })
        .collect()
}

#[test]
fn manifest_list_show_and_delete_on_snapshots_and_policies() {
    let e = Env::small_tree(BIN);
    let s1 = e.snapshot();
    let s2 = e.snapshot();
    e.k.ok(&[
        "policy",
        "set",
        e.src.to_str().unwrap(),
        "--keep-latest",
        "5",
    ]);

    let all = manifest_lines(&e.k, &[]);
    let types: Vec<&str> = all.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "type:snapshot").count(), 2);
    assert_eq!(types.iter().filter(|t| **t == "type:policy").count(), 2); // global + the path
    let snaps = manifest_lines(&e.k, &["--filter", "type:snapshot"]);
    assert_eq!(
        snaps.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        vec![s1.clone(), s2.clone()],
        "oldest first"
    );
    let pols = manifest_lines(&e.k, &["--filter=type:policy", "--sort=policyType"]);
    assert_eq!(pols.len(), 2);
    let text = e.k.ok(&[
        "manifest",
        "list",
        "--filter=type:policy",
        "--sort=policyType",
    ]);
    let first = text.lines().next().unwrap();
    assert!(
        first.contains("policyType:global"),
        "global sorts before path: {text}"
    );

    json_lists_kopias_entry_metadata(&e.k, &s1);

    show_prints_headers_then_the_snapshot(&e, &s1);

    // delete is refused without --dangerous-commands=enabled and changes nothing ...
    let refused = e.k.run(&["manifest", "delete", &s1]);
    assert!(one_error_line(&refused).contains("dangerous commands are disabled"));
    assert_eq!(
        manifest_lines(&e.k, &["--filter", "type:snapshot"]).len(),
        2
    );
    // ... and with it the snapshot is gone from `snapshot ls`, the other one still restores.
    e.k.ok(&["--dangerous-commands=enabled", "manifest", "rm", &s1]);
    let ls = e.k.ok(&["snapshot", "ls", "-m"]);
    assert!(!ls.contains(&s1) && ls.contains(&s2), "{ls}");
    assert_restores(&e.k, &s2, &e.src, &e.dir.path().join("r"));
    // A policy manifest too: the path's policy goes, `policy show` falls back to global.
    let path_policy = &manifest_lines(&e.k, &["--filter=policyType:path"])[0].0;
    let out =
        e.k.cmd(&["manifest", "delete", path_policy])
            .env("KOPIA_DANGEROUS_COMMANDS", "enabled")
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(manifest_lines(&e.k, &["--filter=policyType:path"]).is_empty());
    assert_eq!(manifest_lines(&e.k, &["--filter=type:policy"]).len(), 1);
}

/// show: the header lines, then the payload indented, which is the snapshot; an unknown id
/// is one line.
fn show_prints_headers_then_the_snapshot(e: &Env, s1: &str) {
    let shown = e.k.ok(&["manifest", "show", s1]);
    assert!(
        shown.starts_with(&format!("// id: {s1}\n// length: ")),
        "{shown}"
    );
    assert!(shown.contains("// label type:snapshot\n"));
    let body: String = shown
        .lines()
        .filter(|l| !l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let snap: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(snap["source"]["path"], e.src.to_str().unwrap());
    assert!(body.contains("\n  \"source\": {\n    \"host\": "), "{body}");
    let length: usize = shown.lines().nth(1).unwrap()["// length: ".len()..]
        .parse()
        .unwrap();
    let compact = serde_json::to_string(&snap).unwrap();
    assert!(length >= compact.len() - 16, "length is the payload's");
    let bad =
        e.k.run(&["manifest", "show", "0123456789abcdef0123456789abcdef"]);
    assert!(one_error_line(&bad).contains("error getting metadata"));
}

/// JSON: Kopia's list of entry metadata, fields in its order.
fn json_lists_kopias_entry_metadata(k: &Kopr, s1: &str) {
    let json = k.ok(&["manifest", "list", "--json", "--filter", "type:snapshot"]);
    assert!(json.starts_with("[\n {\"id\":\""), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["id"], s1);
    assert_eq!(v[1]["labels"]["type"], "snapshot");
    let line1 = json.lines().nth(1).unwrap();
    let (i, l, lb, m) = (
        line1.find("\"id\"").unwrap(),
        line1.find("\"length\"").unwrap(),
        line1.find("\"labels\"").unwrap(),
        line1.find("\"mtime\"").unwrap(),
    );
    assert!(i < l && l < lb && lb < m, "{line1}");
}

#[test]
fn blob_show_prints_raw_and_decrypted_blobs_of_kopias_repository() {
    let Some(fx) = Fixture::load("default") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (repo, k) = fx.connect_copy(BIN, dir.path());
    let files = blob_files(&repo);

    // Raw: the stored bytes.
    let out = k
        .cmd(&["blob", "show", "kopia.repository"])
        .output()
        .unwrap();
    assert_eq!(
        out.stdout,
        std::fs::read(&files["kopia.repository"]).unwrap()
    );

    // A log blob decrypts to a gzip stream; an epoch index blob to Kopia's index (v2 magic).
    let log_id = files.keys().find(|k| k.starts_with("_log")).unwrap();
    let raw = k.cmd(&["blob", "show", log_id]).output().unwrap().stdout;
    assert_eq!(raw, std::fs::read(&files[log_id]).unwrap());
    let plain = k
        .cmd(&["blob", "cat", "--decrypt", log_id])
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert_eq!(&plain.stdout[..2], &[0x1f, 0x8b], "gzip");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&plain.stdout[..]),
        &mut text,
    )
    .unwrap();
    assert!(
        text.lines().next().unwrap().starts_with('{'),
        "JSON lines: {text}"
    );

    let x_id = files.keys().find(|k| k.starts_with("xn")).unwrap();
    let x = k
        .cmd(&["blob", "show", "--decrypt", x_id])
        .output()
        .unwrap();
    assert!(x.status.success(), "{}", stderr(&x));
    assert_eq!(x.stdout[0], 2, "index v2 starts with its version byte");

    // A damaged blob does not decrypt: one error line.
    let mut bytes = std::fs::read(&files[log_id]).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&files[log_id], bytes).unwrap();
    let bad = k.run(&["blob", "show", "--decrypt", log_id]);
    assert!(one_error_line(&bad).contains("error decrypting blob"));
    let missing = k.run(&["blob", "show", "pdoesnotexist"]);
    assert!(one_error_line(&missing).contains("error reading blob"));
}

#[test]
fn blob_delete_and_gc_remove_only_what_they_should() {
    let e = Env::small_tree(BIN);
    let id = e.snapshot();
    let st = kopr_blob::filesystem::FilesystemStorage::open(&e.repo).unwrap();
    use kopr_blob::BlobStorage as _;
    let opts = kopr_blob::PutOptions::default();
    // Orphaned packs: one old (of a dead session), one young; and an old stray blob to delete.
    let old = "p0123456789abcdef0123456789abcdef-s0123456789abcdef";
    let young = "q0123456789abcdef0123456789abcdee-s0123456789abcdef";
    for b in [old, young, "zstray"] {
        st.put_blob(b, b"not a real pack", &opts).unwrap();
    }
    let files = blob_files(&e.repo);
    set_age_days(&files[old], 3);
    let used_packs: Vec<String> = files
        .keys()
        .filter(|k| {
            (k.starts_with('p') || k.starts_with('q')) && k.as_str() != old && k.as_str() != young
        })
        .cloned()
        .collect();
    assert!(!used_packs.is_empty());

    // Both refused without --dangerous-commands=enabled.
    for args in [&["blob", "delete", "zstray"][..], &["blob", "gc"][..]] {
        let out = e.k.run(args);
        assert!(one_error_line(&out).contains("dangerous commands are disabled"));
    }
    assert!(blob_files(&e.repo).contains_key("zstray"));

    let dk = |args: &[&str]| {
        let mut a = vec!["--dangerous-commands=enabled"];
        a.extend_from_slice(args);
        e.k.ok_stderr(&a)
    };
    dk(&["blob", "rm", "zstray"]);
    assert!(!blob_files(&e.repo).contains_key("zstray"));

    // Dry run: names the old orphan only, deletes nothing.
    let log = dk(&["blob", "gc"]);
    assert!(log.contains(&format!("unreferenced {old}")), "{log}");
    assert!(!log.contains(young), "{log}");
    assert!(
        log.contains("Found 1 unreferenced pack blobs to delete"),
        "{log}"
    );
    assert!(log.contains("Pass --delete=yes to delete."), "{log}");
    assert!(blob_files(&e.repo).contains_key(old));

    // --delete=yes: the old orphan goes, the young one and every used pack stay.
    let log = dk(&["blob", "gc", "--delete=yes"]);
    assert!(log.contains("Deleted total 1 unreferenced blobs"), "{log}");
    let after = blob_files(&e.repo);
    assert!(!after.contains_key(old) && after.contains_key(young));
    for p in &used_packs {
        assert!(after.contains_key(p), "{p} was in use");
    }
    // With --safety=none the young one goes too; the snapshot still verifies and restores.
    dk(&["blob", "gc", "--delete=yes", "--safety=none", "--prefix=q"]);
    assert!(!blob_files(&e.repo).contains_key(young));
    e.k.ok(&["snapshot", "verify"]);
    assert_restores(&e.k, &id, &e.src, &e.dir.path().join("r"));
}

#[test]
fn session_list_names_the_live_sessions_of_interrupted_snapshots() {
    let e = Env::small_tree(BIN);
    assert_eq!(e.k.ok(&["session", "list"]), "");
    // A snapshot killed right after its first write (its session marker) leaves a live session.
    let out =
        e.k.cmd(&["snapshot", "create", e.src.to_str().unwrap()])
            .env("KOPR_TEST_CRASH_AFTER_BLOB_WRITES", "1")
            .output()
            .unwrap();
    let err = stderr(&out);
    let marker = err
        .split("abort after blob write 1: ")
        .nth(1)
        .expect("the hook fired")
        .trim();
    assert!(marker.starts_with('s'), "{err}");
    let sid = marker.rsplit('-').next().unwrap();
    let list = e.k.ok(&["session", "ls"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 1, "{list}");
    let f: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(f[0], sid);
    assert!(f[1].contains('@'), "{list}");
    assert_eq!(f.len(), 8, "ID USER@HOST START(3) CHECKPOINT(3): {list}");
    // Once the marker is gone, so is the session.
    e.k.ok(&["--dangerous-commands=enabled", "blob", "delete", marker]);
    assert_eq!(e.k.ok(&["session", "list"]), "");
}

#[test]
fn index_epoch_list_counts_the_epochs_index_blobs() {
    let e = Env::small_tree(BIN);
    e.snapshot();
    e.snapshot();
    let x: Vec<(String, u64)> = blob_files(&e.repo)
        .into_iter()
        .filter(|(id, _)| id.starts_with("xn0_"))
        .map(|(id, p)| (id, std::fs::metadata(p).unwrap().len()))
        .collect();
    assert!(!x.is_empty());
    let total: u64 = x.iter().map(|(_, l)| l).sum();
    let out = e.k.ok(&["index", "epoch", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Current Epoch: 0", "{out}");
    let epoch0 = lines
        .iter()
        .find(|l| l.starts_with("0 "))
        .expect("epoch 0 line");
    assert!(
        epoch0.contains(&format!(
            ", {} blobs, {}, span ",
            x.len(),
            kopr_format::units::bytes(total as i64)
        )),
        "{out}"
    );
    assert!(epoch0.contains(" UTC ... "), "{out}");

    if let Some(fx) = Fixture::load("format-v1") {
        let dir = tempfile::tempdir().unwrap();
        let repo = fx.copy_repo(&dir.path().join("repo"));
        let k = Kopr::new(BIN, &dir.path().join("c")).with_password(&fx.expected.password);
        k.ok(&[
            "repository",
            "connect",
            "filesystem",
            "--path",
            repo.to_str().unwrap(),
        ]);
        let out = k.run(&["index", "epoch", "list"]);
        assert!(one_error_line(&out).contains("epoch manager is not active"));
    }
}
