#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Markdown table of every OUT_ROOT/*/metrics.json written by lst-finetune: task, method, the GLUE metric of
the last epoch (and the best epoch's), epochs, steps, training minutes (summed over every session of a resumed
run, evaluation excluded), the first epoch's training seconds and the median of the later epochs' (from
log.jsonl: with a tap cache the first epoch fills it and the later ones skip the backbone), tokens/s, trainable
parameters and peak memory (tracker total and process RSS, of the last session). Runs with a weight average
(--ema-decay) show the raw weights' best epoch beside the average's.  Usage: scripts/summarize_runs.py OUT_ROOT"""
import json
import pathlib
import statistics
import sys


def epoch_seconds(run_dir):
    """(first epoch's training seconds, median of the later epochs'), or None where the log lacks them."""
    seconds = {}
    log = run_dir / "log.jsonl"
    if log.exists():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            if r.get("event") == "eval" and "epoch_train_seconds" in r:
                seconds[int(r["epoch"])] = r["epoch_train_seconds"]
    first = seconds.get(1)
    later = [v for k, v in seconds.items() if k > 1]
    return first, statistics.median(later) if later else None


def row(path):
    """One table row for OUT_ROOT/<run>/metrics.json."""
    m = json.loads(path.read_text())
    metric = m["primary_metric"]
    first, later = epoch_seconds(path.parent)
    fmt = lambda v: "–" if v is None else f"{v:.0f}"
    extra = ""
    if "spearman" in m["dev"]:
        extra = f" / {100 * m['dev']['spearman']:.1f} (Spearman)"
    elif m["task"] in ("MRPC",):
        extra = f" / {100 * m['dev']['accuracy']:.1f} (acc)"
    raw = ""  # with a weight average (--ema-decay) the dev figures are the average's; the raw weights' beside
    if "best_raw_dev" in m:
        raw = f"; raw weights {100 * m['best_raw_dev'][metric]:.1f} (epoch {m['best_raw_epoch']})"
    return (
        f"| {m['task']} | {m['method']} | {path.parent.name} | {metric} {100 * m['dev'][metric]:.1f}{extra} "
        f"| {100 * m['best_dev'][metric]:.1f} (epoch {m['best_epoch']}{raw}) | {m['epochs']:.0f} | {m['steps']} "
        f"| {m['train_seconds'] / 60:.1f} | {fmt(first)} | {fmt(later)} | {m['tokens_per_s']:.0f} | {m['trainable_parameters']:,} "
        f"| {m['peak_bytes']['total'] / 2**20:.0f} | {m['peak_rss_bytes'] / 2**20:.0f} |")


def main():
    rows = [row(path) for path in sorted(pathlib.Path(sys.argv[1]).glob("*/metrics.json"))]
    print("| task | method | run | dev (last epoch) | best epoch | epochs | steps | train min | epoch 1 s | later epochs s | tokens/s "
          "| trainable params | tracker peak MiB | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
