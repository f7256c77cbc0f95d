#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""PyTorch peer of bench/finetune_step.cpp, one training update on the same ids and labels, median of N
updates after a warm-up. Prints one JSON line. Needs torch + transformers (see scripts/hf_reference.py).

--method full: Hugging Face BertModel (all-MiniLM-L6-v2) + dropout + linear head, cross-entropy, backward,
clip_grad_norm_(1.0), torch.optim.AdamW.
--method lst: the reference Ladder Side-Tuning (Sung et al. 2022; ylsung/Ladder-Side-Tuning) on the same
backbone: frozen BertModel under no_grad with output_hidden_states, a ladder Linear(d, d/r) per state, gates
sigmoid(alpha / 0.1) fused before each side block, side blocks = transformers' BertLayer at width d/r with the
backbone's head count and d_ff/r, final LayerNorm, dropout, up-projection d/r -> d, linear head."""
import argparse
import json
import os
import time

import torch
from transformers import BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertLayer


def rss_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return 0.0


class SideNetwork(torch.nn.Module):
    def __init__(self, cfg, r, layers):
        super().__init__()
        d, w = cfg.hidden_size, cfg.hidden_size // r
        side_cfg = BertConfig(hidden_size=w, num_attention_heads=cfg.num_attention_heads,
                              intermediate_size=cfg.intermediate_size // r, hidden_act=cfg.hidden_act,
                              layer_norm_eps=cfg.layer_norm_eps, hidden_dropout_prob=0.1,
                              attention_probs_dropout_prob=0.1)
        self.layers = layers
        self.embedding_ladder = torch.nn.Linear(d, w)
        self.ladders = torch.nn.ModuleList(torch.nn.Linear(d, w) for _ in layers)
        self.alphas = torch.nn.Parameter(torch.zeros(len(layers)))
        self.blocks = torch.nn.ModuleList(BertLayer(side_cfg) for _ in layers)
        self.final_norm = torch.nn.LayerNorm(w, eps=cfg.layer_norm_eps)
        self.dropout = torch.nn.Dropout(0.1)
        self.up = torch.nn.Linear(w, d)
        for m in [self.embedding_ladder, *self.ladders]:
            torch.nn.init.normal_(m.weight, std=0.01)
            torch.nn.init.zeros_(m.bias)

    def forward(self, hidden_states, extended_mask):
        s = self.embedding_ladder(self.dropout(hidden_states[0]))
        for i, layer in enumerate(self.layers):
            mu = torch.sigmoid(self.alphas[i] / 0.1)
            s = mu * s + (1 - mu) * self.ladders[i](hidden_states[layer + 1])
            s = self.blocks[i](s, attention_mask=extended_mask)[0]
        return self.up(self.dropout(self.final_norm(s[:, 0])))


ap = argparse.ArgumentParser()
ap.add_argument("--model", default=os.environ.get("LST_MODEL_DIR",
                                                  os.path.expanduser("~/.cache/lst/all-MiniLM-L6-v2")))
ap.add_argument("--method", default="full", choices=["full", "lst"])
ap.add_argument("--r", type=int, default=8)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--threads", type=int, default=torch.get_num_threads())
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(42)
bert = BertModel.from_pretrained(a.model)
cfg = bert.config
head = torch.nn.Sequential(torch.nn.Dropout(cfg.hidden_dropout_prob), torch.nn.Linear(cfg.hidden_size, 2))
if a.method == "full":
    bert.train()
    params = list(bert.parameters()) + list(head.parameters())
else:
    bert.eval()
    bert.requires_grad_(False)
    side = SideNetwork(cfg, a.r, list(range(cfg.num_hidden_layers)))
    side.train()
    params = list(side.parameters()) + list(head.parameters())
opt = torch.optim.AdamW(params, lr=2e-5 if a.method == "full" else 3e-3, weight_decay=0.01)
rss_loaded = rss_mib("VmRSS:")
ids = torch.tensor([[101 if t == 0 else 1000 + (b * 131 + t * 7919) % 28000 for t in range(a.seq)]
                    for b in range(a.batch)])
mask = torch.ones_like(ids)
labels = torch.tensor([b % 2 for b in range(a.batch)])
extended = bert.get_extended_attention_mask(mask, ids.shape)
times, losses = [], []
for rep in range(a.reps + 1):  # update 0 is the warm-up
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    if a.method == "full":
        features = bert(input_ids=ids, attention_mask=mask).pooler_output
    else:
        with torch.no_grad():
            states = bert(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        features = side(states, extended)
    loss = torch.nn.functional.cross_entropy(head(features), labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    losses.append(float(loss))
    if rep > 0:
        times.append(time.perf_counter() - t0)
s = sorted(times)[len(times) // 2]
print(json.dumps({"impl": "pytorch " + torch.__version__, "method": a.method, "r": a.r if a.method == "lst" else 0,
                  "threads": a.threads, "batch": a.batch, "seq": a.seq, "step_seconds": round(s, 4),
                  "tokens_per_s": round(a.batch * a.seq / s, 1), "rss_loaded_mib": round(rss_loaded, 1),
                  "peak_rss_mib": round(rss_mib("VmHWM:"), 1), "first_loss": round(losses[0], 6)}))
