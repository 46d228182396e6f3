#!/usr/bin/env bash
# Quick start 2: configure a Debug build in build-test/, build everything and run all tests.
#   tools/test.sh [ctest args...]           e.g. tools/test.sh -R ports -V
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools/deps.sh
cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=Debug
cmake --build build-test
ctest --test-dir build-test --output-on-failure -j2 "$@"
