#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One training update at batch 32, sequence 128 on the real checkpoint, in one run: lst full fine-tuning and lst
# LST (r = 8), each against PyTorch doing the same update on the same ids and labels (bench/finetune_step.py:
# Hugging Face BertModel, and the reference LST built from its BertLayer), both on 1 and on 2 threads.
#   [LST_BUILD_DIR=build/cblas] bench/finetune_step.sh [--reps 5] [--batch 32] [--seq 128]
# Each configuration runs in its own process, so its peak RSS is its own. Needs the checkpoint
# (scripts/fetch-model.py) and, for the peer, Debian's python3-torch with libopenblas0-pthread and
# transformers in $LST_HF_SITE (default /tmp/hfsite; see scripts/hf_reference.py). OPENBLAS_NUM_THREADS is
# set to the peer's thread count: OpenBLAS's own thread pool otherwise oversubscribes the cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
LST_MODEL_DIR="${LST_MODEL_DIR:-$(python3 "$ROOT/scripts/fetch-model.py" | tail -n 1)}"
export LST_MODEL_DIR
# LST_BUILD_DIR picks another build of lst (e.g. build/cblas, configured with -DLST_CBLAS=ON); its cached options
# stay as they are.
BUILD="${LST_BUILD_DIR:-$ROOT/build/release}"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLST_BUILD_BENCH=ON >&2
cmake --build "$BUILD" --target bench_finetune_step -j "$(nproc 2>/dev/null || echo 2)" >&2
results=()
for method in full lst; do
  for threads in 1 2; do
    ours=$("$BUILD/bench/bench_finetune_step" --method "$method" --r 8 --threads "$threads" "$@")
    echo "$ours"
    results+=("$ours")
    peer=$(OPENBLAS_NUM_THREADS="$threads" PYTHONPATH="${LST_HF_SITE:-/tmp/hfsite}" /usr/bin/python3 \
      "$ROOT/bench/finetune_step.py" --method "$method" --r 8 --threads "$threads" "$@" 2>/dev/null)
    echo "$peer"
    results+=("$peer")
  done
done
# LST steps fed from the tap cache (epochs after the first): the warm-up update fills it, the timed ones skip
# the backbone (their memory peaks are theirs, after the warm-up's).
for threads in 1 2; do
  ours=$("$BUILD/bench/bench_finetune_step" --method lst --r 8 --threads "$threads" --cache-taps ram "$@")
  echo "$ours"
  results+=("$ours")
done
python3 - "${results[@]}" <<'PY'
import json, sys
everything = [json.loads(r) for r in sys.argv[1:]]
rows = [r for r in everything if not r.get('cache_taps')]
cached = [r for r in everything if r.get('cache_taps')]
over = lambda r: r['peak_rss_mib'] - r['rss_loaded_mib']
lst_full = next(r for r in rows if r['impl'] == 'lst' and r['method'] == 'full' and r['threads'] == 1)
print("| impl | method | threads | step s | tokens/s | peak RSS MiB | RSS after load | training overhead MiB | tracker peak MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['impl']} | {r['method']}{' r=' + str(r['r']) if r['method'] == 'lst' else ''} | {r['threads']} "
          f"| {r['step_seconds']:.2f} | {r['tokens_per_s']:.0f} | {r['peak_rss_mib']:.0f} | {r['rss_loaded_mib']:.0f} "
          f"| {over(r):.0f} | {format(r['tracker_total_mib'], '.0f') if 'tracker_total_mib' in r else '–'} |")
for method in ('full', 'lst'):
    for threads in (1, 2):
        ours = next(r for r in rows if r['impl'] == 'lst' and r['method'] == method and r['threads'] == threads)
        peer = next(r for r in rows if r['impl'] != 'lst' and r['method'] == method and r['threads'] == threads)
        print(f"{method}, {threads} thread(s): lst step {peer['step_seconds'] / ours['step_seconds']:.2f}x faster than "
              f"{peer['impl']}, training overhead {over(ours) / over(peer):.2f}x of the peer's")
    best = lambda impl: min((r for r in rows if (r['impl'] == 'lst') == impl and r['method'] == method),
                            key=lambda r: r['step_seconds'])
    o, p = best(True), best(False)
    print(f"{method}, best of each: lst ({o['threads']} threads) {p['step_seconds'] / o['step_seconds']:.2f}x faster "
          f"than {p['impl']} ({p['threads']} threads)")
for c in cached:
    plain = next(r for r in rows if r['impl'] == 'lst' and r['method'] == 'lst' and r['threads'] == c['threads'])
    print(f"lst LST from the tap cache, {c['threads']} thread(s): step {c['step_seconds']:.3f} s, "
          f"{c['step_seconds'] / plain['step_seconds']:.2f}x the step that runs the backbone; tracker peak "
          f"{c['tracker_total_mib']:.0f} MiB (taps {c['tracker_taps_mib']:.0f}, the cache included), "
          f"peak RSS {c['peak_rss_mib']:.0f} MiB")
lst = next(r for r in rows if r['impl'] == 'lst' and r['method'] == 'lst' and r['threads'] == 1)
print(f"lst LST / lst full: step time {lst['step_seconds'] / lst_full['step_seconds']:.2f}x, "
      f"tracker peak {lst['tracker_total_mib'] / lst_full['tracker_total_mib']:.2f}x, "
      f"peak RSS {lst['peak_rss_mib'] / lst_full['peak_rss_mib']:.2f}x")
PY
