#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Tap-cache epoch ratio, variants alternating: each round runs every variant once (two MRPC epochs of LST at
# r = 8 with --cache-taps ram) and prints its first epoch, its cached second epoch and their ratio. Variants
# are lst-finetune command prefixes (a binary and any extra flags), so builds or flags can be compared on a
# machine whose speed drifts between runs:
#   scripts/epoch_ratio.sh THREADS ROUNDS "build/release/examples/lst-finetune" \
#     "build/release/examples/lst-finetune --side-shards 1" ["/path/to/other/build/lst-finetune" ...]
# Needs the checkpoint (scripts/fetch-model.py) and ../shared/data/glue (or $LST_GLUE_DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
[[ $# -ge 3 ]] || { echo "usage: $0 THREADS ROUNDS VARIANT [VARIANT ...]" >&2; exit 2; }
threads="$1"
rounds="$2"
shift 2
LST_MODEL_DIR="${LST_MODEL_DIR:-$(python3 "$ROOT/scripts/fetch-model.py" | tail -n 1)}"
glue="${LST_GLUE_DIR:-$ROOT/../shared/data/glue}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for ((round = 1; round <= rounds; ++round)); do
  for variant in "$@"; do
    out="$work/run"
    rm -rf "$out"
    # shellcheck disable=SC2086  # a variant is a binary and its flags, split on purpose
    $variant --model "$LST_MODEL_DIR" --data "$glue" --task mrpc --method lst --r 8 --init random --epochs 2 \
      --cache-taps ram --threads "$threads" --no-progress --out "$out" > "$work/stdout" 2> "$work/stderr" || {
      tail -n 5 "$work/stderr" >&2
      exit 1
    }
    python3 - "$out/log.jsonl" "$variant" "$threads" <<'PY'
import json, sys
epochs = [json.loads(line) for line in open(sys.argv[1]) if '"epoch_train_seconds"' in line]
first, cached = epochs[0]["epoch_train_seconds"], epochs[1]["epoch_train_seconds"]
print(f"{sys.argv[2]} (threads {sys.argv[3]}): first epoch {first:.2f} s, cached epoch {cached:.2f} s, "
      f"ratio {100 * cached / first:.1f} %")
PY
  done
done
