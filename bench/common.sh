# Sourced by the bench scripts: the tools present, their passwords, and `timed`.
# Expects `work` (the scratch directory) to be set; sets `kopr`, `tools` and `results`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kopr="${KOPR:-$here/../target/release/kopr}"
export RESTIC_PASSWORD=pw BORG_PASSPHRASE=pw RUSTIC_PASSWORD=pw KOPR_PASSWORD=pw
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

tools=(kopr)
for t in restic borg rustic; do
  if command -v "$t" >/dev/null; then
    tools+=("$t")
  else
    echo "$t is not on PATH: left out of the comparison" >&2
  fi
done

results="$work/results.tsv"
mkdir -p "$work"
# Every tool's cache (and kopr's logs) in the scratch directory: a run leaves the user's caches
# alone.
export RESTIC_CACHE_DIR="$work/cache-restic" BORG_CACHE_DIR="$work/cache-borg" RUSTIC_CACHE_DIR="$work/cache-rustic"
export KOPR_LOG_DIR="$work/kopr-logs"
: > "$results"
: > "$work/cpu.tsv"

# timed TOOL STEP RUN -- command...: appends "tool step run seconds maxrss_kb" to the results,
# and "tool step run cpu_seconds" (user + system) to $work/cpu.tsv
timed() {
  local tool=$1 step=$2 run=$3
  shift 4
  # Nothing left to write back from the previous step: on 2 cores the kernel's writeback of
  # one tool's repository would otherwise run during the next one's timed command.
  sync
  if ! /usr/bin/time -f "%e %M %U %S" "$@" >/dev/null 2>"$work/err.log"; then
    echo "$tool $step failed:" >&2; cat "$work/err.log" >&2; exit 1
  fi
  local last
  last=$(tail -1 "$work/err.log")
  if ! echo "$last" | grep -Eq '^[0-9.]+ [0-9]+ [0-9.]+ [0-9.]+$'; then
    echo "$tool $step failed:" >&2; cat "$work/err.log" >&2; exit 1
  fi
  read -r secs rss user sys <<<"$last"
  echo -e "$tool\t$step\t$run\t$secs\t$rss" >> "$results"
  echo -e "$tool\t$step\t$run\t$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" >> "$work/cpu.tsv"
}

# init_repo TOOL REPO CFG: a new, empty repository of TOOL (kopr's connection in CFG)
init_repo() {
  case $1 in
    kopr) rm -rf "$3" "$3".*; "$kopr" --config-file "$3" repository create filesystem --path "$2" --cache-directory "$3.cache" >/dev/null ;;
    restic) restic init -r "$2" >/dev/null ;;
    borg) borg init -e repokey "$2" >/dev/null ;;
    rustic) rustic -r "$2" init >/dev/null 2>&1 ;;
  esac
}

# backup TOOL STEP RUN REPO CFG SRC ARCHIVE [KOPR_FLAGS...]: a timed snapshot of SRC (ARCHIVE
# names borg's archive; the flags go to kopr's `snapshot create`)
backup() {
  local tool=$1 step=$2 run=$3 repo=$4 cfg=$5 src=$6 archive=$7
  shift 7
  case $tool in
    kopr) timed kopr "$step" "$run" -- "$kopr" --config-file "$cfg" snapshot create "$src" "$@" ;;
    restic) timed restic "$step" "$run" -- restic -r "$repo" backup "$src" ;;
    borg) timed borg "$step" "$run" -- borg create "$repo::$archive" "$src" ;;
    rustic) timed rustic "$step" "$run" -- rustic -r "$repo" backup "$src" ;;
  esac
}

# restore_latest TOOL STEP RUN REPO CFG SRC DST ARCHIVE: a timed restore of the latest snapshot
# of SRC (borg: of ARCHIVE) into DST
restore_latest() {
  local tool=$1 step=$2 run=$3 repo=$4 cfg=$5 src=$6 dst=$7 archive=$8 id
  case $tool in
    kopr)
      id=$("$kopr" --config-file "$cfg" snapshot ls "$src" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
      timed kopr "$step" "$run" -- "$kopr" --config-file "$cfg" snapshot restore "$id" "$dst" ;;
    restic) timed restic "$step" "$run" -- restic -r "$repo" restore latest --target "$dst" ;;
    borg) mkdir -p "$dst"; timed borg "$step" "$run" -- sh -c "cd '$dst' && borg extract '$repo::$archive'" ;;
    rustic) timed rustic "$step" "$run" -- rustic -r "$repo" restore latest "$dst" ;;
  esac
}

# start_s3 SERVER DATA [ENV=VALUE...]: an s3s-fs binary serving the buckets under DATA (one
# directory per bucket) on a free loopback port, with the given environment; sets s3pid and
# s3port, and stops the server when the script exits.
start_s3() {
  local server=$1 data=$2
  shift 2
  s3port=$((20000 + RANDOM % 20000))
  env "$@" "$server" --host 127.0.0.1 --port "$s3port" --access-key benchkey --secret-key benchsecret "$data" >/dev/null 2>&1 &
  s3pid=$!
  trap 'kill $s3pid 2>/dev/null || true' EXIT
  export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$s3port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the S3 server $server did not start on port $s3port" >&2
  exit 1
}

stop_s3() {
  kill "$s3pid" 2>/dev/null || true
  wait "$s3pid" 2>/dev/null || true
}

# journal_warning DIR: a warning when DIR lies on an ext4 filesystem without a journal. There
# the kernel's inode allocator checks every free inode it passes for a recent deletion
# (`recently_deleted` in fs/ext4/ialloc.c, only without a journal), and a restore of tens of
# thousands of files soon after as many were deleted spends seconds of system time in it: the
# restore times of such a tree then swing by a factor of five from run to run.
journal_warning() {
  local dev fstype
  read -r dev fstype < <(df --output=source,fstype "$1" | tail -n 1)
  # /proc/fs/jbd2 names journals by the kernel's device name (dm-0, not /dev/mapper/vg-root).
  dev=$(readlink -f "$dev" 2>/dev/null || echo "$dev")
  if [ "$fstype" = ext4 ] && ! ls /proc/fs/jbd2/ 2>/dev/null | grep -q "^$(basename "$dev")-"; then
    echo "warning: $1 is on $dev, an ext4 filesystem without a journal: restores of many files there swing with the kernel's inode allocation (set RESTORE_DIR to a directory on a journaled filesystem)" >&2
  fi
}
