//! Tests of the splitters: regression vectors, and the properties a splitter must have.
//! Compatibility evidence (chunks Kopia 0.23.1 itself cut, in the fixture repositories) is in
//! `crates/kopr-repo/tests/kopia_fixtures.rs`.

use super::rabinkarp::{pol_mod, POLYNOMIAL};
use super::*;

mod vectors;

/// A deterministic byte stream: xorshift64 words, little-endian.
fn xorshift_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Four-letter "DNA" text: low entropy, no long runs.
fn dna_bytes(seed: u64, len: usize) -> Vec<u8> {
    xorshift_bytes(seed, len)
        .into_iter()
        .map(|b| b"ACGT"[usize::from(b & 3)])
        .collect()
}

/// FNV-1a over the chunk lengths as little-endian u64s.
fn lengths_digest(lengths: &[usize]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &l in lengths {
        for b in (l as u64).to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Feeds `data` in slices whose sizes come from `sizes`, returning chunk lengths
/// (the remainder after the last cut included).
fn split_in_slices(
    splitter: &mut dyn Splitter,
    data: &[u8],
    mut sizes: impl FnMut() -> usize,
) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut current = 0;
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + sizes()).min(data.len());
        let mut slice = &data[offset..end];
        while !slice.is_empty() {
            match splitter.next_split_point(slice) {
                Some(n) => {
                    assert!(
                        n >= 1 && n <= slice.len(),
                        "split point {n} outside 1..={}",
                        slice.len()
                    );
                    lengths.push(current + n);
                    current = 0;
                    slice = &slice[n..];
                }
                None => {
                    current += slice.len();
                    slice = &[];
                }
            }
        }
        offset = end;
    }
    if current > 0 {
        lengths.push(current);
    }
    lengths
}

/// Slice sizes in 1..=1000 from a fixed xorshift sequence.
fn random_sizes(seed: u64) -> impl FnMut() -> usize {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 1000) as usize + 1
    }
}

fn dynamic_names() -> impl Iterator<Item = &'static str> {
    supported_splitters()
        .iter()
        .copied()
        .filter(|n| n.starts_with("DYNAMIC"))
}

fn nominal_size(name: &str) -> usize {
    match SplitterFactory::new(name).unwrap().kind {
        Kind::Fixed { size } => size,
        Kind::Buzhash { average } | Kind::RabinKarp { average } => average,
    }
}

