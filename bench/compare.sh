#!/usr/bin/env bash
# Side by side on the same seeded corpus and machine: first backup, incremental backup,
# restore, check, forget+prune, for kopr, restic, BorgBackup and rustic (those installed).
# Prints the median wall time and peak RSS of each step over RUNS runs, and repository sizes.
#
#   bench/compare.sh [SIZE_MB=1024] [RUNS=3]
#
# Then, on a tree of SMALL_FILES (default 100000) small files: a first snapshot, and a new
# version of the tree (a third of the files changed slightly, as a new release of a tree of
# sources or documentation), beside the floor of reading the tree (lstat+open+read of every
# file on every core: `cargo run --release -p kopr-repo --example read_tree`); and kopr's split
# of that time between bytes and files: the same bytes as one file, and as many empty files
# beside their own floor. And, where an
# S3 server can be run (s3s-fs: S3S_FS, target/tools/bin/s3s-fs or on PATH), a restore from
# S3 on loopback with a cold and a warm local cache, against the same restore from the
# filesystem repository (kopr and restic; borg has no S3), beside the floor of fetching every
# pack of the bucket (`cargo run --release -p kopr-blob --example s3_fetch`) and the CPU seconds
# the server and the client spent. The same again against an s3s-fs that reads 1 MiB at a time
# and sends with TCP_NODELAY, as real S3 servers do, when bench/s3s_fast.sh has built it
# (S3S_FAST, default target/tools/s3s-fast/target/release/s3s-fs).
#
# Every timed command starts after a `sync`, so that no step's writeback runs during the next.
#
# Tools: KOPR (default target/release/kopr), restic, borg, rustic on PATH. All use their
# default chunking; compression is comparable: restic 'auto' (zstd), rustic default (zstd),
# borg lz4 (its default), kopr --compression=zstd (zstd level 3, as restic's auto). kopr uses
# its default splitter (DYNAMIC-1M-BUZHASH, 1 MiB average chunks like restic's) and hash.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
size="${1:-1024}"
runs="${2:-3}"
work="${BENCH_DIR:-/tmp/kopr-bench}"
# shellcheck source=bench/common.sh
source "$here/common.sh"

for run in $(seq 1 "$runs"); do
  src="$work/src"
  rm -rf "$src" && mkdir -p "$src"
  python3 "$here/make_corpus.py" "$src" "$size" 42
  sync
  for tool in "${tools[@]}"; do
    repo="$work/repo-$tool" dst="$work/restore-$tool" cfg="$work/kopr.config"
    rm -rf "$repo" "$dst"
    init_repo "$tool" "$repo" "$cfg"
    backup "$tool" first "$run" "$repo" "$cfg" "$src" first --compression "${KOPR_COMPRESSION:-zstd}"
  done
  python3 "$here/make_corpus.py" "$src" "$size" 42 --change
  sync
  for tool in "${tools[@]}"; do
    repo="$work/repo-$tool" dst="$work/restore-$tool" cfg="$work/kopr.config"
    backup "$tool" incremental "$run" "$repo" "$cfg" "$src" second --compression "${KOPR_COMPRESSION:-zstd}"
    restore_latest "$tool" restore "$run" "$repo" "$cfg" "$src" "$dst" second
    case $tool in
      kopr)
        first=$("$kopr" --config-file "$cfg" snapshot ls "$src" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
        timed kopr check "$run" -- "$kopr" --config-file "$cfg" snapshot verify
        timed kopr prune "$run" -- sh -c "'$kopr' --config-file '$cfg' snapshot delete '$first' --delete && '$kopr' --config-file '$cfg' maintenance run --full --safety=none" ;;
      restic)
        timed restic check "$run" -- restic -r "$repo" check --read-data
        timed restic prune "$run" -- restic -r "$repo" forget --keep-last 1 --prune ;;
      borg)
        timed borg check "$run" -- borg check --verify-data "$repo"
        timed borg prune "$run" -- sh -c "borg prune --keep-last 1 '$repo' && borg compact '$repo'" ;;
      rustic)
        timed rustic check "$run" -- rustic -r "$repo" check --read-data
        timed rustic prune "$run" -- rustic -r "$repo" forget --keep-last 1 --prune ;;
    esac
    echo -e "$tool\tsize\t$run\t$(du -sb "$repo" | cut -f1)\t0" >> "$results"
  done
done


