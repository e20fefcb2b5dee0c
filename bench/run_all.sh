#!/usr/bin/env bash
# Runs every Grove benchmark and prints their JSON lines (one object per line per figure).
#
#   bench/run_all.sh [--small] [--only name,...] <build-dir> [extra args passed to every benchmark]
#
# --small: CI smoke sizes (each program finishes in a few seconds, also under ASan).
# Without it: the full sizes recorded in docs/benchmarks.md (a few minutes in total).
# Besides the benchmarks' own lines: a first line {"bench":"meta",...} describing the machine
# and the run, and after each program a line {"bench":"run_all",...} with its exit status, wall
# time and "other_load_cores": how many cores other processes kept busy meanwhile (0 = quiet;
# the 2-scheduler figures are only meaningful near 0). Exits non-zero if any benchmark fails, times out or reports
# an error.
set -u

small=""
only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --small) small="--small"; shift ;;
    --only) only=",${2:-},"; shift 2 ;;
    *) break ;;
  esac
done
if [[ $# -lt 1 ]]; then
  echo "usage: $0 [--small] [--only name,name...] <build-dir> [extra benchmark args]" >&2
  exit 2
fi
build_dir="$1"
shift
bin="$build_dir/bench"
if [[ ! -d "$bin" ]]; then
  echo "run_all.sh: no $bin (configure with -DGROVE_BUILD_BENCH=ON and build the 'bench' target)" >&2
  exit 2
fi

json_str() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
rev=$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo "${GROVE_BENCH_REV:-unknown}")
printf '{"bench":"meta","date":"%s","nproc":%s,"cpu":"%s","kernel":"%s","loadavg":"%s","git":"%s","mode":"%s"}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "$(json_str "$cpu")" "$(uname -r)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$rev" "$([[ -n $small ]] && echo small || echo full)"

# name | arguments (besides --small and the extra args)
runs=(
  "ping_pong|"
  "ring|"
  "fan_in|"
  "spawn_exit|"
  "spawn_million|"
  "keyed_registry|"
  "gen_server|"
  "supervisor|"
  "table|"
  "bank|"
  "os_process|"
  "http|"
  "dist|"
  "fiber_baseline|"
)
if [[ -z "$small" ]]; then
  runs+=("spawn_million|--form body --stack 16384")
  runs+=("ring|--stack 16384")
fi

# Busy CPU time of the whole machine, in clock ticks (from /proc/stat).
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
hz=$(getconf CLK_TCK)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

status=0
for entry in "${runs[@]}"; do
  name="${entry%%|*}"
  args="${entry#*|}"
  if [[ -n "$only" && "$only" != *",$name,"* ]]; then
    continue
  fi
  exe="$bin/$name"
  if [[ ! -x "$exe" ]]; then
    printf '{"bench":"%s","error":"not built: %s"}\n' "$name" "$(json_str "$exe")"
    status=1
    continue
  fi
  start=$(date +%s.%N)
  busy0=$(busy_ticks)
  TIMEFORMAT='%U %S'
  # shellcheck disable=SC2086
  { time out=$("$exe" $small $args "$@"); } 2>"$tmp"
  rc=$?
  busy1=$(busy_ticks)
  head -n -1 "$tmp" >&2  # the benchmark's own stderr, if any
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  # Other processes' CPU use during the run, in cores (machine busy time minus ours): a noise
  # indicator; 0 means the benchmark had the machine to itself.
  others=$(awk -v b0="$busy0" -v b1="$busy1" -v hz="$hz" -v w="$secs" -v t="$(tail -1 "$tmp")" \
    'BEGIN{split(t, u, " "); o=((b1-b0)/hz - u[1] - u[2]) / (w > 0 ? w : 1); if (o < 0) o = 0; printf "%.2f", o}')
  printf '%s\n' "$out"
  ok=true
  if [[ $rc -ne 0 ]] || grep -q '"error"' <<<"$out"; then
    ok=false
    status=1
  fi
  printf '{"bench":"run_all","program":"%s","args":"%s","ok":%s,"exit_status":%d,"seconds":%s,"other_load_cores":%s}\n' \
    "$name" "$(json_str "$args")" "$ok" "$rc" "$secs" "$others"
done
exit $status
