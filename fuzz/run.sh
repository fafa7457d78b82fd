#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 10 s each) on the committed corpora.
# Needs cargo-fuzz; nightly features are enabled on the stable toolchain with RUSTC_BOOTSTRAP.
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECONDS:-10}"
export RUSTC_BOOTSTRAP=1
for t in $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v kopr-fuzz); do
  # new inputs go to a scratch corpus; the committed one is read only
  mkdir -p "corpus/$t" "target/new-corpus/$t"
  cargo fuzz run "$t" "target/new-corpus/$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 2>&1 | tail -n 2
done
