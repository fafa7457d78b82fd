#!/usr/bin/env bash
# Side by side on the same seeded corpus and machine: first backup, incremental backup,
# restore, check, forget+prune, for kopr, restic, BorgBackup and rustic (those installed).
# Prints the median wall time and peak RSS of each step over RUNS runs, and repository sizes.
#
#   bench/compare.sh [SIZE_MB=1024] [RUNS=3]
#
# Tools: KOPR (default target/release/kopr), restic, borg, rustic on PATH. All use their
# default chunking; compression is comparable: restic 'auto' (zstd), rustic default (zstd),
# borg lz4 (its default), kopr --compression=zstd (zstd level 3, as restic's auto). kopr uses
# its default splitter (DYNAMIC-1M-BUZHASH, 1 MiB average chunks like restic's) and hash.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
size="${1:-1024}"
runs="${2:-3}"
kopr="${KOPR:-$here/../target/release/kopr}"
work="${BENCH_DIR:-/tmp/kopr-bench}"
export RESTIC_PASSWORD=pw BORG_PASSPHRASE=pw RUSTIC_PASSWORD=pw KOPR_PASSWORD=pw
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

tools=(kopr)
command -v restic >/dev/null && tools+=(restic)
command -v borg >/dev/null && tools+=(borg)
command -v rustic >/dev/null && tools+=(rustic)

results="$work/results.tsv"
mkdir -p "$work"
: > "$results"

# timed STEP TOOL RUN -- command...: appends "tool step run seconds maxrss_kb"
timed() {
  local tool=$1 step=$2 run=$3
  shift 4
  if ! /usr/bin/time -f "%e %M" "$@" >/dev/null 2>"$work/err.log"; then
    echo "$tool $step failed:" >&2; cat "$work/err.log" >&2; exit 1
  fi
  local last
  last=$(tail -1 "$work/err.log")
  if ! echo "$last" | grep -Eq '^[0-9.]+ [0-9]+$'; then
    echo "$tool $step failed:" >&2; cat "$work/err.log" >&2; exit 1
  fi
  echo -e "$tool\t$step\t$run\t${last% *}\t${last#* }" >> "$results"
}

for run in $(seq 1 "$runs"); do
  src="$work/src"
  rm -rf "$src" && mkdir -p "$src"
  python3 "$here/make_corpus.py" "$src" "$size" 42
  sync
  for tool in "${tools[@]}"; do
    repo="$work/repo-$tool" dst="$work/restore-$tool" cfg="$work/kopr.config"
    rm -rf "$repo" "$dst"
    [ "$tool" != kopr ] || rm -f "$cfg" "$cfg.kopia-password"
    case $tool in
      kopr)
        "$kopr" --config-file "$cfg" repository create filesystem --path "$repo" >/dev/null
        timed kopr first "$run" -- "$kopr" --config-file "$cfg" snapshot create "$src" --compression "${KOPR_COMPRESSION:-zstd}" ;;
      restic)
        restic init -r "$repo" >/dev/null
        timed restic first "$run" -- restic -r "$repo" backup "$src" ;;
      borg)
        borg init -e repokey "$repo" >/dev/null
        timed borg first "$run" -- borg create "$repo::first" "$src" ;;
      rustic)
        rustic -r "$repo" init >/dev/null 2>&1
        timed rustic first "$run" -- rustic -r "$repo" backup "$src" ;;
    esac
  done
  python3 "$here/make_corpus.py" "$src" "$size" 42 --change
  sync
  for tool in "${tools[@]}"; do
    repo="$work/repo-$tool" dst="$work/restore-$tool" cfg="$work/kopr.config"
    case $tool in
      kopr)
        timed kopr incremental "$run" -- "$kopr" --config-file "$cfg" snapshot create "$src" --compression "${KOPR_COMPRESSION:-zstd}"
        id=$("$kopr" --config-file "$cfg" snapshot ls "$src" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
        first=$("$kopr" --config-file "$cfg" snapshot ls "$src" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
        timed kopr restore "$run" -- "$kopr" --config-file "$cfg" snapshot restore "$id" "$dst"
        timed kopr check "$run" -- "$kopr" --config-file "$cfg" snapshot verify
        timed kopr prune "$run" -- sh -c "'$kopr' --config-file '$cfg' snapshot delete '$first' --delete && '$kopr' --config-file '$cfg' maintenance run --full --safety=none" ;;
      restic)
        timed restic incremental "$run" -- restic -r "$repo" backup "$src"
        timed restic restore "$run" -- restic -r "$repo" restore latest --target "$dst"
        timed restic check "$run" -- restic -r "$repo" check --read-data
        timed restic prune "$run" -- restic -r "$repo" forget --keep-last 1 --prune ;;
      borg)
        timed borg incremental "$run" -- borg create "$repo::second" "$src"
        mkdir -p "$dst"
        timed borg restore "$run" -- sh -c "cd '$dst' && borg extract '$repo::second'"
        timed borg check "$run" -- borg check --verify-data "$repo"
        timed borg prune "$run" -- sh -c "borg prune --keep-last 1 '$repo' && borg compact '$repo'" ;;
      rustic)
        timed rustic incremental "$run" -- rustic -r "$repo" backup "$src"
        timed rustic restore "$run" -- rustic -r "$repo" restore latest "$dst"
        timed rustic check "$run" -- rustic -r "$repo" check --read-data
        timed rustic prune "$run" -- rustic -r "$repo" forget --keep-last 1 --prune ;;
    esac
    echo -e "$tool\tsize\t$run\t$(du -sb "$repo" | cut -f1)\t0" >> "$results"
  done
done

python3 - "$results" "$size" "$runs" <<'PY'
import statistics, sys, collections
rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
d = collections.defaultdict(list)
for tool, step, run, secs, rss in rows:
    d[(tool, step)].append((float(secs), int(rss)))
tools = []
for r in rows:
    if r[0] not in tools:
        tools.append(r[0])
steps = ["first", "incremental", "restore", "check", "prune"]
print(f"corpus {sys.argv[2]} MiB, median of {sys.argv[3]} runs (wall seconds / peak RSS MiB)\n")
print("| step | " + " | ".join(tools) + " |")
print("|---|" + "---|" * len(tools))
for s in steps:
    cells = []
    for t in tools:
        v = d.get((t, s))
        if v:
            cells.append(f"{statistics.median(x[0] for x in v):.2f} s / {statistics.median(x[1] for x in v) // 1024} MiB")
        else:
            cells.append("-")
    print(f"| {s} | " + " | ".join(cells) + " |")
sizes = [statistics.median(x[0] for x in d[(t, 'size')]) / 2**20 for t in tools]
print("| repository | " + " | ".join(f"{s:.1f} MiB" for s in sizes) + " |")
if "kopr" in tools:
    k = {s: statistics.median(x[0] for x in d[("kopr", s)]) for s in steps if ("kopr", s) in d}
    print()
    for t in tools:
        if t == "kopr":
            continue
        ratios = ", ".join(f"{s} {statistics.median(x[0] for x in d[(t, s)]) / k[s]:.2f}x" for s in steps if (t, s) in d and k.get(s))
        print(f"{t} time / kopr time: {ratios}")
PY
