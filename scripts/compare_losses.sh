#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fixed-seed training runs of two builds of lst-finetune, side by side: every logged training loss (means over
# 20 updates), gradient norm and dev metric, and the final checkpoint (weights and optimizer state, byte for
# byte) must be equal (a refactor that changes no result).
#   scripts/compare_losses.sh OLD_BUILD_DIR NEW_BUILD_DIR [extra lst-finetune flags...]
# LST_NEW_FLAGS: flags for the new build alone (e.g. "--attention-dropout off", which the old build lacks).
# Runs full fine-tuning (40 updates) and LST (r = 2, the recommended configuration, two epochs of 512 MRPC
# examples with the RAM tap cache: the second epoch reads the cache) with each build, on 2 threads.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
OLD="$1"; NEW="$2"; shift 2
LST_MODEL_DIR="${LST_MODEL_DIR:-$(python3 "$ROOT/scripts/fetch-model.py" | tail -n 1)}"
DATA="${LST_GLUE_DIR:-$ROOT/../shared/data/glue}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
common=(--model "$LST_MODEL_DIR" --data "$DATA" --task mrpc --seed 7 --threads 2 --batch-size 16)
full=(--method full --lr 5e-5 --max-steps 40)
lst=(--method lst --r 2 --lr 2e-4 --epochs 2 --max-train-examples 512 --gate before --per-channel-gates
     --output-gate cls --side-pooling mean --side-dropout 0.3 --cache-taps ram)
status=0
for name in full lst; do
  declare -n flags="$name"
  for build in old new; do
    dir="$OLD"; only=()
    if [ "$build" = new ]; then dir="$NEW"; read -r -a only <<< "${LST_NEW_FLAGS:-}"; fi
    if ! "$dir/examples/lst-finetune" "${common[@]}" "${flags[@]}" "$@" "${only[@]}" --out "$WORK/$name-$build" \
        > "$WORK/$name-$build.log" 2>&1; then
      echo "$name: the $build build failed:"; tail -5 "$WORK/$name-$build.log"; exit 1
    fi
    # The losses and dev metrics, without timings.
    python3 - "$WORK/$name-$build" > "$WORK/$name-$build.txt" <<'PY'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
for line in (d / "log.jsonl").read_text().splitlines():
    e = json.loads(line)
    print({k: v for k, v in e.items() if "time" not in k and "per_s" not in k and "seconds" not in k and k != "rss_mib"})
# The trained weights and the optimizer state, byte for byte: the checkpoint's tensor data (its JSON header
# holds the training time).
import hashlib, struct
blob = (d / "last.safetensors").read_bytes()
header = struct.unpack("<Q", blob[:8])[0]
print("last.safetensors tensors sha256", hashlib.sha256(blob[8 + header:]).hexdigest())
PY
  done
  if cmp -s "$WORK/$name-old.txt" "$WORK/$name-new.txt"; then
    echo "$name: identical ($(wc -l < "$WORK/$name-new.txt") log lines)"
  else
    echo "$name: DIFFERENT"; diff "$WORK/$name-old.txt" "$WORK/$name-new.txt" | head -20; status=1
  fi
done
exit $status
