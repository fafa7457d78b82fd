# Sourced by the bench scripts: the tools present, their passwords, and `timed`.
# Expects `work` (the scratch directory) to be set; sets `kopr`, `tools` and `results`.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kopr="${KOPR:-$here/../target/release/kopr}"
export RESTIC_PASSWORD=pw BORG_PASSPHRASE=pw RUSTIC_PASSWORD=pw KOPR_PASSWORD=pw
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

tools=(kopr)
command -v restic >/dev/null && tools+=(restic)
command -v borg >/dev/null && tools+=(borg)
command -v rustic >/dev/null && tools+=(rustic)

results="$work/results.tsv"
mkdir -p "$work"
: > "$results"

# timed TOOL STEP RUN -- command...: appends "tool step run seconds maxrss_kb"
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
