#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fine-tunes on several GLUE tasks in a row with lst-finetune and prints the results table:
#   scripts/glue_runs.sh OUT_ROOT TASK:EPOCHS [TASK:EPOCHS ...] -- [lst-finetune flags, e.g. --method lst --r 8]
# Each run writes OUT_ROOT/<task>-<method>[-<tag>]/ (metrics.json, log.jsonl, checkpoints) and is resumable: run
# the same command again after Ctrl-C. $LST_RUN_TAG names variants (e.g. r4). The table comes from
# scripts/summarize_runs.py OUT_ROOT.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
out_root="$1"
shift
tasks=()
while [[ $# -gt 0 && "$1" != "--" ]]; do tasks+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
LST_MODEL_DIR="${LST_MODEL_DIR:-$(python3 "$ROOT/scripts/fetch-model.py" | tail -n 1)}"
cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$ROOT/build/release" --target lst-finetune -j "$(nproc 2>/dev/null || echo 2)" >&2
mkdir -p "$out_root"
method=full
for ((i = 1; i <= $#; ++i)); do [[ "${!i}" == "--method" ]] && { j=$((i + 1)); method="${!j}"; }; done
for spec in "${tasks[@]}"; do
  task="${spec%%:*}"
  epochs="${spec##*:}"
  dir="$out_root/$task-$method${LST_RUN_TAG:+-$LST_RUN_TAG}"
  echo "== $task ($method, $epochs epochs) -> $dir" >&2
  "$ROOT/build/release/examples/lst-finetune" --model "$LST_MODEL_DIR" --task "$task" --epochs "$epochs" \
    --out "$dir" --no-progress "$@" > "$dir.stdout" 2> "$dir.stderr" || { tail -n 5 "$dir.stderr" >&2; exit 1; }
  tail -n 1 "$dir.stdout" >&2
done
python3 "$ROOT/scripts/summarize_runs.py" "$out_root"
