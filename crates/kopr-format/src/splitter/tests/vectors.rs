//! Regression vectors: chunk counts and length digests of every splitter on fixed inputs.

use super::*;

/// Regression vectors, not compatibility evidence: for each input of [`kat_input`] (xorshift
/// bytes, "DNA" text, zeros) and each splitter, (input, splitter, chunk count, FNV-1a digest
/// of all chunk lengths, first chunk lengths) as kopr computes them. An earlier comment here
/// described Kopia's `TestSplitterStability` (5,000,000 bytes of Go's `math/rand` seeded
/// with 5), which is not this input, and said the rows were computed by Kopia's Go code; no
/// program or commit for that was recorded, so the rows only pin kopr's current behaviour.
/// That Kopia cuts where kopr does is shown by `kopia_fixtures` in kopr-repo's tests.
const KNOWN_ANSWERS: &[(&str, &str, usize, u64, &[usize])] = &[
    (
        "random",
        "DYNAMIC",
        9,
        0xeb20145e3fe1cb74,
        &[8388608, 4388448, 8108955, 6578434, 4589531, 2633154],
    ),
    (
        "random",
        "DYNAMIC-128K-BUZHASH",
        290,
        0x03ecd4183b64d866,
        &[83393, 262144, 132582, 196228, 262144, 151820],
    ),
    (
        "random",
        "DYNAMIC-128K-RABINKARP",
        302,
        0x8b993dd377241f30,
        &[238321, 214178, 262144, 262144, 102728, 177685],
    ),
    (
        "random",
        "DYNAMIC-1M-BUZHASH",
        39,
        0x387cc2aac5454187,
        &[674347, 1529475, 2097152, 549145, 1517060, 1088554],
    ),
    (
        "random",
        "DYNAMIC-1M-RABINKARP",
        38,
        0x34bb31aa9bbfed71,
        &[1079515, 1955871, 662415, 824362, 2097152, 1219965],
    ),
    (
        "random",
        "DYNAMIC-256K-BUZHASH",
        144,
        0x3cdc17c756f3b9de,
        &[478119, 196228, 524288, 524288, 360351, 341045],
    ),
    (
        "random",
        "DYNAMIC-256K-RABINKARP",
        163,
        0xc8b2992c9a6fa8d9,
        &[238321, 524288, 250373, 244218, 416948, 459759],
    ),
    (
        "random",
        "DYNAMIC-2M-BUZHASH",
        17,
        0xd41415d6aa76743a,
        &[4194304, 2690236, 4194304, 1698212, 3239900, 2093889],
    ),
    (
        "random",
        "DYNAMIC-2M-RABINKARP",
        21,
        0xa1a533a78b83425d,
        &[3035386, 1486777, 2349046, 2716744, 1957158, 1683418],
    ),
    (
        "random",
        "DYNAMIC-4M-BUZHASH",
        9,
        0xeb20145e3fe1cb74,
        &[8388608, 4388448, 8108955, 6578434, 4589531, 2633154],
    ),
    (
        "random",
        "DYNAMIC-4M-RABINKARP",
        10,
        0x39f7b7d3fa6aec96,
        &[3697801, 5890152, 8388608, 5639963, 3005953, 7641085],
    ),
    (
        "random",
        "DYNAMIC-512K-BUZHASH",
        76,
        0x72aa6cd44c017b34,
        &[674347, 1048576, 480899, 1048576, 461848, 502709],
    ),
    (
        "random",
        "DYNAMIC-512K-RABINKARP",
        82,
        0x496e60fa2a9c40aa,
        &[1048576, 1048576, 265524, 672710, 419793, 1048576],
    ),
    (
        "random",
        "DYNAMIC-8M-BUZHASH",
        5,
        0x0e6ff82a7ab4d719,
        &[12777056, 14687389, 4589531, 9899104, 8390913],
    ),
    (
        "random",
        "DYNAMIC-8M-RABINKARP",
        6,
        0x15d0e39aaa343d42,
        &[10171947, 16450530, 7641085, 4468086, 10682914, 929431],
    ),
    (
        "random",
        "FIXED",
        13,
        0x8231b7ce5f8a93cc,
        &[4194304, 4194304, 4194304, 4194304, 4194304, 4194304],
    ),
    (
        "random",
        "FIXED-128K",
        385,
        0x3dc1aebb20806c4c,
        &[131072, 131072, 131072, 131072, 131072, 131072],
    ),
    (
        "random",
        "FIXED-1M",
        49,
        0x03a7154be0c39a4c,
        &[1048576, 1048576, 1048576, 1048576, 1048576, 1048576],
    ),
    (
        "random",
        "FIXED-256K",
        193,
        0xf093f827cdb4944c,
        &[262144, 262144, 262144, 262144, 262144, 262144],
    ),
    (
        "random",
        "FIXED-2M",
        25,
        0x7b5a2eca32ae804c,
        &[2097152, 2097152, 2097152, 2097152, 2097152, 2097152],
    ),
    (
        "random",
        "FIXED-4M",
        13,
        0x8231b7ce5f8a93cc,
        &[4194304, 4194304, 4194304, 4194304, 4194304, 4194304],
    ),
    (
        "random",
        "FIXED-512K",
        97,
        0xa48a7bfc1048584c,
        &[524288, 524288, 524288, 524288, 524288, 524288],
    ),
    (
        "random",
        "FIXED-8M",
        7,
        0x64201cf97094a10c,
        &[8388608, 8388608, 8388608, 8388608, 8388608, 8388608],
    ),
    (
        "dna",
        "DYNAMIC",
        4,
        0x7a6bf5df58295081,
        &[7264005, 8388608, 6815971, 2698017],
    ),
    (
        "dna",
        "DYNAMIC-128K-BUZHASH",
        144,
        0x2ffd1baf81df7b37,
        &[103063, 262144, 262144, 262144, 147596, 65865],
    ),
    (
        "dna",
        "DYNAMIC-128K-RABINKARP",
        146,
        0xa4e0183cefbe77d5,
        &[262144, 78878, 262144, 124436, 123316, 262144],
    ),
    (
        "dna",
        "DYNAMIC-1M-BUZHASH",
        19,
        0xaae7d99fdf57b82e,
        &[1037091, 720703, 1518676, 959389, 587829, 1909436],
    ),
    (
        "dna",
        "DYNAMIC-1M-RABINKARP",
        20,
        0x1395619a6c161b3a,
        &[2097152, 624865, 2097152, 2059106, 1709633, 1456932],
    ),
    (
        "dna",
        "DYNAMIC-256K-BUZHASH",
        70,
        0xb8767ab6fefd5eb1,
        &[423399, 249176, 364516, 442025, 278677, 524288],
    ),
    (
        "dna",
        "DYNAMIC-256K-RABINKARP",
        76,
        0x50c279259c5f58c2,
        &[315895, 411707, 500201, 316587, 277627, 194856],
    ),
    (
        "dna",
        "DYNAMIC-2M-BUZHASH",
        8,
        0x78d7ac008a482720,
        &[4194304, 3069701, 4194304, 1440822, 4194304, 3158182],
    ),
    (
        "dna",
        "DYNAMIC-2M-RABINKARP",
        11,
        0x1a7e278f89c0c3b5,
        &[2722017, 4194304, 1671587, 1456932, 2966919, 2563310],
    ),
    (
        "dna",
        "DYNAMIC-4M-BUZHASH",
        4,
        0x7a6bf5df58295081,
        &[7264005, 8388608, 6815971, 2698017],
    ),
    (
        "dna",
        "DYNAMIC-4M-RABINKARP",
        7,
        0xcd86929af0632c0a,
        &[2722017, 5865891, 4423851, 5297019, 3665135, 2716667],
    ),
    (
        "dna",
        "DYNAMIC-512K-BUZHASH",
        37,
        0x483b3184a7613bb6,
        &[1037091, 442025, 278677, 1048576, 470100, 638862],
    ),
    (
        "dna",
        "DYNAMIC-512K-RABINKARP",
        37,
        0x43fc5590799f79a2,
        &[341022, 386580, 1048576, 945839, 528284, 385059],
    ),
    (
        "dna",
        "DYNAMIC-8M-BUZHASH",
        3,
        0xb0ff02cdea199fe1,
        &[7264005, 15204579, 2698017],
    ),
    (
        "dna",
        "DYNAMIC-8M-RABINKARP",
        4,
        0xbeac46d7be4b3af0,
        &[10044840, 8263938, 6381802, 476021],
    ),
    (
        "dna",
        "FIXED",
        7,
        0xcba31fc9bf05507d,
        &[4194304, 4194304, 4194304, 4194304, 4194304, 4194304],
    ),
    (
        "dna",
        "FIXED-128K",
        193,
        0x1692b838a92a093d,
        &[131072, 131072, 131072, 131072, 131072, 131072],
    ),
    (
        "dna",
        "FIXED-1M",
        25,
        0x8c7ebaada411203d,
        &[1048576, 1048576, 1048576, 1048576, 1048576, 1048576],
    ),
    (
        "dna",
        "FIXED-256K",
        97,
        0x92759166d52c1d3d,
        &[262144, 262144, 262144, 262144, 262144, 262144],
    ),
    (
        "dna",
        "FIXED-2M",
        13,
        0xce9a57c1c6dd933d,
        &[2097152, 2097152, 2097152, 2097152, 2097152, 2097152],
    ),
    (
        "dna",
        "FIXED-4M",
        7,
        0xcba31fc9bf05507d,
        &[4194304, 4194304, 4194304, 4194304, 4194304, 4194304],
    ),
    (
        "dna",
        "FIXED-512K",
        49,
        0x8e19d20aec7bff3d,
        &[524288, 524288, 524288, 524288, 524288, 524288],
    ),
    (
        "dna",
        "FIXED-8M",
        4,
        0x8abacc4722d0919d,
        &[8388608, 8388608, 8388608, 777],
    ),
    (
        "zeros",
        "DYNAMIC",
        11,
        0x96ca3024e1cc7220,
        &[2097152, 2097152, 2097152, 2097152, 2097152, 2097152],
    ),
    (
        "zeros",
        "DYNAMIC-128K-BUZHASH",
        321,
        0x3bd16292fce5db20,
        &[65536, 65536, 65536, 65536, 65536, 65536],
    ),
    (
        "zeros",
        "DYNAMIC-128K-RABINKARP",
        321,
        0x3bd16292fce5db20,
        &[65536, 65536, 65536, 65536, 65536, 65536],
    ),
    (
        "zeros",
        "DYNAMIC-1M-BUZHASH",
        41,
        0xf187ee23fbbcac20,
        &[524288, 524288, 524288, 524288, 524288, 524288],
    ),
    (
        "zeros",
        "DYNAMIC-1M-RABINKARP",
        41,
        0xf187ee23fbbcac20,
        &[524288, 524288, 524288, 524288, 524288, 524288],
    ),
    (
        "zeros",
        "DYNAMIC-256K-BUZHASH",
        161,
        0xce8c4b47751adf20,
        &[131072, 131072, 131072, 131072, 131072, 131072],
    ),
    (
        "zeros",
        "DYNAMIC-256K-RABINKARP",
        161,
        0xce8c4b47751adf20,
        &[131072, 131072, 131072, 131072, 131072, 131072],
    ),
    (
        "zeros",
        "DYNAMIC-2M-BUZHASH",
        21,
        0xe311fad9fab8a7a0,
        &[1048576, 1048576, 1048576, 1048576, 1048576, 1048576],
    ),
    (
        "zeros",
        "DYNAMIC-2M-RABINKARP",
        21,
        0xe311fad9fab8a7a0,
        &[1048576, 1048576, 1048576, 1048576, 1048576, 1048576],
    ),
    (
        "zeros",
        "DYNAMIC-4M-BUZHASH",
        11,
        0x96ca3024e1cc7220,
        &[2097152, 2097152, 2097152, 2097152, 2097152, 2097152],
    ),
    (
        "zeros",
        "DYNAMIC-4M-RABINKARP",
        11,
        0x96ca3024e1cc7220,
        &[2097152, 2097152, 2097152, 2097152, 2097152, 2097152],
    ),
    (
        "zeros",
        "DYNAMIC-512K-BUZHASH",
        81,
        0x3da180dae6f94520,
        &[262144, 262144, 262144, 262144, 262144, 262144],
    ),
    (
        "zeros",
        "DYNAMIC-512K-RABINKARP",
        81,
        0x3da180dae6f94520,
        &[262144, 262144, 262144, 262144, 262144, 262144],
    ),
    (
        "zeros",
        "DYNAMIC-8M-BUZHASH",
        6,
        0xd7cdb57fe19d6e00,
        &[4194304, 4194304, 4194304, 4194304, 4194304, 5],
    ),
    (
        "zeros",
        "DYNAMIC-8M-RABINKARP",
        6,
        0xd7cdb57fe19d6e00,
        &[4194304, 4194304, 4194304, 4194304, 4194304, 5],
    ),
    (
        "zeros",
        "FIXED",
        6,
        0xd7cdb57fe19d6e00,
        &[4194304, 4194304, 4194304, 4194304, 4194304, 5],
    ),
    (
        "zeros",
        "FIXED-128K",
        161,
        0xce8c4b47751adf20,
        &[131072, 131072, 131072, 131072, 131072, 131072],
    ),
    (
        "zeros",
        "FIXED-1M",
        21,
        0xe311fad9fab8a7a0,
        &[1048576, 1048576, 1048576, 1048576, 1048576, 1048576],
    ),
    (
        "zeros",
        "FIXED-256K",
        81,
        0x3da180dae6f94520,
        &[262144, 262144, 262144, 262144, 262144, 262144],
    ),
    (
        "zeros",
        "FIXED-2M",
        11,
        0x96ca3024e1cc7220,
        &[2097152, 2097152, 2097152, 2097152, 2097152, 2097152],
    ),
    (
        "zeros",
        "FIXED-4M",
        6,
        0xd7cdb57fe19d6e00,
        &[4194304, 4194304, 4194304, 4194304, 4194304, 5],
    ),
    (
        "zeros",
        "FIXED-512K",
        41,
        0xf187ee23fbbcac20,
        &[524288, 524288, 524288, 524288, 524288, 524288],
    ),
    (
        "zeros",
        "FIXED-8M",
        3,
        0x6af80f91514b9220,
        &[8388608, 8388608, 4194309],
    ),
];

