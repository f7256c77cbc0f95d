#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Per-seed comparison of LST runs against full fine-tuning on one task, as a Markdown table: each seed's full
fine-tuning accuracy, the LST run's best epoch (and, for runs with a weight average, the raw weights' best
epoch beside the average's), the gaps, their means, the standard error of the mean gap, and the mean over a
held-out subset of seeds (those that took no part in choosing the configuration).

  scripts/seed_gaps.py --full 42=87.96 7=90.25 ... --held-out 1 2 3 4 5 6 -- RUN_DIR [RUN_DIR ...]
  scripts/seed_gaps.py --full-runs runs/sst2-full-seed* -- runs/sst2-lst-TAG*

--full takes SEED=ACCURACY pairs (percent), --full-runs lst-finetune output directories of full fine-tuning
runs. Each RUN_DIR is an lst-finetune output directory; its seed and metrics come from its metrics.json."""
import argparse
import json
import math
import pathlib
import statistics
import sys


def load(run_dir):
    return json.loads((pathlib.Path(run_dir) / "metrics.json").read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", nargs="*", default=[], help="SEED=ACCURACY (percent) of full fine-tuning")
    ap.add_argument("--full-runs", nargs="*", default=[], help="full fine-tuning output directories")
    ap.add_argument("--held-out", nargs="*", type=int, default=[], help="seeds that did not choose the setup")
    ap.add_argument("runs", nargs="+", help="LST output directories")
    a = ap.parse_args()

    full = {}
    for pair in a.full:
        seed, _, acc = pair.partition("=")
        full[int(seed)] = float(acc)
    for d in a.full_runs:
        m = load(d)
        full[int(m["seed"])] = 100 * m["best_dev"][m["primary_metric"]]
    rows = []
    for d in a.runs:
        m = load(d)
        metric = m["primary_metric"]
        seed = int(m["seed"])
        if seed not in full:
            sys.exit(f"seed_gaps.py: no full fine-tuning result for seed {seed} (run {d})")
        avg = 100 * m["best_dev"][metric]
        raw = 100 * m["best_raw_dev"][metric] if "best_raw_dev" in m else None
        rows.append((seed, full[seed], avg, m["best_epoch"], raw, m.get("best_raw_epoch")))
    if not rows:
        sys.exit("seed_gaps.py: no runs")
    rows.sort(key=lambda r: r[0])

    has_raw = all(r[4] is not None for r in rows)
    head = "| seed | full fine-tuning | LST, best epoch | gap |"
    rule = "|---|---|---|---|"
    if has_raw:
        head = "| seed | full fine-tuning | LST weight average, best epoch | LST raw weights, best epoch | gap (average) | gap (raw) |"
        rule = "|---|---|---|---|---|---|"
    print(head)
    print(rule)
    for seed, f, avg, ep, raw, raw_ep in rows:
        line = f"| {seed} | {f:.2f} | {avg:.2f} (epoch {ep}) |"
        if has_raw:
            line += f" {raw:.2f} (epoch {raw_ep}) | {f - avg:.2f} | {f - raw:.2f} |"
        else:
            line += f" {f - avg:.2f} |"
        print(line)

    def summary(subset, label):
        if not subset:
            return
        n = len(subset)
        gaps = [r[1] - r[2] for r in subset]
        se = statistics.stdev(gaps) / math.sqrt(n) if n > 1 else float("nan")
        line = (f"| {label} ({n} seeds) | {statistics.mean(r[1] for r in subset):.2f} "
                f"| {statistics.mean(r[2] for r in subset):.2f} |")
        if has_raw:
            raw_gaps = [r[1] - r[4] for r in subset]
            raw_se = statistics.stdev(raw_gaps) / math.sqrt(n) if n > 1 else float("nan")
            line += (f" {statistics.mean(r[4] for r in subset):.2f} | **{statistics.mean(gaps):.2f}** ± {se:.2f} "
                     f"| {statistics.mean(raw_gaps):.2f} ± {raw_se:.2f} |")
        else:
            line += f" **{statistics.mean(gaps):.2f}** ± {se:.2f} |"
        print(line)

    summary(rows, "mean")
    summary([r for r in rows if r[0] in set(a.held_out)], "held-out mean")
    if has_raw:
        better = sum(r[2] > r[4] for r in rows)
        worse = sum(r[2] < r[4] for r in rows)
        print(f"\nweight average against raw weights (best epochs): better on {better} of {len(rows)} seeds, "
              f"worse on {worse}; mean difference {statistics.mean(r[2] - r[4] for r in rows):+.2f} points")
    print("\n(± is the standard error of the mean gap: the per-seed gaps' standard deviation over sqrt(seeds))")


if __name__ == "__main__":
    main()
