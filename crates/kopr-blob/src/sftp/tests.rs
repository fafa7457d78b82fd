//! The SFTP backend against OpenSSH's `sshd` on loopback: the conformance suite, Kopia's
//! sharded layout (the directory opens as a filesystem repository), the stored options'
//! field names, and one-line refusals of an unknown or changed host key and of wrong
//! credentials.

use super::*;
use crate::filesystem::FilesystemStorage;
use kopr_testkit::servers::Server;

fn opts(srv: &Server, path: &std::path::Path) -> SftpOptions {
    SftpOptions {
        path: path.to_string_lossy().into_owned(),
        host: "127.0.0.1".into(),
        port: srv.port(),
        username: srv.ssh_user(),
        keyfile: srv.ssh_key().to_string_lossy().into_owned(),
        known_hosts_data: srv.known_hosts(),
        ..Default::default()
    }
}

#[test]
fn conformance_on_sshd() {
    let Some(srv) = Server::sshd() else { return };
    let st = SftpStorage::open(opts(&srv, &srv.data().join("repo")), true).unwrap();
    crate::conformance::run(&st);
}

#[test]
fn layout_is_the_filesystem_backends() {
    let Some(srv) = Server::sshd() else { return };
    let dir = srv.data().join("r");
    let st = SftpStorage::open(opts(&srv, &dir), true).unwrap();
    let id = "p0123456789abcdef0123456789abcdef-s1";
    st.put_blob(id, b"data", &PutOptions::default()).unwrap();
    st.put_blob("kopia.repository", b"{}", &PutOptions::default())
        .unwrap();
    // overwriting replaces the blob (posix-rename)
    st.put_blob("kopia.repository", b"{\"v\":2}", &PutOptions::default())
        .unwrap();
    assert!(dir
        .join("p/012/3456789abcdef0123456789abcdef-s1.f")
        .is_file());
    assert_eq!(
        std::fs::read(dir.join("kopia.repository.f")).unwrap(),
        b"{\"v\":2}"
    );
    let shards: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".shards")).unwrap()).unwrap();
    assert_eq!(shards["default"], serde_json::json!([1, 3]));
    // no temporary files left behind; what the filesystem backend writes, SFTP reads
    let fs = FilesystemStorage::open(&dir).unwrap();
    let ids: Vec<String> = fs.list_all("").unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, vec!["kopia.repository".to_string(), id.to_string()]);
    let big = kopr_testkit::random_bytes(9, 3 * CHUNK * IN_FLIGHT + 17);
    fs.put_blob(
        "q00112233445566778899aabbccddeeff",
        &big,
        &PutOptions::default(),
    )
    .unwrap();
    assert_eq!(
        st.get_blob("q00112233445566778899aabbccddeeff", 0, None)
            .unwrap(),
        big
    );
    assert_eq!(
        st.get_blob("q00112233445566778899aabbccddeeff", 70_000, Some(200_000))
            .unwrap(),
        &big[70_000..270_000]
    );
    let listed: Vec<String> = st
        .list_all("q")
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        listed,
        vec!["q00112233445566778899aabbccddeeff".to_string()]
    );
    // a write of several chunks arrives whole
    st.put_blob("p99", &big, &PutOptions::default()).unwrap();
    assert_eq!(fs.get_blob("p99", 0, None).unwrap(), big);
    // do_not_overwrite refuses an existing blob and keeps it
    let keep = PutOptions {
        do_not_overwrite: true,
        ..Default::default()
    };
    assert!(st.put_blob("p99", b"x", &keep).is_err());
    assert_eq!(fs.get_blob("p99", 0, None).unwrap(), big);
}

