#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One full-fine-tuning update (forward, backward, clipping, AdamW) on the real checkpoint, lst against PyTorch
# on the same ids, labels and shapes, in one run:
#   bench/finetune_step.sh [--batch 32] [--seq 128] [--reps 5]
# Needs the checkpoint (scripts/fetch-model.py) and, for the peer, Debian's python3-torch with
# libopenblas0-pthread and transformers in $LST_HF_SITE (default /tmp/hfsite; see scripts/hf_reference.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
LST_MODEL_DIR="${LST_MODEL_DIR:-$(python3 "$ROOT/scripts/fetch-model.py" | tail -n 1)}"
export LST_MODEL_DIR
cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DLST_BUILD_BENCH=ON >&2
cmake --build "$ROOT/build/release" --target bench_finetune_step -j "$(nproc 2>/dev/null || echo 2)" >&2
lst=$("$ROOT/build/release/bench/bench_finetune_step" "$@")
echo "$lst"
for threads in 1 2; do
  peer=$(PYTHONPATH="${LST_HF_SITE:-/tmp/hfsite}" /usr/bin/python3 "$ROOT/bench/finetune_step.py" --threads "$threads" "$@" 2>/dev/null)
  echo "$peer"
  python3 - "$lst" "$peer" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
over = lambda r: r['peak_rss_mib'] - r['rss_loaded_mib']
print(f"lst (1 thread) / {b['impl']} ({b['threads']} threads): step {b['step_seconds'] / a['step_seconds']:.2f}x faster "
      f"({a['step_seconds']:.2f} vs {b['step_seconds']:.2f} s), peak RSS {a['peak_rss_mib']:.0f} vs {b['peak_rss_mib']:.0f} MiB "
      f"(training on top of the loaded model: {over(a):.0f} vs {over(b):.0f} MiB)")
PY
done
