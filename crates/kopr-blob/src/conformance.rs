//! Behaviour every [`BlobStorage`] must show; run by each backend's tests.

use crate::{BlobError, BlobStorage, PutOptions};

pub fn run(st: &dyn BlobStorage) {
    reads_and_lists(st);
    overwrites_and_deletes(st);
    concurrent_writers(st);
}

/// Missing blobs, whole and ranged reads, metadata, listings by prefix.
fn reads_and_lists(st: &dyn BlobStorage) {
    let o = PutOptions::default();
    assert!(matches!(
        st.get_blob("pmissing00", 0, None),
        Err(BlobError::NotFound(_))
    ));
    assert!(matches!(
        st.get_metadata("pmissing00"),
        Err(BlobError::NotFound(_))
    ));
    st.put_blob("pabc0123456789abcdef0123456789abcdef", b"hello world", &o)
        .unwrap();
    st.put_blob("qdef0123456789abcdef0123456789abcdef", b"", &o)
        .unwrap();
    st.put_blob("kopia.repository", b"{}", &o).unwrap();
    assert_eq!(
        st.get_blob("pabc0123456789abcdef0123456789abcdef", 0, None)
            .unwrap(),
        b"hello world"
    );
    assert_eq!(
        st.get_blob("pabc0123456789abcdef0123456789abcdef", 6, Some(5))
            .unwrap(),
        b"world"
    );
    assert_eq!(
        st.get_blob("pabc0123456789abcdef0123456789abcdef", 11, Some(0))
            .unwrap(),
        b""
    );
    assert!(matches!(
        st.get_blob("pabc0123456789abcdef0123456789abcdef", 6, Some(6)),
        Err(BlobError::InvalidRange { .. })
    ));
    // Into a caller's buffer: the same bytes and the same refusals as a ranged get.
    let mut buf = [0u8; 5];
    st.read_blob_into("pabc0123456789abcdef0123456789abcdef", 6, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"world");
    st.read_blob_into("pabc0123456789abcdef0123456789abcdef", 0, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"hello");
    st.read_blob_into("pabc0123456789abcdef0123456789abcdef", 11, &mut [])
        .unwrap();
    assert!(matches!(
        st.read_blob_into("pabc0123456789abcdef0123456789abcdef", 7, &mut buf),
        Err(BlobError::InvalidRange { .. })
    ));
    assert!(matches!(
        st.read_blob_into("pmissing00", 0, &mut buf),
        Err(BlobError::NotFound(_))
    ));
    assert!(st
        .get_blob("pabc0123456789abcdef0123456789abcdef", 12, None)
        .is_err());
    assert_eq!(
        st.get_blob("qdef0123456789abcdef0123456789abcdef", 0, None)
            .unwrap(),
        b""
    );
    assert_eq!(
        st.get_metadata("pabc0123456789abcdef0123456789abcdef")
            .unwrap()
            .length,
        11
    );
    let p: Vec<String> = st
        .list_all("p")
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(p, vec!["pabc0123456789abcdef0123456789abcdef"]);
    assert_eq!(st.list_all("").unwrap().len(), 3);
    assert!(st.list_all("z").unwrap().is_empty());
}

/// Replacing a blob, refusing to with `do_not_overwrite`, deleting (twice is fine).
fn overwrites_and_deletes(st: &dyn BlobStorage) {
    let o = PutOptions::default();
    st.put_blob("pabc0123456789abcdef0123456789abcdef", b"replaced", &o)
        .unwrap();
    assert_eq!(
        st.get_blob("pabc0123456789abcdef0123456789abcdef", 0, None)
            .unwrap(),
        b"replaced"
    );
    assert!(st
        .put_blob(
            "pabc0123456789abcdef0123456789abcdef",
            b"x",
            &PutOptions {
                do_not_overwrite: true,
                ..o.clone()
            }
        )
        .is_err());
    st.delete_blob("pabc0123456789abcdef0123456789abcdef")
        .unwrap();
    st.delete_blob("pabc0123456789abcdef0123456789abcdef")
        .unwrap();
    assert!(st.list_all("p").unwrap().is_empty());
}

/// Four writers at once: every blob listed and read back.
fn concurrent_writers(st: &dyn BlobStorage) {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..25 {
                    let id = format!("c{t}{i:03}0123456789abcdef0123456789");
                    st.put_blob(&id, id.as_bytes(), &PutOptions::default())
                        .unwrap();
                }
            });
        }
    });
    let c = st.list_all("c").unwrap();
    assert_eq!(c.len(), 100);
    for m in c {
        assert_eq!(st.get_blob(&m.id, 0, None).unwrap(), m.id.as_bytes());
    }
}