#[test]
fn options_have_kopias_field_names() {
    let o = SftpOptions {
        path: "/r".into(),
        host: "h".into(),
        port: 22,
        username: "u".into(),
        keyfile: "/k".into(),
        known_hosts_file: "/kh".into(),
        ssh_command: "ssh".into(),
        ..Default::default()
    };
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"path":"/r","host":"h","port":22,"username":"u","password":"",
            "keyfile":"/k","knownHostsFile":"/kh","externalSSH":false,"sshCommand":"ssh",
            "dirShards":null})
    );
    // as Kopia writes it (keyData, knownHostsData, sharding and throttling fields)
    let kopia = r#"{"path":"/r","host":"h","port":2222,"username":"u","password":"",
        "keyData":"KEY","knownHostsData":"KH","externalSSH":false,"dirShards":null,
        "maxUploadSpeedBytesPerSecond":0}"#;
    let o: SftpOptions = serde_json::from_str(kopia).unwrap();
    assert_eq!((o.port, o.key_data.as_str()), (2222, "KEY"));
    assert_eq!(o.known_hosts_data, "KH");
}

fn one_line(e: &BlobError) -> String {
    let m = e.to_string();
    assert!(!m.contains('\n'), "{m}");
    m
}

#[test]
fn unknown_and_changed_host_keys_and_bad_credentials_are_refused() {
    let Some(srv) = Server::sshd() else { return };
    let dir = srv.data().join("r");
    // unknown: the known hosts name other servers only
    let mut o = opts(&srv, &dir);
    o.known_hosts_data = "[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILyF4+6sbdr9JzVJL6BiBXimf1NtuvpQ3uwVvNmsFitG\n".into();
    let e = one_line(&SftpStorage::open(o, true).unwrap_err());
    assert!(e.contains("is not in the known hosts"), "{e}");
    assert!(
        e.contains(&format!("ssh-keyscan -p {} 127.0.0.1", srv.port())),
        "{e}"
    );
    // changed: the server is named with another key
    let mut o = opts(&srv, &dir);
    o.known_hosts_data = srv.changed_known_hosts();
    let e = one_line(&SftpStorage::open(o, true).unwrap_err());
    assert!(
        e.contains("host key of SFTP server") && e.contains("changed"),
        "{e}"
    );
    assert!(e.contains("ssh-keygen -R"), "{e}");
    // nothing was written
    assert!(!dir.exists());
    // a wrong password
    let mut o = opts(&srv, &dir);
    o.password = "wrong-password".into();
    let e = SftpStorage::open(o, true).unwrap_err();
    assert!(matches!(e, BlobError::Permission(_)), "{e:?}");
    let e = one_line(&e);
    assert!(
        e.contains("rejected the credentials") && e.contains("--sftp-password"),
        "{e}"
    );
    // the key given as data works; a key the server does not know is refused
    let mut o = opts(&srv, &dir);
    o.keyfile = String::new();
    o.key_data = std::fs::read_to_string(srv.ssh_key()).unwrap();
    SftpStorage::open(o.clone(), true).unwrap();
    let other = tempfile::tempdir().unwrap();
    let k = other.path().join("k");
    assert!(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&k)
        .status()
        .unwrap()
        .success());
    o.key_data = std::fs::read_to_string(&k).unwrap();
    let e = one_line(&SftpStorage::open(o, false).unwrap_err());
    assert!(
        e.contains("rejected the credentials") && e.contains("--keyfile"),
        "{e}"
    );
    // a missing repository directory on connect
    let e =
        one_line(&SftpStorage::open(opts(&srv, &srv.data().join("nosuch")), false).unwrap_err());
    assert!(e.contains("does not exist"), "{e}");
}

/// The storage is usable, and dropped, from inside another tokio runtime (a server's handler).
#[test]
fn works_and_drops_inside_another_runtime() {
    let Some(srv) = Server::sshd() else { return };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = srv.data().join("rt");
    rt.block_on(async {
        let st = SftpStorage::open(opts(&srv, &dir), true).unwrap();
        st.put_blob("p1", b"one", &PutOptions::default()).unwrap();
        assert_eq!(st.get_blob("p1", 0, None).unwrap(), b"one");
        drop(st);
    });
    assert!(dir.join("p1.f").is_file());
}
