#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Old build against new on the training-step bench, in alternating runs on one machine: is a change free?
#   bench/ab_step.sh OLD_BUILD_DIR NEW_BUILD_DIR [--rounds 5] [-- flags for both benches...]
# Each round runs bench_finetune_step (batch 32, sequence 128, 5 timed updates) for full fine-tuning and for LST
# (r = 8), old then new, on the machine's threads; LST_NEW_FLAGS adds flags for the new build alone (e.g.
# "--attention-dropout off" for a new build whose default the old one lacks). Prints each run's median step
# and, per method, the median over rounds of old and new and their ratio.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
OLD="$1"; NEW="$2"; shift 2
rounds=5
if [ "${1:-}" = "--rounds" ]; then rounds="$2"; shift 2; fi
[ "${1:-}" = "--" ] && shift
export LST_MODEL_DIR="${LST_MODEL_DIR:-$(python3 "$ROOT/scripts/fetch-model.py" | tail -n 1)}"
read -r -a new_only <<< "${LST_NEW_FLAGS:-}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
for ((i = 1; i <= rounds; i++)); do
  for method in full lst; do
    for build in old new; do
      dir="$OLD"; extra=()
      if [ "$build" = new ]; then dir="$NEW"; extra=("${new_only[@]}"); fi
      line=$("$dir/bench/bench_finetune_step" --method "$method" --r 8 "$@" "${extra[@]}")
      echo "$build $line" | tee -a "$out"
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    build, record = line.split(" ", 1)
    r = json.loads(record)
    runs.setdefault((r["method"], build), []).append(r["step_seconds"])
for method in ("full", "lst"):
    old, new = statistics.median(runs[(method, "old")]), statistics.median(runs[(method, "new")])
    print(f"{method}: old {old:.4f} s, new {new:.4f} s (medians of {len(runs[(method, 'old')])} runs): "
          f"new / old = {new / old:.3f}")
PY
