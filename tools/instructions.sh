#!/usr/bin/env bash
# tools/instructions.sh — instructions per operation, counted by callgrind: a figure that does
# not move with the host's noise, unlike the nanoseconds on a shared VM (bench/README.md).
#
#   tools/instructions.sh BINARY FILTER PER_FUNCTION
#
# Runs the Google Benchmark BINARY on the benchmarks matching FILTER under callgrind. It divides
# the instructions of every function by the number of calls made to PER_FUNCTION (a function
# called once per operation), and prints the functions above 1 instruction per operation. Example, a
# same-context round trip, counted by its one try_get:
#
#   tools/instructions.sh build/bench/ports_bench 'BM_AsyncMsg$' 'BasicQueuePort<msgport::NullLock>::try_get'
#
# Single-threaded benchmarks only: under valgrind, threads run one at a time (io_bench's cores
# poll instead of sleeping when MSGPORT_BENCH_NO_SLEEP is set, as it is here).
set -euo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: $0 BINARY FILTER PER_FUNCTION" >&2
  exit 2
fi
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
  echo "$0: needs valgrind (apt-get install valgrind)" >&2
  exit 1
fi
binary=$1 filter=$2 per=$3
out=$(mktemp /tmp/callgrind.XXXXXX)
trap 'rm -f "$out"' EXIT
MSGPORT_BENCH_NO_SLEEP=1 valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" --benchmark_filter="$filter" \
  --benchmark_min_time=${MIN_TIME:-0.02} --benchmark_repetitions=1 >/dev/null 2>&1
calls=$(callgrind_annotate --tree=caller "$out" 2>/dev/null |
  grep -B1 -F "*  ???:msgport::$per" | grep -o '([0-9,]*x)' | tr -d '(),x' | paste -sd+ - | bc)
if [[ -z "$calls" || "$calls" == 0 ]]; then
  echo "$0: no calls to msgport::$per found" >&2
  exit 1
fi
echo "instructions per call of $per ($calls calls):"
callgrind_annotate "$out" 2>/dev/null | grep -F '???:' | awk -v c="$calls" '
  { n = $1; gsub(",", "", n); per = n / c; if (per < 1) next; s += per
    name = substr($0, index($0, "???:") + 4); sub(/ \[.*$/, "", name)
    printf "  %7.1f  %s\n", per, substr(name, 1, 100) }
  END { printf "  %7.1f  total\n", s }'
