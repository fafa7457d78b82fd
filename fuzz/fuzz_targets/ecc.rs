//! Fuzz target: the `ecc` decoder must repair or refuse any input, never panic.
#![no_main]

use kopr_fuzz as _; // the allocation limit

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = kopr_format::hostile::parse("ecc", data);
});
