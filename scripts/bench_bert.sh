#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Inference throughput on the real checkpoint, lst against PyTorch on the same ids and shapes and the same
# thread count (1, then 2), in one run:
#   scripts/bench_bert.sh [--batch 32] [--seq 128] [--reps 5]
# Needs the checkpoint (scripts/fetch-model.py) and, for the peer, torch + transformers: Debian's python3-torch
# with libopenblas0-pthread (without it Debian's torch falls back to the reference BLAS and is ~20x slower) and
# transformers in $LST_HF_SITE (default /tmp/hfsite; see scripts/hf_reference.py for the pip line).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
LST_MODEL_DIR="${LST_MODEL_DIR:-$(python3 "$ROOT/scripts/fetch-model.py" | tail -n 1)}"
export LST_MODEL_DIR
cmake -S "$ROOT" -B "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DLST_BUILD_BENCH=ON >&2
cmake --build "$ROOT/build/release" --target bench_bert_inference -j "$(nproc 2>/dev/null || echo 2)" >&2
for threads in 1 2; do
  lst=$("$ROOT/build/release/bench/bench_bert_inference" --threads "$threads" "$@")
  echo "$lst"
  peer=$(OPENBLAS_NUM_THREADS="$threads" PYTHONPATH="${LST_HF_SITE:-/tmp/hfsite}" /usr/bin/python3 "$ROOT/scripts/bench_bert.py" --threads "$threads" "$@" 2>/dev/null)
  echo "$peer"
  python3 - "$lst" "$peer" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"lst ({a['threads']} threads) / {b['impl']} ({b['threads']} threads): {a['tokens_per_s'] / b['tokens_per_s']:.2f}x tokens/s, "
      f"peak RSS {a['peak_rss_mib']:.0f} vs {b['peak_rss_mib']:.0f} MiB, checksums {a['checksum']} vs {b['checksum']}")
PY
done