# --- the limit of a first backup on this machine ------------------------------------------
# Per byte, a first backup hashes, splits, compresses and encrypts (each measured alone on one
# core by `kopr benchmark`), on every core at once, and writes the packs (the disk's speed: dd
# with fdatasync, through the page cache and with O_DIRECT as kopr writes packs on ext4, XFS and
# Btrfs, the faster of the two). The lower of the two is the most a first backup could reach here.
limit_file="$work/limit.txt"
{
  mbps() { # "3.9 GB / second", "1.1 GB/s", "206.5 MB/s" -> MB/s
    python3 -c 'import re,sys
m=re.search(r"([0-9.]+) ([KMG])B ?(/ second|/s)", sys.stdin.read())
print(float(m.group(1)) * {"K": 1e-3, "M": 1, "G": 1e3}[m.group(2)] if m else 0)'
  }
  # (whole outputs first: a reader that stops early would kill the writer with SIGPIPE)
  out=$("$kopr" benchmark hashing 2>/dev/null)
  hash=$(grep ' BLAKE3-256-128 ' <<<"$out" | head -n 1 | mbps)
  out=$("$kopr" benchmark encryption 2>/dev/null)
  enc=$(grep ' AES256-GCM-HMAC-SHA256 ' <<<"$out" | head -n 1 | mbps)
  out=$("$kopr" benchmark splitter 2>/dev/null)
  split=$(grep 'DYNAMIC-1M-BUZHASH' <<<"$out" | head -n 1 | mbps)
  sample=$(find "$work/src" -type f -size +4M -print -quit)
  out=$("$kopr" benchmark compression --data-file "$sample" --operations compress --repeat 2 2>/dev/null)
  comp=$(grep -E '^ *[0-9]+\. zstd ' <<<"$out" | head -n 1 | mbps)
  disk=0
  for flags in "" "oflag=direct"; do
    rm -f "$work/dd.tmp"
    d=$(dd if=/dev/zero of="$work/dd.tmp" bs=1M count=512 conv=fdatasync $flags 2>&1 | grep -Eo '[0-9.]+ [MG]B/s' | tail -1 | mbps)
    disk=$(python3 -c "print(max($disk, ${d:-0}))")
  done
  rm -f "$work/dd.tmp"
  echo "$hash $split $comp $enc $disk $(nproc)"
} > "$limit_file"

# --- many small files: first snapshot and a new version, beside the floor ------------------
small="${SMALL_FILES:-100000}"
floor_bin="$here/../target/release/examples/read_tree"
[ -x "$floor_bin" ] || (cd "$here/.." && cargo build --quiet --release -p kopr-repo --example read_tree)
make_small() { # DIR N VERSION: N files of 0..4 KiB in directories of 1000; VERSION changes a third
  python3 - "$1" "$2" "$3" <<'PYS'
import os, random, sys
root, n, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:04d}")
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    body = rng.randbytes(rng.randrange(0, 4096))
    if version and i % 3 == 0:
        body = body[:len(body) // 2] + b"version %d" % version + body[len(body) // 2:]
    with open(os.path.join(d, f"f{i:06d}.txt"), "wb") as f:
        f.write(body)
PYS
}
for run in $(seq 1 "$runs"); do
  ssrc="$work/small"
  rm -rf "$ssrc" && mkdir -p "$ssrc" && make_small "$ssrc" "$small" 0 && sync
  timed floor small-first "$run" -- "$floor_bin" "$ssrc"
  for tool in "${tools[@]}"; do
    repo="$work/srepo-$tool" cfg="$work/kopr-small.config"
    rm -rf "$repo"
    init_repo "$tool" "$repo" "$cfg"
    backup "$tool" small-first "$run" "$repo" "$cfg" "$ssrc" first
  done
  # The split of kopr's time between files and bytes: the same bytes as one file (per-byte
  # work alone: hashing, encryption, pack writes), and as many empty files (per-file work
  # alone), each beside its floor.
  sone="$work/small-onefile" sempty="$work/small-empty"
  rm -rf "$sone" "$sempty" && mkdir -p "$sone" "$sempty"
  python3 - "$ssrc" "$sone/all" "$sempty" <<'PYS'
import os, sys
src, one, empty = sys.argv[1:4]
with open(one, "wb") as out:
    for d, dirs, files in os.walk(src):
        dirs.sort()
        rel = os.path.relpath(d, src)
        os.makedirs(os.path.join(empty, rel), exist_ok=True)
        for f in sorted(files):
            with open(os.path.join(d, f), "rb") as fh:
                out.write(fh.read())
            open(os.path.join(empty, rel, f), "wb").close()
