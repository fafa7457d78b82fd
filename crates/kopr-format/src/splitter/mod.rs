//! Kopia's object splitters: where a stream of file content is cut into chunks.
//!
//! Every chunk becomes one content in the repository, so the cut points must be the
//! ones Kopia picks for the same algorithm name, or deduplication against data
//! written by Kopia is lost. Three families exist:
//!
//! * `FIXED-*`: a cut every `N` bytes.
//! * `DYNAMIC-*-BUZHASH`: content-defined cuts from a 32-bit cyclic-polynomial
//!   rolling hash (buzhash) over a 64-byte window.
//! * `DYNAMIC-*-RABINKARP`: content-defined cuts from a 64-bit Rabin-Karp
//!   fingerprint (polynomial arithmetic over GF(2)) over a 64-byte window.
//!
//! For a dynamic splitter with nominal size `A` (a power of two) a chunk is at
//! least `A / 2` and at most `2 * A` bytes long: after `A / 2` bytes, the chunk
//! ends after the first byte at which `hash & (A - 1) == 0`, and it is forced to
//! end at `2 * A` bytes. The rolling window is never cleared between chunks; it
//! starts as 64 zero bytes when the splitter is created or [`Splitter::reset`].
//!
//! The splitters are streaming and pure: the caller feeds slices of any size, and
//! the cut points do not depend on how the input was sliced.

mod buzhash;
mod rabinkarp;

#[cfg(test)]
mod tests;

use crate::error::{FormatError, Result};

pub use buzhash::Buzhash32;
pub use rabinkarp::RabinKarp64;

/// The splitter kopr uses for new repositories: 1 MiB average chunks, as restic's, deduplicate
/// repeated regions inside large files four times as finely as Kopia's default, and keep the
/// memory of chunks in flight low, for four times as many index entries.
pub const DEFAULT_SPLITTER: &str = "DYNAMIC-1M-BUZHASH";

/// The splitter Kopia uses for new repositories.
pub const KOPIA_DEFAULT_SPLITTER: &str = "DYNAMIC-4M-BUZHASH";

/// Width in bytes of the rolling-hash window of every dynamic splitter.
pub const WINDOW_SIZE: usize = 64;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// What a splitter name stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Fixed { size: usize },
    Buzhash { average: usize },
    RabinKarp { average: usize },
}

/// Every name Kopia accepts, sorted bytewise as Kopia lists them, with its meaning.
const ALGORITHMS: &[(&str, Kind)] = &[
    // Legacy name: Kopia maps it to buzhash with a 4 MiB nominal size.
    ("DYNAMIC", Kind::Buzhash { average: 4 * MIB }),
    ("DYNAMIC-128K-BUZHASH", Kind::Buzhash { average: 128 * KIB }),
    (
        "DYNAMIC-128K-RABINKARP",
        Kind::RabinKarp { average: 128 * KIB },
    ),
    ("DYNAMIC-1M-BUZHASH", Kind::Buzhash { average: MIB }),
    ("DYNAMIC-1M-RABINKARP", Kind::RabinKarp { average: MIB }),
    ("DYNAMIC-256K-BUZHASH", Kind::Buzhash { average: 256 * KIB }),
    (
        "DYNAMIC-256K-RABINKARP",
        Kind::RabinKarp { average: 256 * KIB },
    ),
    ("DYNAMIC-2M-BUZHASH", Kind::Buzhash { average: 2 * MIB }),
    ("DYNAMIC-2M-RABINKARP", Kind::RabinKarp { average: 2 * MIB }),
    ("DYNAMIC-4M-BUZHASH", Kind::Buzhash { average: 4 * MIB }),
    ("DYNAMIC-4M-RABINKARP", Kind::RabinKarp { average: 4 * MIB }),
    ("DYNAMIC-512K-BUZHASH", Kind::Buzhash { average: 512 * KIB }),
    (
        "DYNAMIC-512K-RABINKARP",
        Kind::RabinKarp { average: 512 * KIB },
    ),
    ("DYNAMIC-8M-BUZHASH", Kind::Buzhash { average: 8 * MIB }),
    ("DYNAMIC-8M-RABINKARP", Kind::RabinKarp { average: 8 * MIB }),
    // Legacy name: a fixed 4 MiB splitter.
    ("FIXED", Kind::Fixed { size: 4 * MIB }),
    ("FIXED-128K", Kind::Fixed { size: 128 * KIB }),
    ("FIXED-1M", Kind::Fixed { size: MIB }),
    ("FIXED-256K", Kind::Fixed { size: 256 * KIB }),
    ("FIXED-2M", Kind::Fixed { size: 2 * MIB }),
    ("FIXED-4M", Kind::Fixed { size: 4 * MIB }),
    ("FIXED-512K", Kind::Fixed { size: 512 * KIB }),
    ("FIXED-8M", Kind::Fixed { size: 8 * MIB }),
];

