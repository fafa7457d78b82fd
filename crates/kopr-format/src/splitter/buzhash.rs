//! The 32-bit buzhash (cyclic polynomial) rolling hash of Kopia's `*-BUZHASH` splitters.
//!
//! The digest of a window `w[0..64]` (oldest first) is the XOR over `k` of
//! `T[w[k]]` rotated left by `63 - k` bits, where `T` is a fixed table of 256
//! 32-bit values. Sliding the window rotates the digest left by one bit and XORs
//! out the leaving byte's entry (rotated by the window size, 64 ≡ 0 mod 32, i.e.
//! not at all) and XORs in the entering byte's entry. A window of zero bytes
//! hashes to 0, because every rotation of `T[0]` appears exactly twice.

use super::RollingHash;

/// Kopia's buzhash rolling hash over a 64-byte window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Buzhash32 {
    sum: u32,
}

impl Buzhash32 {
    /// The current 32-bit digest.
    #[inline]
    pub fn sum32(&self) -> u32 {
        self.sum
    }
}

impl RollingHash for Buzhash32 {
    #[inline(always)]
    fn roll(&mut self, leaving: u8, entering: u8) {
        // The window is 64 bytes: the leaving entry has been rotated 64 times,
        // a whole number of turns of a 32-bit word.
        // Combining the two entries first keeps the dependency chain on `sum` at
        // two instructions per byte.
        let delta = TABLE[leaving as usize] ^ TABLE[entering as usize];
        self.sum = self.sum.rotate_left(1) ^ delta;
    }

    #[inline(always)]
    fn digest(&self) -> u64 {
        u64::from(self.sum)
    }

    /// Two bytes per step: both next digests are derived from the current one by
    /// a single rotation and XOR.
    #[inline(always)]
    fn roll_until(&mut self, leaving: &[u8], entering: &[u8], mask: u64) -> Option<usize> {
        debug_assert_eq!(leaving.len(), entering.len());
        let mask = mask as u32;
        let t = |b: u8| TABLE[b as usize];
        let mut h = self.sum;
        let mut done = 0;
        for (l, e) in leaving.chunks_exact(2).zip(entering.chunks_exact(2)) {
            let d0 = t(l[0]) ^ t(e[0]);
            let d1 = t(l[1]) ^ t(e[1]);
            let h1 = h.rotate_left(1) ^ d0;
            let h2 = h.rotate_left(2) ^ (d0.rotate_left(1) ^ d1);
            if h1 & mask == 0 {
                self.sum = h1;
                return Some(done + 1);
            }
            if h2 & mask == 0 {
                self.sum = h2;
                return Some(done + 2);
            }
            h = h2;
            done += 2;
        }
        self.sum = h;
        for (i, (&l, &e)) in leaving[done..].iter().zip(&entering[done..]).enumerate() {
            self.roll(l, e);
            if self.sum & mask == 0 {
                return Some(done + i + 1);
            }
        }
        None
    }
}

