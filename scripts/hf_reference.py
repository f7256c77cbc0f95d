#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Makes the forward-pass fixture lst's test_bert_checkpoint compares against: Hugging Face transformers'
BertModel on the real all-MiniLM-L6-v2 checkpoint (scripts/fetch-model.py), on the first sentences of the shared
SST-2 dev set, tokenised by Hugging Face's BertTokenizer. Writes tests/data/minilm_reference.safetensors with
input_ids, token_type_ids, attention_mask (as F32, exact below 2^24), last_hidden_state and pooler_output.

Needs torch and transformers, e.g. on Debian: apt-get install python3-torch, then
    python3 -m pip install --target /tmp/hfsite --no-deps transformers==4.36.2 tokenizers==0.15.2 \
        huggingface_hub==0.20.3 safetensors==0.4.2 regex pyyaml filelock requests tqdm packaging fsspec \
        typing_extensions urllib3 idna charset_normalizer certifi
    PYTHONPATH=/tmp/hfsite /usr/bin/python3 scripts/hf_reference.py --model ~/.cache/lst/all-MiniLM-L6-v2
"""
import argparse
import os

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import BertModel, BertTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "glue"))
ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                                              "minilm_reference.safetensors"))
ap.add_argument("--sentences", type=int, default=3)
args = ap.parse_args()

with open(os.path.join(args.data, "SST-2", "dev.tsv"), encoding="utf-8") as f:
    rows = [line.rstrip("\n").split("\t") for line in f][1:]
sentences = [r[0] for r in rows[: args.sentences]]
# A sentence pair too, so token types are exercised.
pairs = (sentences[0], "a second segment , for token type ids .")

tok = BertTokenizer.from_pretrained(args.model)
# The batch: the single sentences, then one pair, padded to the longest.
single = tok(sentences[1:], padding=False)
pair = tok(pairs[0], pairs[1])
ids = single["input_ids"] + [pair["input_ids"]]
types = single["token_type_ids"] + [pair["token_type_ids"]]
T = max(len(x) for x in ids)
mask = [[1] * len(x) + [0] * (T - len(x)) for x in ids]
ids = [x + [0] * (T - len(x)) for x in ids]
types = [x + [0] * (T - len(x)) for x in types]

model = BertModel.from_pretrained(args.model).eval()
with torch.no_grad():
    out = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(types), attention_mask=torch.tensor(mask))
tensors = {
    "input_ids": np.array(ids, dtype=np.float32),
    "token_type_ids": np.array(types, dtype=np.float32),
    "attention_mask": np.array(mask, dtype=np.float32),
    "last_hidden_state": out.last_hidden_state.numpy().astype(np.float32),
    "pooler_output": out.pooler_output.numpy().astype(np.float32),
}
save_file(tensors, args.out, metadata={"model": "sentence-transformers/all-MiniLM-L6-v2",
                                       "transformers": __import__("transformers").__version__,
                                       "torch": torch.__version__})
print(f"wrote {args.out}: batch {len(ids)} x {T}")
