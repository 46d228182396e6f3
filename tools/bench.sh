#!/usr/bin/env bash
# Quick start 1: build the benchmarks in Release and run them.
#   tools/bench.sh [benchmark args...]      e.g. tools/bench.sh --benchmark_filter=Ping
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --target ports_bench
exec build/bench/ports_bench "$@"
