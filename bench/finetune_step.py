#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""PyTorch peer of bench/finetune_step.cpp: Hugging Face BertModel (all-MiniLM-L6-v2) + dropout + linear head,
cross-entropy, backward, clip_grad_norm_(1.0), torch.optim.AdamW: one full-fine-tuning update on the same ids
and labels, median of N updates after a warm-up. Prints one JSON line. Needs torch + transformers
(see scripts/hf_reference.py)."""
import argparse
import json
import os
import resource
import time

import torch
from transformers import BertModel


def rss_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return 0.0


ap = argparse.ArgumentParser()
ap.add_argument("--model", default=os.environ.get("LST_MODEL_DIR",
                                                  os.path.expanduser("~/.cache/lst/all-MiniLM-L6-v2")))
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--threads", type=int, default=torch.get_num_threads())
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(42)
bert = BertModel.from_pretrained(a.model)
head = torch.nn.Sequential(torch.nn.Dropout(bert.config.hidden_dropout_prob),
                           torch.nn.Linear(bert.config.hidden_size, 2))
bert.train()
head.train()
params = list(bert.parameters()) + list(head.parameters())
opt = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01)
rss_loaded = rss_mib("VmRSS:")
ids = torch.tensor([[101 if t == 0 else 1000 + (b * 131 + t * 7919) % 28000 for t in range(a.seq)]
                    for b in range(a.batch)])
mask = torch.ones_like(ids)
labels = torch.tensor([b % 2 for b in range(a.batch)])
times, losses = [], []
for r in range(a.reps + 1):  # update 0 is the warm-up
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    pooled = bert(input_ids=ids, attention_mask=mask).pooler_output
    loss = torch.nn.functional.cross_entropy(head(pooled), labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    losses.append(float(loss))
    if r > 0:
        times.append(time.perf_counter() - t0)
s = sorted(times)[len(times) // 2]
print(json.dumps({"impl": "pytorch " + torch.__version__, "threads": a.threads, "batch": a.batch, "seq": a.seq,
                  "step_seconds": round(s, 4), "tokens_per_s": round(a.batch * a.seq / s, 1),
                  "rss_loaded_mib": round(rss_loaded, 1), "peak_rss_mib": round(rss_mib("VmHWM:"), 1),
                  "first_loss": round(losses[0], 6)}))
