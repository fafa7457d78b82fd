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
#
# Where an S3 server can be run (S3S_FAST, default the s3s-fs that bench/s3s_fast.sh builds,
# run with 1 MiB reads and TCP_NODELAY; else S3S_FS or target/tools/bin/s3s-fs), kopr and
# restic also store NEW in a bucket on loopback (untimed) and restore it from there with a cold
# and a warm local cache: issue 16's "restore from S3 within 1.5x of the same restore from a
# filesystem repository". Restores go under RESTORE_DIR (default BENCH_DIR); on an ext4
# filesystem without a journal their times swing (see journal_warning in common.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
old="${1:?usage: real_tree.sh OLD NEW [RUNS]}"
new="${2:?usage: real_tree.sh OLD NEW [RUNS]}"
runs="${3:-2}"
work="${BENCH_DIR:-/tmp/kopr-real}"
# shellcheck source=bench/common.sh
source "$here/common.sh"
restore_root="${RESTORE_DIR:-$work}"
mkdir -p "$restore_root"
journal_warning "$restore_root"

s3server="${S3S_FAST:-$here/../target/tools/s3s-fast/target/release/s3s-fs}"
[ -x "$s3server" ] || s3server="${S3S_FS:-$here/../target/tools/bin/s3s-fs}"
[ -x "$s3server" ] || s3server="$(command -v s3s-fs || true)"
if [ -n "$s3server" ]; then
  rm -rf "$work/s3data" && mkdir -p "$work/s3data"
  start_s3 "$s3server" "$work/s3data" S3S_NODELAY=1 S3S_READ=1048576
else
  echo "no S3 server (bench/s3s_fast.sh, S3S_FS, target/tools/bin, PATH): no restores from S3" >&2
fi

# s3_restore TOOL RUN: TOOL's snapshot of the tree into a new bucket (untimed), then its timed
# restores from there with an empty and with a filled local cache (steps s3-restore-cold and
# s3-restore-warm, by restore_latest); the bucket and cache are removed after.
s3_restore() {
  local tool=$1 run=$2 bucket="$1-$2" dst="$restore_root/restore-s3-$1" cache="$work/cache-s3-$1"
  local cfg="$work/kopr-s3.config" repo="s3:http://127.0.0.1:$s3port/$1-$2"
  mkdir -p "$work/s3data/$bucket"
  rm -rf "$cache" "$dst"
  # restic's cache for this bucket (restore_latest runs restic without flags for it).
  local tools_cache=$RESTIC_CACHE_DIR
  export RESTIC_CACHE_DIR="$cache"
  case $tool in
    kopr)
      rm -rf "$cfg" "$cfg".*
      "$kopr" --config-file "$cfg" repository create s3 --bucket "$bucket" --endpoint "http://127.0.0.1:$s3port" \
        --access-key benchkey --secret-access-key benchsecret --cache-directory "$cache" >/dev/null
      "$kopr" --config-file "$cfg" snapshot create "$work/tree" >/dev/null ;;
    restic)
      restic -r "$repo" init >/dev/null
      restic -r "$repo" backup "$work/tree" >/dev/null ;;
  esac
  rm -rf "$cache"
  restore_latest "$tool" s3-restore-cold "$run" "$repo" "$cfg" "$work/tree" "$dst" ""
  rm -rf "$dst"
  restore_latest "$tool" s3-restore-warm "$run" "$repo" "$cfg" "$work/tree" "$dst" ""
  export RESTIC_CACHE_DIR=$tools_cache
  rm -rf "$dst" "$cache" "$work/s3data/$bucket"
}

# put TREE: makes $work/tree a copy of TREE (the same path for every version)
put() {
  rm -rf "$work/tree" && cp -a "$1" "$work/tree" && sync
  find "$work/tree" -type f -exec cat {} + >/dev/null 2>&1 || true
}

for run in $(seq 1 "$runs"); do
  for tool in "${tools[@]}"; do
    repo="$work/repo-$tool" dst="$restore_root/restore-$tool" cfg="$work/kopr.config"
    rm -rf "$repo" "$dst"
    put "$old"
    init_repo "$tool" "$repo" "$cfg"
    backup "$tool" first "$run" "$repo" "$cfg" "$work/tree" first
    put "$new"
    backup "$tool" newversion "$run" "$repo" "$cfg" "$work/tree" second
    restore_latest "$tool" restore "$run" "$repo" "$cfg" "$work/tree" "$dst" second
    echo -e "$tool\tsize\t$run\t$(du -sb "$repo" | cut -f1)\t0" >> "$results"
    rm -rf "$dst"
    if [ -n "$s3server" ] && { [ "$tool" = kopr ] || [ "$tool" = restic ]; }; then
      s3_restore "$tool" "$run"
    fi
  done
done
[ -z "$s3server" ] || stop_s3

python3 - "$results" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tool, step, _run, secs, rss = line.rstrip("\n").split("\t")
    d[(tool, step)].append((float(secs), int(rss)))
tools = [t for t in ["kopr", "restic", "borg", "rustic"] if (t, "first") in d]
print("| step | " + " | ".join(tools) + " |")
print("|---|" + "---|" * len(tools))
names = {"s3-restore-cold": "restore from S3, cold cache", "s3-restore-warm": "restore from S3, warm cache"}
for step in ["first", "newversion", "restore", "s3-restore-cold", "s3-restore-warm"]:
    if not any((t, step) in d for t in tools):
        continue
    cells = []
    for t in tools:
        v = d.get((t, step))
        cells.append("-" if not v else f"{statistics.median(x[0] for x in v):.2f} s ({max(x[1] for x in v) / 1024:.0f} MiB)")
    print(f"| {names.get(step, step)} | " + " | ".join(cells) + " |")
cells = [f"{statistics.median(x[0] for x in d[(t, 'size')]) / 2**20:.0f} MiB" for t in tools]
print("| repository size | " + " | ".join(cells) + " |")
med = lambda t, s: statistics.median(x[0] for x in d[(t, s)])
for t in tools:
    if (t, "s3-restore-cold") in d and (t, "restore") in d:
        fs = med(t, "restore")
        ratio = lambda s: f"{med(t, s) / fs:.2f}x" if fs > 0 else "-"
        print(f"{t}: restore from S3 on loopback / from the filesystem: cold cache {ratio('s3-restore-cold')}, warm {ratio('s3-restore-warm')}")
PY