const NAMES: [&str; ALGORITHMS.len()] = {
    let mut names = [""; ALGORITHMS.len()];
    let mut i = 0;
    while i < ALGORITHMS.len() {
        names[i] = ALGORITHMS[i].0;
        i += 1;
    }
    names
};

/// Every splitter name Kopia accepts (including the legacy `FIXED` and `DYNAMIC`),
/// sorted bytewise.
pub fn supported_splitters() -> &'static [&'static str] {
    &NAMES
}

/// Finds where chunks end in a stream of bytes.
pub trait Splitter: Send {
    /// Looks for the end of the current chunk in `data`, the next bytes of the stream.
    ///
    /// Returns `Some(n)` (with `1 <= n <= data.len()`) when the current chunk ends
    /// after `data[n - 1]`: the splitter has consumed `n` bytes and starts a new chunk;
    /// feed it `data[n..]` next. Returns `None` when all of `data` belongs to the
    /// current chunk and has been consumed.
    fn next_split_point(&mut self, data: &[u8]) -> Option<usize>;

    /// Forgets the stream: the splitter is as if newly created.
    fn reset(&mut self);

    /// The longest chunk this splitter can produce.
    fn max_segment_size(&self) -> usize;
}

/// A cheap, shareable handle that creates splitters of one algorithm, one per
/// stream (file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SplitterFactory {
    name: &'static str,
    kind: Kind,
}

impl SplitterFactory {
    /// The factory for the splitter named `name` (one of [`supported_splitters`]).
    pub fn new(name: &str) -> Result<Self> {
        ALGORITHMS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(name, kind)| SplitterFactory { name, kind })
            .ok_or_else(|| FormatError::UnsupportedAlgorithm {
                kind: "splitter",
                name: name.to_owned(),
            })
    }

    /// The algorithm name this factory was created with.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The longest chunk the splitters of this factory produce.
    pub fn max_segment_size(&self) -> usize {
        match self.kind {
            Kind::Fixed { size } => size,
            Kind::Buzhash { average } | Kind::RabinKarp { average } => 2 * average,
        }
    }

    /// The shortest chunk the splitters of this factory cut: a stream shorter than this is
    /// one chunk (a dynamic splitter never cuts before half its nominal size).
    pub fn min_segment_size(&self) -> usize {
        match self.kind {
            Kind::Fixed { size } => size,
            Kind::Buzhash { average } | Kind::RabinKarp { average } => average / 2,
        }
    }

    /// A new splitter, at the start of a stream.
    pub fn create(&self) -> Box<dyn Splitter> {
        // The averages in the table are valid, so the constructors cannot fail.
        match self.kind {
            Kind::Fixed { size } => Box::new(FixedSplitter::new(size)),
            Kind::Buzhash { average } => {
                Box::new(ContentSplitter::<Buzhash32>::from_average(average))
            }
            Kind::RabinKarp { average } => {
                Box::new(ContentSplitter::<RabinKarp64>::from_average(average))
            }
        }
    }
}