PYS
  sync
  timed floor small-empty "$run" -- "$floor_bin" "$sempty"
  timed floor small-onefile "$run" -- "$floor_bin" "$sone"
  for step in onefile empty; do
    dir="$sone"; [ "$step" = empty ] && dir="$sempty"
    rm -rf "$work/srepo-split"
    init_repo kopr "$work/srepo-split" "$work/kopr-split.config"
    backup kopr "small-$step" "$run" "$work/srepo-split" "$work/kopr-split.config" "$dir" split
  done
  rm -rf "$sone" "$sempty" "$work/srepo-split"
  make_small "$ssrc" "$small" 1 && sync
  for tool in "${tools[@]}"; do
    repo="$work/srepo-$tool" cfg="$work/kopr-small.config"
    backup "$tool" small-newversion "$run" "$repo" "$cfg" "$ssrc" second
  done
done

# --- restore from S3 on loopback, cold and warm cache, against the filesystem restore -------
# The CPU seconds the S3 server spent on each step (utime+stime of the server; the command's
# own are in cpu.tsv, as every step's), so the report can tell how much of a restore the two
# cores allowed: s3s-fs reads files 4 KiB at a time through tokio's blocking pool and takes
# about as much CPU as the client.
tick=$(getconf CLK_TCK)
: > "$work/s3cpu.tsv"
s3_timed() {
  local s0
  # Written back before the count starts (timed's own `sync` then has nothing to do).
  sync
  s0=$(awk '{print $14 + $15}' "/proc/$s3pid/stat")
  timed "$@"
  echo -e "$1\t$2\t$3\t$(awk -v a="$s0" -v t="$tick" '{print ($14 + $15 - a) / t}' "/proc/$s3pid/stat")" >> "$work/s3cpu.tsv"
}
fetch_bin="$here/../target/release/examples/s3_fetch"