fn kat_input(name: &str) -> Vec<u8> {
    match name {
        "random" => xorshift_bytes(0x9E37_79B9_7F4A_7C15, (48 << 20) + 12345),
        "dna" => dna_bytes(0x0123_4567_89AB_CDEF, (24 << 20) + 777),
        "zeros" => vec![0; (20 << 20) + 5],
        _ => unreachable!(),
    }
}

#[test]
fn regression_vectors_of_every_splitter() {
    for input_name in ["random", "dna", "zeros"] {
        let input = kat_input(input_name);
        let mut checked = 0;
        for &(inp, name, count, digest, first) in KNOWN_ANSWERS {
            if inp != input_name {
                continue;
            }
            let lengths = split_all(name, &input).unwrap();
            assert_eq!(&lengths[..first.len()], first, "{inp} {name}");
            assert_eq!(lengths.len(), count, "{inp} {name}");
            assert_eq!(lengths_digest(&lengths), digest, "{inp} {name}");
            checked += 1;
        }
        assert_eq!(checked, supported_splitters().len(), "{input_name}");
    }
}

#[test]
/// Regression vector (kopr's own output, see [`KNOWN_ANSWERS`]).
fn default_splitter_full_regression_vector() {
    let input = kat_input("random");
    let expected = [
        8388608, 4388448, 8108955, 6578434, 4589531, 2633154, 7265950, 8388608, 2305,
    ];
    assert_eq!(split_all(KOPIA_DEFAULT_SPLITTER, &input).unwrap(), expected);
    assert_eq!(split_all("DYNAMIC", &input).unwrap(), expected);
    let expected_rk = [
        3697801, 5890152, 8388608, 5639963, 3005953, 7641085, 4468086, 8388608, 2294306, 929431,
    ];
    assert_eq!(
        split_all("DYNAMIC-4M-RABINKARP", &input).unwrap(),
        expected_rk
    );
}