/// A new splitter for the algorithm `name` (one of [`supported_splitters`]).
pub fn new_splitter(name: &str) -> Result<Box<dyn Splitter>> {
    Ok(SplitterFactory::new(name)?.create())
}

/// Splits `data` as one whole stream with the algorithm `name`, returning the
/// chunk lengths in order. They add up to `data.len()`; the last chunk is whatever
/// remains after the last cut (no empty chunk is returned).
pub fn split_all(name: &str, data: &[u8]) -> Result<Vec<usize>> {
    let mut splitter = new_splitter(name)?;
    Ok(split_with(splitter.as_mut(), data))
}

/// Splits `data` with an existing splitter, continuing from its current state.
fn split_with(splitter: &mut dyn Splitter, mut data: &[u8]) -> Vec<usize> {
    let mut lengths = Vec::new();
    while !data.is_empty() {
        match splitter.next_split_point(data) {
            Some(n) => {
                lengths.push(n);
                data = &data[n..];
            }
            None => {
                lengths.push(data.len());
                break;
            }
        }
    }
    lengths
}

/// Cuts a chunk every `size` bytes.
#[derive(Clone, Debug)]
pub struct FixedSplitter {
    size: usize,
    filled: usize,
}

impl FixedSplitter {
    /// A splitter producing chunks of exactly `size` bytes (`size` must be positive).
    pub fn new(size: usize) -> Self {
        assert!(size > 0, "fixed splitter size must be positive");
        FixedSplitter { size, filled: 0 }
    }
}

impl Splitter for FixedSplitter {
    fn next_split_point(&mut self, data: &[u8]) -> Option<usize> {
        let missing = self.size - self.filled;
        if data.len() < missing {
            self.filled += data.len();
            None
        } else {
            self.filled = 0;
            Some(missing)
        }
    }

    fn reset(&mut self) {
        self.filled = 0;
    }

    fn max_segment_size(&self) -> usize {
        self.size
    }
}

/// A rolling hash over the last [`WINDOW_SIZE`] bytes of a stream, as used by the
/// content-defined splitters. Implemented by [`Buzhash32`] and [`RabinKarp64`].
///
/// The digest must be a function of the window contents only, with the empty
/// stream behaving as a window of zero bytes whose digest is 0.
pub trait RollingHash: Copy + Default + Send + private::Sealed {
    /// Slides the window by one byte: `leaving` is the byte that entered
    /// [`WINDOW_SIZE`] bytes before `entering`.
    fn roll(&mut self, leaving: u8, entering: u8);

    /// The current digest, widened to 64 bits.
    fn digest(&self) -> u64;

    /// Rolls `entering[i]` in and `leaving[i]` out for each `i` (both slices have
    /// the same length) until the digest has no bit of `mask` set. Returns how
    /// many bytes were rolled when that happened, leaving the state just after
    /// that byte, or `None` (and the state after all bytes) if it never did.
    #[inline(always)]
    fn roll_until(&mut self, leaving: &[u8], entering: &[u8], mask: u64) -> Option<usize> {
        debug_assert_eq!(leaving.len(), entering.len());
        for (i, (&l, &e)) in leaving.iter().zip(entering).enumerate() {
            self.roll(l, e);
            if self.digest() & mask == 0 {
                return Some(i + 1);
            }
        }
        None
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Buzhash32 {}
    impl Sealed for super::RabinKarp64 {}
}

/// A content-defined splitter driven by the rolling hash `H`.
#[derive(Clone, Debug)]
pub struct ContentSplitter<H> {
    hash: H,
    /// The last `WINDOW_SIZE` bytes of the stream, oldest first (zeros at the start).
    window: [u8; WINDOW_SIZE],
    /// Bytes of the current chunk consumed so far.
    count: usize,
    min_size: usize,
    max_size: usize,
    mask: u64,
}

/// Kopia's `DYNAMIC-*-BUZHASH` splitters.
pub type BuzhashSplitter = ContentSplitter<Buzhash32>;
/// Kopia's `DYNAMIC-*-RABINKARP` splitters.
pub type RabinKarpSplitter = ContentSplitter<RabinKarp64>;

impl<H: RollingHash> ContentSplitter<H> {
    /// A splitter with nominal chunk size `average`, which must be a power of two
    /// of at least 2: chunks are cut when `hash & (average - 1) == 0`, and are
    /// between `average / 2` and `2 * average` bytes long.
    pub fn new(average: usize) -> Result<Self> {
        if average < 2 || !average.is_power_of_two() || average > (1 << 30) {
            return Err(FormatError::InvalidInput(format!(
                "splitter average size must be a power of two between 2 and 2^30, got {average}"
            )));
        }
        Ok(Self::from_average(average))
    }

