#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Markdown table of every OUT_ROOT/*/metrics.json written by lst-finetune: task, method, the GLUE metric of
the last epoch (and the best epoch's), epochs, steps, wall time, tokens/s, trainable parameters and peak
memory (tracker total and process RSS).  Usage: scripts/summarize_runs.py OUT_ROOT"""
import json
import pathlib
import sys

rows = []
for path in sorted(pathlib.Path(sys.argv[1]).glob("*/metrics.json")):
    m = json.loads(path.read_text())
    metric = m["primary_metric"]
    extra = ""
    if "spearman" in m["dev"]:
        extra = f" / {100 * m['dev']['spearman']:.1f} (Spearman)"
    elif m["task"] in ("MRPC",):
        extra = f" / {100 * m['dev']['accuracy']:.1f} (acc)"
    rows.append(
        f"| {m['task']} | {m['method']} | {path.parent.name} | {metric} {100 * m['dev'][metric]:.1f}{extra} "
        f"| {100 * m['best_dev'][metric]:.1f} (epoch {m['best_epoch']}) | {m['epochs']:.0f} | {m['steps']} "
        f"| {m['wall_seconds'] / 60:.1f} | {m['tokens_per_s']:.0f} | {m['trainable_parameters']:,} "
        f"| {m['peak_bytes']['total'] / 2**20:.0f} | {m['peak_rss_bytes'] / 2**20:.0f} |")
print("| task | method | run | dev (last epoch) | best epoch | epochs | steps | wall min | tokens/s "
      "| trainable params | tracker peak MiB | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
