#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds (Release, -march=native) and runs the benches; prints Markdown tables (the README's figures).
#   scripts/bench.sh [--reps N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
bash "$ROOT/scripts/install-deps.sh" >&2
cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DLST_BUILD_BENCH=ON >&2
cmake --build "$ROOT/build/release" --target bench_core -j "$(nproc 2>/dev/null || echo 2)" >&2
exec "$ROOT/build/release/bench/bench_core" "$@"