    fn from_average(average: usize) -> Self {
        debug_assert!(average >= 2 && average.is_power_of_two());
        ContentSplitter {
            hash: H::default(),
            window: [0; WINDOW_SIZE],
            count: 0,
            min_size: average / 2,
            max_size: average * 2,
            mask: average as u64 - 1,
        }
    }

    /// The shortest chunk this splitter cuts (except the last one of a stream).
    pub fn min_segment_size(&self) -> usize {
        self.min_size
    }

    /// Appends `consumed` to the remembered window.
    fn remember(&mut self, consumed: &[u8]) {
        let n = consumed.len();
        if n >= WINDOW_SIZE {
            self.window.copy_from_slice(&consumed[n - WINDOW_SIZE..]);
        } else if n > 0 {
            self.window.copy_within(n.., 0);
            self.window[WINDOW_SIZE - n..].copy_from_slice(consumed);
        }
    }
}

impl<H: RollingHash> Splitter for ContentSplitter<H> {
    fn next_split_point(&mut self, data: &[u8]) -> Option<usize> {
        let mut hash = self.hash;
        let mut pos = 0;

        // The first `min_size - 1` bytes of a chunk cannot end it, so only the
        // hash state after them matters. The digest is a function of the window
        // contents alone, so rolling just the last WINDOW_SIZE of them in (against
        // the remembered window) gives the same state as rolling all of them.
        if self.count + 1 < self.min_size {
            let skip = (self.min_size - self.count - 1).min(data.len());
            let start = skip.saturating_sub(WINDOW_SIZE);
            for (&leaving, &entering) in self.window.iter().zip(&data[start..skip]) {
                hash.roll(leaving, entering);
            }
            self.count += skip;
            pos = skip;
        }

        // From here on the hash is exact for the stream, so the leaving byte of
        // data[i] is data[i - WINDOW_SIZE], or from the remembered window for the
        // first WINDOW_SIZE bytes of this call.
        let check_start = pos;
        let end = pos + (self.max_size - self.count).min(data.len() - pos);
        let mask = self.mask;
        let mut cut = None;

        let head_end = end.min(WINDOW_SIZE);
        if pos < head_end {
            let leaving = &self.window[pos..head_end];
            cut = hash
                .roll_until(leaving, &data[pos..head_end], mask)
                .map(|n| pos + n);
            pos = head_end;
        }
        if cut.is_none() && pos < end {
            let leaving = &data[pos - WINDOW_SIZE..end - WINDOW_SIZE];
            cut = hash
                .roll_until(leaving, &data[pos..end], mask)
                .map(|n| pos + n);
        }

        self.hash = hash;
        let consumed = match cut {
            Some(n) => n,
            None => {
                self.count += end - check_start;
                if self.count < self.max_size {
                    self.remember(&data[..end]);
                    return None;
                }
                end
            }
        };
        self.remember(&data[..consumed]);
        self.count = 0;
        Some(consumed)
    }

    fn reset(&mut self) {
        self.hash = H::default();
        self.window = [0; WINDOW_SIZE];
        self.count = 0;
    }

    fn max_segment_size(&self) -> usize {
        self.max_size
    }
}
