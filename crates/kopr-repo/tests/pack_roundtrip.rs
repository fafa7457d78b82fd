//! Property test: any mix of contents (prefixed or not, compressible or not, compressed or
//! not, some deleted) survives packing, index writing and reopening, and every pack's local
//! index agrees with the committed index.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use kopr_blob::memory::MemoryStorage;
use kopr_blob::BlobStorage;
use kopr_format::index::Index;
use kopr_format::pack::Postamble;
use kopr_repo::format_manager::{CreateOptions, FormatManager};
use kopr_repo::{OpenOptions, Repository};
use proptest::prelude::*;

fn format() -> Arc<FormatManager> {
    static F: OnceLock<Arc<FormatManager>> = OnceLock::new();
    F.get_or_init(|| {
        let st = MemoryStorage::new();
        let opts = CreateOptions {
            key_derivation: kopr_format::crypto::PBKDF2_ALGORITHM.into(),
            ..Default::default()
        };
        Repository::create(&st, &opts, "pw").unwrap();
        Arc::new(FormatManager::open(&st, "pw").unwrap())
    })
    .clone()
}

#[derive(Debug, Clone)]
struct Item {
    data: Vec<u8>,
    prefix: Option<u8>,
    compress: bool,
    delete: bool,
}

fn item() -> impl Strategy<Value = Item> {
    (
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..3000),
            (any::<u8>(), 0usize..20_000).prop_map(|(b, n)| vec![b; n]),
        ],
        proptest::option::of(prop_oneof![Just(b'k'), Just(b'm'), Just(b'x')]),
        any::<bool>(),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(data, prefix, compress, delete)| Item {
            data,
            prefix,
            compress,
            delete,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn packs_round_trip(items in proptest::collection::vec(item(), 1..40)) {
        let st: Arc<dyn BlobStorage> = Arc::new(MemoryStorage::new());
        let repo = Repository::from_format(st.clone(), format(), OpenOptions::default()).unwrap();
        let mut expect = HashMap::new();
        for it in &items {
            let id = repo.contents().write_content(&it.data, it.prefix, it.compress.then(|| kopr_format::compression::by_name("zstd-fastest")).flatten()).unwrap();
            expect.insert(id, (it.data.clone(), false));
        }
        for it in items.iter().filter(|i| i.delete) {
            let id = repo.contents().content_id_for(&it.data, it.prefix).unwrap();
            repo.contents().delete_content(&id).unwrap();
            expect.get_mut(&id).unwrap().1 = true;
        }
        repo.flush().unwrap();
        let reopened = Repository::from_format(st.clone(), format(), OpenOptions::default()).unwrap();
        let cm = reopened.contents();
        let listed = cm.list_contents(true).unwrap();
        prop_assert_eq!(listed.len(), expect.len());
        for e in &listed {
            let (data, deleted) = &expect[&e.content_id];
            prop_assert_eq!(e.deleted, *deleted);
            prop_assert_eq!(e.original_length as usize, data.len());
            prop_assert_eq!(e.pack_blob_id.starts_with('q'), e.content_id.prefix().is_some());
            prop_assert_eq!(&cm.get_content(&e.content_id).unwrap(), data);
        }
        // the local indexes inside the packs describe exactly the same entries
        let mut from_packs = HashMap::new();
        for pack in st.list_all("p").unwrap().into_iter().chain(st.list_all("q").unwrap()) {
            let bytes = st.get_blob(&pack.id, 0, None).unwrap();
            let post = Postamble::find(&bytes).unwrap();
            let mut plain = Vec::new();
            reopened.format().encryptor.decrypt(post.local_index(&bytes).unwrap(), &post.local_index_iv, &mut plain).unwrap();
            for e in Index::parse(plain).unwrap().iter() {
                let e = e.unwrap();
                prop_assert_eq!(&e.pack_blob_id, &pack.id);
                from_packs.insert(e.content_id, e);
            }
        }
        prop_assert_eq!(from_packs.len(), expect.len());
        for e in &listed {
            prop_assert_eq!(from_packs[&e.content_id].pack_offset, e.pack_offset);
            prop_assert_eq!(from_packs[&e.content_id].packed_length, e.packed_length);
        }
    }
}
