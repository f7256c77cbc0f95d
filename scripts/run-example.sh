#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds (Release, build/release) and runs the tiny-transformer example; arguments go to the example.
#   scripts/run-example.sh [example arguments...]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

bash "$ROOT/scripts/install-deps.sh" >&2
cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DLST_BUILD_EXAMPLES=ON >&2
cmake --build "$ROOT/build/release" --target lst-tiny-transformer -j "$(nproc 2>/dev/null || echo 2)" >&2
exec "$ROOT/build/release/examples/lst-tiny-transformer" "$@"
