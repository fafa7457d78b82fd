#!/usr/bin/env bash
# Builds every fuzz target with libFuzzer's coverage instrumentation and runs each for a bounded
# time (FUZZ_SECONDS, default 10; FUZZ_JOBS at once, default one per core) on the committed
# corpora; new inputs go to a scratch corpus. FUZZ_BUILD_ONLY=1 only builds.
#
# The targets are cargo-fuzz targets (`cargo fuzz run index` works); this script passes the
# coverage flags cargo-fuzz would, without a sanitizer, so that it needs neither cargo-fuzz nor
# a nightly compiler: the parsers are safe Rust, and the fuzz crate's allocator aborts on any
# single allocation over its limit (ALLOC_LIMIT_MB in src/lib.rs), which libFuzzer records as a
# crash with the input that caused it.
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECONDS:-10}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
# Only the target's own code is instrumented (--target keeps build scripts plain).
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --release --locked --bins --target "$triple"
[ -z "${FUZZ_BUILD_ONLY:-}" ] || exit 0
bin="target/$triple/release"
targets=$(awk '/^\[\[bin\]\]/ {b = 1} b && /^name = / {gsub(/"/, "", $3); print $3; b = 0}' Cargo.toml)
# one target per core at a time; each prints its last lines when it ends
jobs="${FUZZ_JOBS:-$(nproc)}"
export bin secs
echo "$targets" | xargs -P "$jobs" -I{} sh -c '
  t={}
  mkdir -p "corpus/$t" "target/new-corpus/$t" artifacts
  out=$("$bin/$t" "target/new-corpus/$t" "corpus/$t" -max_total_time="$secs" -rss_limit_mb=2048 \
    -max_len=65536 -artifact_prefix="artifacts/$t-" 2>&1)
  status=$?
  echo "fuzz $t (${secs}s): $(echo "$out" | tail -n 1)"
  [ "$status" -eq 0 ] || { echo "$out" | tail -n 30; exit 255; }
'
