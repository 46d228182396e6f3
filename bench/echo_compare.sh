#!/usr/bin/env bash
# bench/echo_compare.sh — msgport's echo server against a plain epoll server and a Boost.Asio
# (io_uring, C++20 coroutines) server, one after another, under the same load.
#
# Builds the four programs (Release), then for each server: starts it pinned to SERVER_CPU, runs
# bench/echo_load pinned to CLIENT_CPU (CONNECTIONS ping-pong connections x SIZE bytes for
# DURATION), stops it with SIGTERM; ROUNDS times, the medians reported. Then, unless IDLE=0, opens IDLE idle connections to each and
# reads its resident memory before and after. Prints markdown tables.
#
#   bench/echo_compare.sh                       # 50 x 64 B, 5 s each, 10000 idle connections
#   DURATION=10s IDLE=0 bench/echo_compare.sh
#
# Environment: BUILD_DIR (default <repo>/build), DURATION (5s), CONNECTIONS (50), SIZE (64),
# SERVER_CPU (0), CLIENT_CPU (1), ROUNDS (3), IDLE (10000), PORT_BASE (17900).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build}
duration=${DURATION:-5s}
connections=${CONNECTIONS:-50}
size=${SIZE:-64}
server_cpu=${SERVER_CPU:-0}
client_cpu=${CLIENT_CPU:-1}
idle=${IDLE:-10000}
rounds=${ROUNDS:-3}
port=${PORT_BASE:-17900}

# ---- dependencies: the project's (tools/deps.sh), and Boost for the Asio peer -------------------
"$root/tools/deps.sh" >&2
boost_pkg=libboost1.81-dev
if [[ "$(dpkg-query -W -f='${Status}' "$boost_pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
  echo "echo_compare: installing $boost_pkg" >&2
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { echo "echo_compare: need root to install $boost_pkg" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "$boost_pkg" >&2
fi

# ---- build ---------------------------------------------------------------------------------------
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
nice cmake --build "$build" --target echo_server epoll_echo asio_echo echo_load >&2

# ---- run -----------------------------------------------------------------------------------------
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if ((idle > 0)) && (($(ulimit -n) < idle + 100)); then
  echo "echo_compare: RLIMIT_NOFILE is $(ulimit -n): too low for IDLE=$idle (run as root?)" >&2
  exit 1
fi

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server NAME CMD...: starts it on SERVER_CPU on a free port ($port), waits for its
# "listening" line; sets server_pid.
start_server() {
  local name=$1
  shift
  while ! port_free "$port"; do port=$((port + 1)); done
  taskset -c "$server_cpu" "$@" --port="$port" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  server_pid=$!
  for _ in $(seq 1 100); do
    grep -q 'listening' "$tmp/$name.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "echo_compare: $name did not start:" >&2
  cat "$tmp/$name.out" "$tmp/$name.err" >&2
  exit 1
}

stop_server() {
  local name=$1
  kill -TERM "$server_pid"
  local status=0
  wait "$server_pid" || status=$?
  server_pid=
  if ((status != 0)); then
    echo "echo_compare: $name exited with status $status" >&2
    cat "$tmp/$name.err" >&2
  fi
  port=$((port + 1))
}

# msgport_ring: the same server with every send through the ring (no inline send syscall) and no
# polling before the core sleeps; for the findings, not the goals.
names=(msgport msgport_ring epoll asio)
declare -A cmd=(
  [msgport]="$build/examples/echo_server --cores=1"
  [msgport_ring]="$build/examples/echo_server --cores=1 --inline_io=false --poll_before_sleep=0"
  [epoll]="$build/bench/epoll_echo"
  [asio]="$build/bench/asio_echo"
)
declare -A label=(
  [msgport]="msgport echo_server"
  [msgport_ring]="msgport, --inline_io=false --poll_before_sleep=0"
  [epoll]="epoll (level-triggered)"
  [asio]="Boost.Asio 1.81, io_uring, coroutines"
)
declare -A rate cpu p50 p99 errors mem

# field NAME OUTPUT: NAME=value from echo_load's RESULT line.
field() { { grep '^RESULT' <<<"$2" || true; } | sed -nE "s/.*[ ]$1=([^ ]+).*/\1/p"; }

# ROUNDS rounds, the servers interleaved in each, so that noise from other work on the machine
# spreads over all of them; each figure is the median over the rounds.
declare -A all_rate all_cpu all_p50 all_p99
for ((round = 1; round <= rounds; round++)); do
  for name in "${names[@]}"; do
    # shellcheck disable=SC2086
    start_server "$name" ${cmd[$name]}
    echo "echo_compare: round $round/$rounds: $name (pid $server_pid, CPU $server_cpu)," \
      "load on CPU $client_cpu" >&2
    out=$(taskset -c "$client_cpu" "$build/bench/echo_load" --port="$port" \
      --connections="$connections" --size="$size" --duration="$duration" \
      --server_pid="$server_pid") || true
    echo "$out" >&2
    all_rate[$name]+=" $(field msgs_per_s "$out")"
    all_cpu[$name]+=" $(field cpu_us_per_msg "$out")"
    all_p50[$name]+=" $(field p50_us "$out")"
    all_p99[$name]+=" $(field p99_us "$out")"
    e=$(field errors "$out")
    errors[$name]=$((${errors[$name]:-0} + ${e:-1})) # no RESULT line: counted as an error
    stop_server "$name"
  done
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for name in "${names[@]}"; do
  rate[$name]=$(median "${all_rate[$name]}")
  cpu[$name]=$(median "${all_cpu[$name]}")
  p50[$name]=$(median "${all_p50[$name]}")
  p99[$name]=$(median "${all_p99[$name]}")
done

if ((idle > 0)); then
  for name in msgport epoll asio; do
    # shellcheck disable=SC2086
    start_server "$name" ${cmd[$name]}
    out=$(taskset -c "$client_cpu" "$build/bench/echo_load" --port="$port" --idle="$idle" \
      --server_pid="$server_pid") || true
    echo "$out" >&2
    mem[$name]=$(field bytes_per_connection "$out")
    stop_server "$name"
  done
fi

# ---- report --------------------------------------------------------------------------------------
echo
echo "$(lscpu | sed -nE 's/^Model name: *//p' | head -1), $(nproc) CPUs, $(uname -r), $(date -u +%F)."
echo "Servers on CPU $server_cpu, load client on CPU $client_cpu; $connections connections x" \
  "$size B ping-pong, $duration each; medians of $rounds rounds."
echo
echo "| server | messages/s | server CPU µs per message | p50 µs | p99 µs | errors (all rounds) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for name in "${names[@]}"; do
  echo "| ${label[$name]} | ${rate[$name]:-?} | ${cpu[$name]:-?} | ${p50[$name]:-?} | ${p99[$name]:-?} | ${errors[$name]:-?} |"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "?" }'; }
echo
echo "msgport CPU per message: $(ratio "${cpu[msgport]:-0}" "${cpu[epoll]:-0}") x epoll (goal <= 0.8)," \
  "$(ratio "${cpu[msgport]:-0}" "${cpu[asio]:-0}") x Asio (goal <= 0.6)."
if ((idle > 0)); then
  echo
  echo "| server | bytes of RSS per idle connection ($idle connections) |"
  echo "| --- | ---: |"
  for name in msgport epoll asio; do echo "| ${label[$name]} | ${mem[$name]:-?} |"; done
fi