/// The byte table: the default table of the `rollinghash/buzhash32` Go package
/// (v4.0.0) that Kopia links, i.e. 256 distinct values `uint32(Int63())` drawn from
/// Go's `math/rand` source seeded with 1 (regenerated and checked in the tests).
pub(super) const TABLE: [u32; 256] = [
    0x07fcfd52, 0x5f3f164f, 0x6695721d, 0x7b4d7c03, 0x49c6e2d1, 0x0d1d68d8, 0x7916001e, 0x22c4d294,
    0x392907a0, 0x189deb99, 0xf3875d04, 0x95e94627, 0xba517936, 0x83c471d4, 0x7cb3ad0b, 0xa42655d9,
    0x7c4e0b68, 0xd4491d1b, 0x25632186, 0xa9d78d73, 0x169c1121, 0xbb158644, 0xb68e6a3f, 0x759805f5,
    0x2cdf5b8a, 0x57d29245, 0xc5d6d268, 0x6b83d0e2, 0x7674cb74, 0xb068d9db, 0xbb9457d8, 0xa15d523b,
    0x794209ff, 0x9da1d7eb, 0x5a25e0cb, 0xf840ec4b, 0x36d4ff9b, 0xf4a5ee3b, 0x5ad145f4, 0xf6740304,
    0x3f71f8cb, 0x91018d7c, 0xfccae224, 0xb186b51f, 0x7d9e8fbc, 0x93f93f33, 0xf63a5b6f, 0x19476c36,
    0xbc897d06, 0x169873f5, 0x724c7af1, 0x581eeb39, 0x2257bb7d, 0x6f269a28, 0xbe8e9981, 0x7039374b,
    0x25416fed, 0xded7e411, 0x6678e7aa, 0x244fcd36, 0x56aa6b86, 0xde4561ad, 0x3e99b0a8, 0xbed80a3a,
    0xe58348b0, 0xaf63e58d, 0x406aec9d, 0xc233f007, 0xa5ead0bd, 0x050143a6, 0x738b6829, 0x3699caf3,
    0x967cd710, 0x06f665a6, 0x25fd3d7f, 0x0fd6e479, 0x26fbf29b, 0x16de4c35, 0x2bf3394b, 0x4af864ba,
    0x1cb9e6c6, 0x41439089, 0x69a39144, 0xc34f182d, 0x421657ff, 0xf9fc6568, 0x8b02c917, 0x6c9c64b7,
    0x83d17909, 0xea3d4ca5, 0xaf635d47, 0x7fc78769, 0xbe14186f, 0x3539b1ea, 0xe9174548, 0xc051e18a,
    0x07b73658, 0x29ec300c, 0xa250bf34, 0xa7ed5d97, 0xfe3dea79, 0xb8b352f7, 0xc9b344e9, 0x8e5f0475,
    0x1941e52a, 0x2694763d, 0x6b40eabc, 0x8485d68b, 0x336eacca, 0x4399a363, 0x67149b9c, 0xae10a901,
    0x5a5ffefb, 0x563b26de, 0x6f00f02b, 0x9f06397d, 0x545836c4, 0x31d6416b, 0x12f4128d, 0x752f33ff,
    0x4a305605, 0x0c8dc214, 0x72521a90, 0x8eb3e4a1, 0x83efc6c6, 0x090ec04f, 0xc1540864, 0xec2c8aaa,
    0x70ab53ba, 0x38d3b494, 0x878d4063, 0xa317ae3f, 0x3cb62f07, 0xf360412c, 0x4ffbf3a9, 0x22d554b4,
    0x3f190476, 0x0796a710, 0xf5c353cf, 0x04f59bb7, 0x2d230176, 0xe2d6a9ce, 0x3f1d7427, 0xafd915bb,
    0xb01aa47d, 0xcde2c269, 0x7417bf38, 0x1e094f9a, 0x55ece0ea, 0xcb94539b, 0x13d346b5, 0x54e0c0c1,
    0x6db30e37, 0xdc02b390, 0xa6e222f5, 0xe2f8c1fe, 0x2e166bdf, 0x67588a74, 0x21898f34, 0x4c330f1d,
    0x19af53ba, 0x70658b94, 0x133c9673, 0x4efeeadd, 0x0f212551, 0x070f0914, 0x6f241c57, 0xf13e41b7,
    0x3be70cb0, 0xf4b6f47f, 0x20f31127, 0x6551cb89, 0x289cbd2c, 0x8946f23d, 0x40a79c3b, 0x03c6d982,
    0x0365790c, 0x0cf52517, 0x0bb131e8, 0x3da5475c, 0x139efcca, 0xbcd44eb4, 0xa54af747, 0xb73c32ed,
    0x9f6c47ac, 0xe8ba8f22, 0x54043a66, 0x3b0a7f20, 0xb4926431, 0xe17c02d5, 0x8f0d2558, 0x014fbff2,
    0x7f803594, 0x79b76fbe, 0x33fe2656, 0x792c8ee8, 0x6b41292d, 0xfdff9c32, 0x82093298, 0x59483870,
    0xb2d5a113, 0x2dd96e5a, 0x5b8e56a9, 0xebd9dda9, 0x04f9ce92, 0xcb440950, 0xa67e52b1, 0x49f6d261,
    0x92417fc3, 0x1c3b6bd9, 0xb027b7e0, 0x1f765a41, 0x44c9ab40, 0x45d99121, 0xfd7a84af, 0x99b75788,
    0xe3abff4a, 0xa88aa67f, 0x736e41cc, 0x9cbcbe5e, 0x7b3ccebc, 0xe1b7fa93, 0x315ae6af, 0x9cced2e2,
    0x19ea0f2f, 0xa9770722, 0x84a6bfdc, 0x88f03f07, 0xa44a03a4, 0x27a6b885, 0xb580c8ba, 0x018153da,
    0xb648e604, 0x51180278, 0x893a310f, 0x728f5f4c, 0x37f5198b, 0x3cc0ea9b, 0xe39d02db, 0x13883142,
    0xca599392, 0xc12d154e, 0xc176163d, 0x5c92e2b8, 0xf9f95ede, 0xb802bdfc, 0x8a928585, 0xdca6e10b,
    0x887953e8, 0x48b9e962, 0xe533e9a3, 0x5e0ce6e5, 0x1dba77ae, 0xc8214b8a, 0x53b428d7, 0x4cf20a65,
];
