#!/usr/bin/env bash
# A real many-files tree, side by side: a first snapshot of OLD, a snapshot of NEW at the same
# path (a newer version of the same tree), a restore of it, and the repository's size, for kopr,
# restic, BorgBackup and rustic (those installed), each with its defaults. Prints the median
# wall time and peak RSS of each step over RUNS runs.
#
#   bench/real_tree.sh OLD NEW [RUNS=2]
#
# Issue 16's tree is a compiler toolchain's documentation and libraries (~52,000 files,
# 1.3 GB), e.g. OLD=~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu and
# NEW=~/.rustup/toolchains/nightly-x86_64-unknown-linux-gnu. Both are copied under BENCH_DIR
# (default /tmp/kopr-real) first, outside the timings, and read from the page cache.
#
# Tools: KOPR (default target/release/kopr), restic, borg, rustic on PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
old="${1:?usage: real_tree.sh OLD NEW [RUNS]}"
new="${2:?usage: real_tree.sh OLD NEW [RUNS]}"
runs="${3:-2}"
work="${BENCH_DIR:-/tmp/kopr-real}"
# shellcheck source=bench/common.sh
source "$here/common.sh"

# put TREE: makes $work/tree a copy of TREE (the same path for every version)
put() {
  rm -rf "$work/tree" && cp -a "$1" "$work/tree" && sync
  find "$work/tree" -type f -exec cat {} + >/dev/null 2>&1 || true
}

for run in $(seq 1 "$runs"); do
  for tool in "${tools[@]}"; do
    repo="$work/repo-$tool" dst="$work/restore-$tool" cfg="$work/kopr.config"
    rm -rf "$repo" "$dst"
    put "$old"
    init_repo "$tool" "$repo" "$cfg"
    backup "$tool" first "$run" "$repo" "$cfg" "$work/tree" first
    put "$new"
    backup "$tool" newversion "$run" "$repo" "$cfg" "$work/tree" second
    restore_latest "$tool" restore "$run" "$repo" "$cfg" "$work/tree" "$dst" second
    echo -e "$tool\tsize\t$run\t$(du -sb "$repo" | cut -f1)\t0" >> "$results"
    rm -rf "$dst"
  done
done

python3 - "$results" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tool, step, _run, secs, rss = line.rstrip("\n").split("\t")
    d[(tool, step)].append((float(secs), int(rss)))
tools = [t for t in ["kopr", "restic", "borg", "rustic"] if (t, "first") in d]
print("| step | " + " | ".join(tools) + " |")
print("|---|" + "---|" * len(tools))
for step in ["first", "newversion", "restore"]:
    cells = []
    for t in tools:
        v = d.get((t, step))
        cells.append("-" if not v else f"{statistics.median(x[0] for x in v):.1f} s ({max(x[1] for x in v) / 1024:.0f} MiB)")
    print(f"| {step} | " + " | ".join(cells) + " |")
cells = [f"{statistics.median(x[0] for x in d[(t, 'size')]) / 2**20:.0f} MiB" for t in tools]
print("| repository size | " + " | ".join(cells) + " |")
PY
