//! The Azure backend against Azurite on loopback: the conformance suite, Kopia's layout and
//! config, SAS tokens, and one-line errors for a wrong key, a missing container and an
//! unreachable or silent endpoint.

use super::*;
use kopr_testkit::servers::{Server, AZURITE_ACCOUNT, AZURITE_KEY};

fn opts(container: &str, prefix: &str) -> AzureOptions {
    AzureOptions {
        container: container.into(),
        prefix: prefix.into(),
        storage_account: AZURITE_ACCOUNT.into(),
        storage_key: AZURITE_KEY.into(),
        ..Default::default()
    }
}

fn storage(srv: &Server, container: &str, prefix: &str) -> AzureStorage {
    AzureStorage::with_endpoint(opts(container, prefix), Some(&srv.url())).unwrap()
}

#[test]
fn conformance_on_azurite() {
    let Some(srv) = Server::azurite() else { return };
    let st = storage(&srv, "conf", "");
    st.create_container().unwrap();
    crate::conformance::run(&st);
    // with a prefix, blobs are `prefix + id` and nothing outside the prefix is listed
    let pst = storage(&srv, "conf", "repo/");
    crate::conformance::run(&pst);
    let names: Vec<String> = st
        .list_all("repo/")
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert!(
        names.contains(&"repo/kopia.repository".to_string()),
        "{names:?}"
    );
}

#[test]
fn listing_follows_markers_across_pages() {
    let Some(srv) = Server::azurite() else { return };
    let st = storage(&srv, "pages", "");
    st.create_container().unwrap();
    for i in 0..7 {
        st.put_blob(&format!("p{i:02}"), b"x", &PutOptions::default())
            .unwrap();
    }
    let mut ids = Vec::new();
    let mut marker = None;
    loop {
        let (page, next) = st.list_page("p", marker.as_deref(), 3).unwrap();
        assert!(page.len() <= 3);
        ids.extend(page.into_iter().map(|m| m.id));
        match next {
            Some(n) => marker = Some(n),
            None => break,
        }
    }
    assert_eq!(ids, (0..7).map(|i| format!("p{i:02}")).collect::<Vec<_>>());
}

#[test]
fn a_sas_token_authorizes_requests() {
    let Some(srv) = Server::azurite() else { return };
    storage(&srv, "sas", "").create_container().unwrap();
    // Azurite checks a SAS signature like Azure; a forged one is refused with the fix named.
    let bad = AzureOptions {
        storage_key: String::new(),
        sas_token: "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&sig=Zm9yZ2Vk"
            .into(),
        ..opts("sas", "")
    };
    let st = AzureStorage::with_endpoint(bad, Some(&srv.url())).unwrap();
    let e = st.probe().unwrap_err().to_string();
    assert!(e.contains("--sas-token"), "{e}");
}

#[test]
fn errors_name_the_fix() {
    let Some(srv) = Server::azurite() else { return };
    let good = storage(&srv, "errs", "");
    good.create_container().unwrap();
    let wrong_key = AzureOptions {
        storage_key: STANDARD.encode([7u8; 64]),
        ..opts("errs", "")
    };
    let e = AzureStorage::with_endpoint(wrong_key, Some(&srv.url()))
        .unwrap()
        .probe()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rejected the credentials") && e.contains("--storage-key"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    let e = storage(&srv, "nosuch", "").probe().unwrap_err().to_string();
    assert!(e.contains("container \"nosuch\" does not exist"), "{e}");
    let e = AzureStorage::with_endpoint(
        AzureOptions {
            storage_key: "not base64!".into(),
            ..opts("errs", "")
        },
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not base64"), "{e}");
    let e = AzureStorage::with_endpoint(
        AzureOptions {
            storage_key: String::new(),
            ..opts("errs", "")
        },
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--storage-key") && e.contains("--sas-token"),
        "{e}"
    );
}

#[test]
fn an_unreachable_or_silent_endpoint_is_a_bounded_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let st = AzureStorage::with_endpoint(
        opts("c", ""),
        Some(&format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")),
    )
    .unwrap();
    let e = st.get_blob("p1", 0, None).unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains("cannot reach Azure endpoint"), "{e}");
    // a listener that accepts and never answers
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/{AZURITE_ACCOUNT}",
        silent.local_addr().unwrap().port()
    );
    let t = Timeouts {
        connect: std::time::Duration::from_millis(300),
        io: std::time::Duration::from_millis(300),
    };
    let st = AzureStorage::with_endpoint(opts("c", ""), Some(&url))
        .unwrap()
        .with_timeouts(t)
        .unwrap();
    let e = st.get_metadata("p1").unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains("did not answer in time"), "{e}");
}

#[test]
fn config_has_kopias_field_names() {
    let o = AzureOptions {
        container: "c".into(),
        prefix: "p/".into(),
        storage_account: "acct".into(),
        storage_key: "a2V5".into(),
        sas_token: String::new(),
        storage_domain: "blob.core.chinacloudapi.cn".into(),
        do_not_use_tls: false,
    };
    assert_eq!(
        serde_json::to_string(&o).unwrap(),
        r#"{"container":"c","prefix":"p/","storageAccount":"acct","storageKey":"a2V5","storageDomain":"blob.core.chinacloudapi.cn"}"#
    );
    let st = AzureStorage::with_endpoint(o, None).unwrap();
    assert_eq!(st.endpoint, "https://acct.blob.core.chinacloudapi.cn");
    assert_eq!(st.base_path, "");
}

#[test]
fn string_to_sign_follows_azures_layout() {
    let hs = vec![
        ("x-ms-version".to_string(), "2021-08-06".to_string()),
        (
            "x-ms-date".to_string(),
            "Mon, 30 Nov 2026 05:00:00 GMT".to_string(),
        ),
        ("x-ms-blob-type".to_string(), "BlockBlob".to_string()),
    ];
    let s = string_to_sign(
        "PUT",
        5,
        &hs,
        "/acct/c/b",
        &[("comp", "list"), ("restype", "container")],
    );
    assert_eq!(
        s,
        "PUT\n\n\n5\n\n\n\n\n\n\n\n\nx-ms-blob-type:BlockBlob\nx-ms-date:Mon, 30 Nov 2026 05:00:00 GMT\nx-ms-version:2021-08-06\n/acct/c/b\ncomp:list\nrestype:container"
    );
}
