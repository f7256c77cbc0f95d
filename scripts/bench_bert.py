#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""PyTorch peer of bench/bert_inference.cpp: Hugging Face BertModel (all-MiniLM-L6-v2) forward under no_grad on
the same deterministic ids, median of N runs. Prints one JSON line. Needs torch + transformers (hf_reference.py)."""
import argparse
import json
import os
import resource
import time

import torch
from transformers import BertModel

ap = argparse.ArgumentParser()
ap.add_argument("--model", default=os.environ.get("LST_MODEL_DIR",
                                                  os.path.expanduser("~/.cache/lst/all-MiniLM-L6-v2")))
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--threads", type=int, default=torch.get_num_threads())
a = ap.parse_args()
torch.set_num_threads(a.threads)
model = BertModel.from_pretrained(a.model).eval()
ids = torch.tensor([[101 if t == 0 else 1000 + (b * 131 + t * 7919) % 28000 for t in range(a.seq)]
                    for b in range(a.batch)])
mask = torch.ones_like(ids)
times = []
with torch.no_grad():
    out = model(input_ids=ids, attention_mask=mask)  # warm-up
    for _ in range(a.reps):
        t0 = time.perf_counter()
        out = model(input_ids=ids, attention_mask=mask)
        times.append(time.perf_counter() - t0)
s = sorted(times)[len(times) // 2]
h = out.last_hidden_state.flatten()
print(json.dumps({"impl": "pytorch " + torch.__version__, "threads": a.threads, "batch": a.batch, "seq": a.seq,
                  "seconds": round(s, 4), "tokens_per_s": round(a.batch * a.seq / s, 1),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "checksum": round(float(h[::997].sum()), 6)}))