#[test]
fn names_match_kopia() {
    let names = supported_splitters();
    assert_eq!(names.len(), 23);
    assert!(
        names.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()),
        "not sorted"
    );
    assert!(names.contains(&KOPIA_DEFAULT_SPLITTER));
    for name in names {
        let factory = SplitterFactory::new(name).unwrap();
        assert_eq!(factory.name(), *name);
        assert_eq!(
            factory.create().max_segment_size(),
            factory.max_segment_size()
        );
    }
    assert_eq!(
        SplitterFactory::new("FIXED").unwrap().max_segment_size(),
        4 << 20
    );
    assert_eq!(
        SplitterFactory::new("DYNAMIC").unwrap().max_segment_size(),
        8 << 20
    );
    assert_eq!(
        SplitterFactory::new("FIXED-128K")
            .unwrap()
            .max_segment_size(),
        128 << 10
    );
    assert_eq!(
        SplitterFactory::new("DYNAMIC-128K-RABINKARP")
            .unwrap()
            .max_segment_size(),
        256 << 10
    );
    assert_eq!(
        SplitterFactory::new(KOPIA_DEFAULT_SPLITTER)
            .unwrap()
            .max_segment_size(),
        8 << 20
    );
    for bad in ["", "dynamic-4m-buzhash", "DYNAMIC-3M-BUZHASH", "FIXED-4M "] {
        assert!(
            matches!(
                new_splitter(bad),
                Err(FormatError::UnsupportedAlgorithm { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(split_all("NOPE", b"x").is_err());
}

#[test]
fn factory_is_cheap_and_shareable() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<SplitterFactory>();
    let factory = SplitterFactory::new("DYNAMIC-1M-BUZHASH").unwrap();
    let (a, b) = (xorshift_bytes(11, 5 << 20), xorshift_bytes(12, 5 << 20));
    let (want_a, want_b) = (
        split_all(factory.name(), &a).unwrap(),
        split_all(factory.name(), &b).unwrap(),
    );
    assert!(want_a.len() > 2 && want_a != want_b);
    // Splitters of one factory keep separate state: one stopped mid-stream does not change
    // where another cuts, and it resumes where it stopped.
    let mut first = factory.create();
    let half = (want_a[0] + want_a[1]) + 1000;
    let mut got_a = split_with(first.as_mut(), &a[..half]);
    let unfinished = got_a.pop().unwrap();
    let mut second = factory.create();
    assert_eq!(split_with(second.as_mut(), &b), want_b);
    let mut rest = split_with(first.as_mut(), &a[half..]);
    rest[0] += unfinished;
    got_a.extend(rest);
    assert_eq!(got_a, want_a);
    // a copy sent to another thread makes the same splitters
    let copy = factory;
    let from_thread = std::thread::spawn(move || split_with(copy.create().as_mut(), &a))
        .join()
        .unwrap();
    assert_eq!(from_thread, want_a);
}

#[test]
fn invalid_averages_are_rejected() {
    for avg in [0, 1, 3, 1000, 3 << 20] {
        assert!(BuzhashSplitter::new(avg).is_err(), "{avg}");
        assert!(RabinKarpSplitter::new(avg).is_err(), "{avg}");
    }
    let s = RabinKarpSplitter::new(2).unwrap();
    assert_eq!((s.min_segment_size(), s.max_segment_size()), (1, 4));
}

/// The buzhash table is the one Go's `rollinghash/buzhash32.GenerateHashes(1)`
/// builds: distinct `uint32(Int63())` values from `math/rand` seeded with 1.
fn buzhash_from_scratch(window: &[u8]) -> u32 {
    window.iter().fold(0u32, |s, &b| {
        s.rotate_left(1) ^ buzhash::TABLE[usize::from(b)]
    })
}

fn rabinkarp_from_scratch(window: &[u8]) -> u64 {
    window
        .iter()
        .fold(0u64, |v, &b| pol_mod((v << 8) | u64::from(b), POLYNOMIAL))
}

/// Rolling gives the digest of the last 64 bytes computed from scratch, and the
/// initial (zero) state is the digest of a window of zeros.
#[test]
fn rolling_matches_digest_of_window() {
    assert_eq!(buzhash_from_scratch(&[0; WINDOW_SIZE]), 0);
    assert_eq!(rabinkarp_from_scratch(&[0; WINDOW_SIZE]), 0);
    let data = xorshift_bytes(42, 5000);
    let mut stream = vec![0u8; WINDOW_SIZE];
    stream.extend_from_slice(&data);
    let (mut buz, mut rk) = (Buzhash32::default(), RabinKarp64::default());
    for i in WINDOW_SIZE..stream.len() {
        buz.roll(stream[i - WINDOW_SIZE], stream[i]);
        rk.roll(stream[i - WINDOW_SIZE], stream[i]);
        let window = &stream[i + 1 - WINDOW_SIZE..=i];
        assert_eq!(buz.sum32(), buzhash_from_scratch(window), "buzhash at {i}");
        assert_eq!(
            rk.sum64(),
            rabinkarp_from_scratch(window),
            "rabinkarp at {i}"
        );
        assert!(rk.sum64() < 1 << 53);
    }
}

#[test]
fn fixed_splits_exactly_every_n_bytes() {
    for name in supported_splitters()
        .iter()
        .filter(|n| n.starts_with("FIXED"))
    {
        let n = nominal_size(name);
        let data = vec![7u8; 3 * n + 5];
        assert_eq!(split_all(name, &data).unwrap(), [n, n, n, 5], "{name}");
        assert_eq!(split_all(name, &data[..2 * n]).unwrap(), [n, n], "{name}");
    }
    let data = xorshift_bytes(1, 1 << 20);
    let mut splitter = FixedSplitter::new(1000);
    let expected: Vec<usize> = data.chunks(1000).map(<[u8]>::len).collect();
    for size in [1, 7, 999, 1000, 1001, 65536] {
        splitter.reset();
        assert_eq!(
            split_in_slices(&mut splitter, &data, || size),
            expected,
            "slices of {size}"
        );
    }
    assert_eq!(split_all("FIXED-1M", &[]).unwrap(), Vec::<usize>::new());
}

#[test]
fn dynamic_chunks_are_within_bounds_and_near_nominal() {
    let data = xorshift_bytes(7, 24 << 20);
    for name in dynamic_names().filter(|n| nominal_size(n) <= 1 << 20) {
        let average = nominal_size(name);
        let lengths = split_all(name, &data).unwrap();
        assert_eq!(lengths.iter().sum::<usize>(), data.len());
        let (last, cuts) = lengths.split_last().unwrap();
        assert!(*last <= 2 * average);
        for &l in cuts {
            assert!(
                (average / 2..=2 * average).contains(&l),
                "{name}: chunk of {l}"
            );
        }
        // Expected mean on random data: average/2 + average * (1 - e^-1.5) ~ 1.28 average.
        let mean = data.len() as f64 / lengths.len() as f64 / average as f64;
        assert!((1.0..1.6).contains(&mean), "{name}: mean {mean} x nominal");
    }
}

#[test]
fn boundaries_do_not_depend_on_slicing() {
    let data = xorshift_bytes(99, 3 << 20);
    for name in ["DYNAMIC-128K-BUZHASH", "DYNAMIC-128K-RABINKARP"] {
        let whole = split_all(name, &data).unwrap();
        let mut splitter = new_splitter(name).unwrap();
        for size in [1, 7, 63, 64, 65, 65536] {
            splitter.reset();
            assert_eq!(
                split_in_slices(splitter.as_mut(), &data, || size),
                whole,
                "{name} in {size}s"
            );
        }
        splitter.reset();
        assert_eq!(
            split_in_slices(splitter.as_mut(), &data, random_sizes(3)),
            whole,
            "{name}"
        );
    }
    // Small averages make the window straddle chunk boundaries.
    let data = &data[..200_000];
    for average in [2, 4, 32, 64, 128, 256] {
        let mut splitters: [Box<dyn Splitter>; 2] = [
            Box::new(BuzhashSplitter::new(average).unwrap()),
            Box::new(RabinKarpSplitter::new(average).unwrap()),
        ];
        for splitter in &mut splitters {
            let whole = split_with(splitter.as_mut(), data);
            for size in [1, 7, 63, 64, 65, 1000] {
                splitter.reset();
                assert_eq!(
                    split_in_slices(splitter.as_mut(), data, || size),
                    whole,
                    "{average} in {size}s"
                );
            }
        }
    }
}

/// Boundaries as stream offsets.
fn offsets(lengths: &[usize]) -> Vec<usize> {
    lengths
        .iter()
        .scan(0, |end, l| {
            *end += l;
            Some(*end)
        })
        .collect()
}

#[test]
fn an_inserted_byte_only_moves_nearby_boundaries() {
    let data = xorshift_bytes(2024, 20 << 20);
    let mut edited = data.clone();
    edited.insert(1000, 0x55);
    for name in [
        "DYNAMIC-1M-BUZHASH",
        "DYNAMIC-1M-RABINKARP",
        "DYNAMIC-256K-BUZHASH",
    ] {
        let before = offsets(&split_all(name, &data).unwrap());
        let after = offsets(&split_all(name, &edited).unwrap());
        let shifted: Vec<usize> = before.iter().map(|o| o + 1).collect();
        // Past the first two chunks, every boundary is the old one moved by one byte.
        let resync = after
            .iter()
            .position(|o| shifted.contains(o))
            .expect("never resynchronized");
        assert!(resync <= 2, "{name}: resynchronized at chunk {resync}");
        let tail = &after[resync..];
        let old_tail = &shifted[shifted.len() - tail.len()..];
        assert_eq!(tail, old_tail, "{name}");
        assert!(tail.len() > 10, "{name}");
    }
}

#[test]
fn zeros_cut_at_the_minimum_size() {
    // A window of zeros hashes to 0, which always matches the mask.
    for name in dynamic_names() {
        let average = nominal_size(name);
        let lengths = split_all(name, &vec![0; 2 * average + 3]).unwrap();
        assert_eq!(
            lengths,
            [average / 2, average / 2, average / 2, average / 2, 3],
            "{name}"
        );
    }
}

#[test]
fn reset_restarts_the_stream() {
    let data = xorshift_bytes(5, 1 << 20);
    for name in supported_splitters() {
        let mut splitter = new_splitter(name).unwrap();
        let first = split_with(splitter.as_mut(), &data[..300_000]);
        splitter.reset();
        let second = split_with(splitter.as_mut(), &data[..300_000]);
        assert_eq!(first, second, "{name}");
        assert_eq!(split_with(splitter.as_mut(), &[]), Vec::<usize>::new());
        assert_eq!(splitter.next_split_point(&[]), None);
    }
}

#[test]
fn min_segment_size_is_the_shortest_cut() {
    // Zeros cut a dynamic splitter's chunk as early as possible, and a fixed one cuts at its size:
    // a stream one byte shorter than the minimum is one chunk, and the minimum is reached.
    for name in supported_splitters() {
        let min = SplitterFactory::new(name).unwrap().min_segment_size();
        assert_eq!(
            split_all(name, &vec![0; min - 1]).unwrap(),
            [min - 1],
            "{name}"
        );
        assert_eq!(
            split_all(name, &vec![0; min + 1]).unwrap(),
            [min, 1],
            "{name}"
        );
    }
}