# s3_restores LABEL SERVER [ENV=VALUE...]: a bucket on SERVER (an s3s-fs binary, run with the
# given environment), kopr's (and restic's) snapshot of the corpus in it, then per run: the
# fetch floor, kopr's cold and warm restores and restic's, as steps LABEL-restore-cold/-warm.
s3_restores() {
  local label=$1 server=$2 port cfg src sid dst run kcache="$work/cache-s3-kopr" rcache="$work/cache-s3-restic"
  shift 2
  rm -rf "$work/s3data" && mkdir -p "$work/s3data/kopr" "$work/s3data/restic"
  start_s3 "$server" "$work/s3data" "$@"
  port=$s3port
  cfg="$work/kopr-s3.config" src="$work/src"
  rm -f "$cfg" "$cfg.kopia-password" "$cfg.kopr-key"
  # Each tool's local cache in the scratch directory: a cold restore empties it, and leaves
  # the user's own caches alone.
  "$kopr" --config-file "$cfg" repository create s3 --bucket kopr --endpoint "http://127.0.0.1:$port" \
    --access-key benchkey --secret-access-key benchsecret --cache-directory "$kcache" >/dev/null
  "$kopr" --config-file "$cfg" snapshot create "$src" --compression "${KOPR_COMPRESSION:-zstd}" >/dev/null
  sid=$("$kopr" --config-file "$cfg" snapshot ls "$src" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
  if command -v restic >/dev/null; then
    restic -r "s3:http://127.0.0.1:$port/restic" --cache-dir "$rcache" init >/dev/null
    restic -r "s3:http://127.0.0.1:$port/restic" --cache-dir "$rcache" backup "$src" >/dev/null
  fi
  [ -x "$fetch_bin" ] || (cd "$here/.." && cargo build --quiet --release -p kopr-blob --example s3_fetch)
  for run in $(seq 1 "$runs"); do
    # The floor: every pack of kopr's bucket fetched whole on 16 readers (as many as kopr's
    # restore), bytes dropped.
    s3_timed floor "$label-restore-cold" "$run" -- "$fetch_bin" "127.0.0.1:$port" kopr 16
    dst="$work/restore-s3"
    rm -rf "$dst" "$kcache"
    s3_timed kopr "$label-restore-cold" "$run" -- "$kopr" --config-file "$cfg" snapshot restore "$sid" "$dst"
    rm -rf "$dst"
    s3_timed kopr "$label-restore-warm" "$run" -- "$kopr" --config-file "$cfg" snapshot restore "$sid" "$dst"
    rm -rf "$dst"
    if command -v restic >/dev/null; then
      rm -rf "$rcache"
      s3_timed restic "$label-restore-cold" "$run" -- restic -r "s3:http://127.0.0.1:$port/restic" --cache-dir "$rcache" restore latest --target "$dst"
      rm -rf "$dst"
      s3_timed restic "$label-restore-warm" "$run" -- restic -r "s3:http://127.0.0.1:$port/restic" --cache-dir "$rcache" restore latest --target "$dst"
      rm -rf "$dst"
    fi
  done
  stop_s3
}

s3s="${S3S_FS:-$here/../target/tools/bin/s3s-fs}"
[ -x "$s3s" ] || s3s="$(command -v s3s-fs || true)"
if [ -n "$s3s" ]; then
  s3_restores s3 "$s3s"
else
  echo "s3s-fs not found (S3S_FS, target/tools/bin, PATH): no restores from s3s-fs" >&2
fi
# The same against s3s-fs built by bench/s3s_fast.sh: 1 MiB reads and TCP_NODELAY, as real
# servers (MinIO, AWS) send, so the server takes a fraction of the CPU and never stalls.
s3fast="${S3S_FAST:-$here/../target/tools/s3s-fast/target/release/s3s-fs}"
if [ -x "$s3fast" ]; then
  s3_restores s3fast "$s3fast" S3S_NODELAY=1 S3S_READ=1048576
else
  echo "$s3fast not built (bench/s3s_fast.sh): no restores from the faster server" >&2
fi

python3 - "$results" "$size" "$runs" "$work/s3cpu.tsv" "$(nproc)" "$work/cpu.tsv" <<'PY'
import statistics, sys, collections

def ratio(a, b):
    """a / b as '1.23x'; '-' where b rounded to 0 (/usr/bin/time counts hundredths)."""
    return f"{a / b:.2f}x" if b > 0 else "-"

rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
d = collections.defaultdict(list)
for tool, step, run, secs, rss in rows:
    d[(tool, step)].append((float(secs), int(rss)))
# CPU seconds (user + system) of every timed command.
own = collections.defaultdict(list)
for line in open(sys.argv[6]):
    tool, step, _run, secs = line.split()
    own[(tool, step)].append(float(secs))
tools = []
for r in rows:
    if r[0] not in tools and r[0] != "floor":
        tools.append(r[0])
steps = ["first", "incremental", "restore", "check", "prune", "small-first", "small-newversion",
         "s3-restore-cold", "s3-restore-warm", "s3fast-restore-cold", "s3fast-restore-warm"]
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
    k = {s: statistics.median(x[0] for x in v) for (t, s), v in d.items() if t == "kopr"}
    print()
    for t in tools:
        if t == "kopr":
            continue
        ratios = ", ".join(f"{s} {ratio(statistics.median(x[0] for x in d[(t, s)]), k[s])}" for s in steps if (t, s) in d and k.get(s))
        print(f"{t} time / kopr time: {ratios}")
try:
    h, sp, c, e, disk, cores = (float(x) for x in open(sys.argv[1].replace("results.tsv", "limit.txt")).read().split())
    cpu = cores / (1 / h + 1 / sp + 1 / c + 1 / e)
    limit = min(cpu, disk)
    first_mb = float(sys.argv[2]) * 1.048576
    if "first" in k:
        print(f"\nfirst backup: {first_mb / k['first']:.0f} MB/s; the limit here is {limit:.0f} MB/s "
              f"(hash {h:.0f}, split {sp:.0f}, zstd {c:.0f}, AES-GCM {e:.0f} MB/s per core on {cores:.0f} cores: "
              f"{cpu:.0f} MB/s; disk writes {disk:.0f} MB/s) = {first_mb / k['first'] / limit:.0%} of it")
except (OSError, ValueError, ZeroDivisionError):
    pass
f = statistics.median(x[0] for x in d[("floor", "small-first")]) if ("floor", "small-first") in d else 0
if f > 0 and ("kopr", "small-first") in d:  # /usr/bin/time counts hundredths: a tiny tree reads in 0
    print(f"\nsmall files: reading the tree (lstat+open+read, every core) {f:.2f} s; kopr's first snapshot {k['small-first']:.2f} s = {ratio(k['small-first'], f)} that floor")
    if "small-onefile" in k:
        print(f"  kopr's snapshot of the same bytes as one file (the per-byte work alone: hashing, encryption, pack writes) {k['small-onefile']:.2f} s")
    if ("floor", "small-empty") in d and "small-empty" in k:
        fe = statistics.median(x[0] for x in d[("floor", "small-empty")])
        print(f"  as many empty files (the per-file work alone): floor {fe:.2f} s, kopr {k['small-empty']:.2f} s = {ratio(k['small-empty'], fe)}")
    fo = statistics.median(x[0] for x in d[("floor", "small-onefile")]) if ("floor", "small-onefile") in d else f
    if "small-onefile" in k and f > fo:
        # The per-file cost of the tree: its time less that of the same bytes as one file,
        # for kopr and for the floor alike; in wall seconds and in CPU seconds (on a machine
        # with few cores the bytes' work overlaps the files' less than the wall time shows).
        kw, fw = k["small-first"] - k["small-onefile"], f - fo
        print(f"  per-file cost (the tree less the same bytes as one file), wall: kopr {kw:.2f} s, floor {fw:.2f} s = {ratio(kw, fw)}", end="")
        c = {key: statistics.median(v) for key, v in own.items()}
        if all(key in c for key in (("kopr", "small-first"), ("kopr", "small-onefile"), ("floor", "small-first"), ("floor", "small-onefile"))):
            kc = c[("kopr", "small-first")] - c[("kopr", "small-onefile")]
            fc = c[("floor", "small-first")] - c[("floor", "small-onefile")]
            print(f"; CPU: kopr {kc:.2f} s, floor {fc:.2f} s = {ratio(kc, fc)}", end="")
        print()
for label, server in (("s3", "s3s-fs"), ("s3fast", "s3s-fs with 1 MiB reads and TCP_NODELAY")):
    cold, warm = f"{label}-restore-cold", f"{label}-restore-warm"
    if ("kopr", cold) in d and "restore" in k:
        print(f"kopr restore from S3 on loopback ({server}) / from the filesystem: cold cache {ratio(k[cold], k['restore'])}, warm {ratio(k.get(warm, 0), k['restore'])}")
    if ("floor", cold) in d and ("kopr", cold) in d:
        f = statistics.median(x[0] for x in d[("floor", cold)])
        print(f"  fetching every pack of the bucket (16 readers, bytes dropped) {f:.2f} s; kopr's cold restore {k[cold]:.2f} s = {ratio(k[cold], f)} that floor")
try:
    cpu = collections.defaultdict(list)
    for line in open(sys.argv[4]):
        tool, step, _run, server = line.split()
        cpu[(tool, step)].append(float(server))
    cores = int(sys.argv[5])
    for (tool, step), v in cpu.items():
        server = statistics.median(v)
        client = statistics.median(own[(tool, step)])
        wall = statistics.median(x[0] for x in d[(tool, step)])
        bound = (server + client) / cores
        print(f"S3 CPU, {tool} {step}: the server {server:.2f} s, the client {client:.2f} s; "
              f"on {cores} cores that is at least {bound:.2f} s of wall time, and it took {wall:.2f} s = {ratio(wall, bound)}")
except (OSError, ValueError, ZeroDivisionError):
    pass
# The least a cold restore from S3 on loopback can take here: the filesystem restore's CPU, plus
# the client's CPU to receive the bytes (the fetch floor's) and the server's, on every core.
try:
    fs_cpu = statistics.median(own[("kopr", "restore")])
    for label in ("s3", "s3fast"):
        cold = f"{label}-restore-cold"
        if (("floor", cold) not in cpu) or (("kopr", cold) not in cpu) or "restore" not in k:
            continue
        receive = statistics.median(own[("floor", cold)])
        server = statistics.median(cpu[("kopr", cold)])
        least = (fs_cpu + receive + server) / cores
        print(f"{label}: a cold restore cannot take less than (the filesystem restore's {fs_cpu:.2f} CPU-s + receiving "
              f"{receive:.2f} + the server {server:.2f}) / {cores} cores = {least:.2f} s = {ratio(least, k['restore'])} the "
              f"filesystem restore; kopr's took {k[cold]:.2f} s = {ratio(k[cold], least)} that")
except (OSError, ValueError, ZeroDivisionError, KeyError, statistics.StatisticsError, NameError):
    pass
PY
