#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compares lst's WordPiece tokenizer (lst-tokenize) with Hugging Face's BertTokenizer on every sentence (or
sentence pair) of the shared GLUE dev sets, untruncated and truncated to 128 ids, and prints the match rate per
task. Exit status 1 on any mismatch.

    PYTHONPATH=/tmp/hfsite /usr/bin/python3 scripts/compare_tokenizer.py \
        --tokenize build/release/examples/lst-tokenize --model ~/.cache/lst/all-MiniLM-L6-v2
(see scripts/hf_reference.py for installing transformers next to Debian's torch; only the tokenizer is used here)
"""
import argparse
import os
import subprocess
import sys

from transformers import BertTokenizer
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()  # silence the per-call note on overflowing tokens of truncated pairs

# task -> (dev file, header?, column(s) of the text): the layouts of ../shared/data/glue/README.md
TASKS = {
    "SST-2": ("SST-2/dev.tsv", True, (0,)),
    "CoLA": ("CoLA/dev.tsv", False, (3,)),
    "MRPC": ("MRPC/dev.tsv", True, (3, 4)),
    "RTE": ("RTE/dev.tsv", True, (1, 2)),
    "STS-B": ("STS-B/dev.tsv", True, (7, 8)),
    "QNLI": ("QNLI/dev.tsv", True, (1, 2)),
}

ap = argparse.ArgumentParser()
ap.add_argument("--tokenize", required=True, help="path of the lst-tokenize program")
ap.add_argument("--model", required=True, help="checkpoint directory with vocab.txt")
ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "glue"))
args = ap.parse_args()
hf = BertTokenizer.from_pretrained(args.model)
vocab = os.path.join(args.model, "vocab.txt")
failed = False
for task, (path, header, cols) in TASKS.items():
    with open(os.path.join(args.data, path), encoding="utf-8", newline="\n") as f:
        rows = f.read().split("\n")
    rows = [r.split("\t") for r in rows[1 if header else 0:] if r]
    examples = [tuple(r[c] for c in cols) for r in rows]
    lines = "".join("\t".join(e) + "\n" for e in examples)
    for max_len in (512, 128):
        got = subprocess.run([args.tokenize, "--vocab", vocab, "--max-len", str(max_len)], input=lines.encode(),
                             capture_output=True, check=True).stdout.decode().splitlines()
        same = shown = 0
        for e, g in zip(examples, got):
            want = hf(*e, truncation="longest_first", max_length=max_len)["input_ids"]
            if " ".join(map(str, want)) == g:
                same += 1
            elif shown < 3:  # the first few mismatches of each run, not all of them
                shown += 1
                print(f"  {task} mismatch: {e!r}\n    hf  {want}\n    lst {g}", file=sys.stderr)
        ok = same == len(examples) and len(got) == len(examples)
        failed |= not ok
        print(f"{task:6s} max_len {max_len:3d}: {same}/{len(examples)} identical ({100.0 * same / len(examples):.2f}%)")
sys.exit(1 if failed else 0)
