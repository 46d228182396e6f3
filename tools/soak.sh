#!/usr/bin/env bash
# tools/soak.sh — the exactly-once stress mix (tests/stress_test.cc) at 10^7 messages, with the
# contract checks on (an optimized build without NDEBUG: a second reply of any message stops the
# process), and the counts printed.
#   tools/soak.sh [messages]        default 10000000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-10000000}
tools/deps.sh >/dev/null
cmake -S . -B build-soak -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g" -DMSGPORT_BUILD_BENCH=OFF >/dev/null
cmake --build build-soak --target stress_test >/dev/null
MSGPORT_TEST_WATCHDOG_SECONDS=7200 MSGPORT_STRESS_MESSAGES=$n build-soak/tests/stress_test --gtest_brief=1 | grep -E 'stress:|FAIL|PASS'
