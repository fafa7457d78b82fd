use super::*;

/// The official BLAKE3 test vectors' key and input pattern (byte `i` is `i % 251`).
const KEY: &[u8; 32] = b"whats the Elvish word for friend";

fn input(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn one(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(key, data).as_bytes()
}

#[test]
fn every_length_up_to_five_chunks_hashes_as_keyed_hash_does() {
    for len in 0..=5 * CHUNK_LEN + BLOCK_LEN + 1 {
        let data = input(len);
        assert_eq!(
            keyed_hash_many(KEY, &[&data]),
            vec![one(KEY, &data)],
            "length {len}"
        );
    }
}

#[test]
fn the_official_vectors_lengths_hash_alike_in_one_batch() {
    let lengths = [
        0, 1, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097, 5120, 5121, 6144, 6145, 7168,
        7169, 8192, 8193, 16384, 31744, 102400,
    ];
    let data: Vec<Vec<u8>> = lengths.iter().map(|&n| input(n)).collect();
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let expected: Vec<[u8; 32]> = refs.iter().map(|d| one(KEY, d)).collect();
    assert_eq!(keyed_hash_many(KEY, &refs), expected);
    // Backwards too: the grouping must not depend on the order of the inputs.
    let reversed: Vec<&[u8]> = refs.iter().rev().copied().collect();
    let mut back = keyed_hash_many(KEY, &reversed);
    back.reverse();
    assert_eq!(back, expected);
}

#[test]
fn mixed_batches_of_short_inputs_hash_as_one_by_one() {
    // A seeded xorshift: lengths up to 4 chunks, bytes that differ between inputs, and some
    // inputs repeated (same bytes in one batch).
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..40 {
        let count = 1 + (next() % 150) as usize;
        let mut data: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let len = match next() % 8 {
                    0 => (next() % 4) as usize * BLOCK_LEN,
                    1 => (next() % 5) as usize * CHUNK_LEN,
                    _ => (next() % (4 * CHUNK_LEN as u64 + 1)) as usize,
                };
                (0..len).map(|_| next() as u8).collect()
            })
            .collect();
        if count > 2 {
            data[count - 1] = data[0].clone();
        }
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let key: [u8; 32] = std::array::from_fn(|i| (round * 7 + i) as u8);
        let expected: Vec<[u8; 32]> = refs.iter().map(|d| one(&key, d)).collect();
        assert_eq!(keyed_hash_many(&key, &refs), expected, "round {round}");
    }
}

#[test]
fn no_input_gives_no_hash() {
    assert!(keyed_hash_many(KEY, &[]).is_empty());
}

#[test]
fn the_left_subtree_is_the_largest_power_of_two_below() {
    let cases = [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (17, 16)];
    for (n, left) in cases {
        assert_eq!(left_chunks(n), left, "{n} chunks");
        assert_eq!(
            blake3::hazmat::left_subtree_len((n * CHUNK_LEN) as u64),
            (left * CHUNK_LEN) as u64
        );
    }
}
