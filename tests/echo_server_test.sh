#!/usr/bin/env bash
# tests/echo_server_test.sh — starts examples/echo_server on an ephemeral port, checks that a few
# clients at once get their bytes echoed, sends SIGTERM and checks that it exits 0.
#
#   tests/echo_server_test.sh <path to echo_server> [echo_server flags...]
#
# Plain bash (/dev/tcp), no other tools; every wait is bounded.
set -euo pipefail

server=${1:?usage: echo_server_test.sh <echo_server> [flags...]}
shift

dir=$(mktemp -d)
pid=
# Running, and not a zombie (kill -0 succeeds on a zombie).
alive() { [[ -r /proc/$pid/stat ]] && [[ "$(cut -d' ' -f3 "/proc/$pid/stat")" != Z ]]; }
cleanup() {
  if [[ -n "$pid" ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "echo_server_test: FAIL: $*" >&2
  echo "--- server stdout:" >&2
  cat "$dir/out" >&2 || true
  echo "--- server stderr:" >&2
  cat "$dir/err" >&2 || true
  exit 1
}

"$server" --port=0 "$@" >"$dir/out" 2>"$dir/err" &
pid=$!

# "echo_server: listening on 127.0.0.1:PORT, N cores (...)"
port=
for _ in $(seq 1 100); do
  if line=$(grep -m1 'listening on' "$dir/out" 2>/dev/null); then
    port=$(sed -E 's/.*listening on [^ ]*:([0-9]+),.*/\1/' <<<"$line")
    break
  fi
  alive || fail "the server exited before it listened"
  sleep 0.1
done
[[ -n "$port" ]] || fail "no 'listening on' line within 10 s"
echo "echo_server_test: server $pid listening on port $port"

# Several clients connected at once, each with a few round trips, interleaved.
clients=8
rounds=20
declare -a fds
for ((i = 0; i < clients; i++)); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$port" || fail "client $i could not connect"
  fds[i]=$fd
done
for ((r = 0; r < rounds; r++)); do
  for ((i = 0; i < clients; i++)); do
    msg="client-$i-round-$r-$(printf '%*s' $((r * 7)) '' | tr ' ' x)"
    printf '%s\n' "$msg" >&"${fds[i]}"
    reply=
    IFS= read -r -t 5 reply <&"${fds[i]}" || fail "client $i round $r: no echo within 5 s"
    [[ "$reply" == "$msg" ]] || fail "client $i round $r: sent '$msg', got '$reply'"
  done
done
# A bigger message (48 KiB) on one connection, read back in full.
big=$(head -c 49152 /dev/zero | tr '\0' 'z' | head -c 49152)
printf '%s\n' "$big" >&"${fds[0]}"
IFS= read -r -t 5 reply <&"${fds[0]}" || fail "no echo of 48 KiB within 5 s"
[[ "$reply" == "$big" ]] || fail "48 KiB echo differs (got ${#reply} bytes)"
# Close half of them; the others still work.
for ((i = 0; i < clients; i += 2)); do
  fd=${fds[i]}
  exec {fd}>&-
done
for ((i = 1; i < clients; i += 2)); do
  printf 'still here %d\n' "$i" >&"${fds[i]}"
  IFS= read -r -t 5 reply <&"${fds[i]}" || fail "client $i: no echo after others closed"
  [[ "$reply" == "still here $i" ]] || fail "client $i: got '$reply'"
done
echo "echo_server_test: $clients clients x $rounds round trips echoed"

# Stop with connections still open: SIGTERM, exit 0 within 10 s.
kill -TERM "$pid"
for _ in $(seq 1 100); do
  alive || break
  sleep 0.1
done
alive && fail "still running 10 s after SIGTERM"
status=0
wait "$pid" || status=$?
pid=
[[ "$status" == 0 ]] || fail "exit status $status after SIGTERM"
grep -q 'SIGTERM, stopping' "$dir/out" || fail "no 'stopping' line"
for ((i = 1; i < clients; i += 2)); do
  fd=${fds[i]}
  exec {fd}>&-
done
echo "echo_server_test: PASS"
