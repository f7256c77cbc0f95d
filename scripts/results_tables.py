#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Results tables (Markdown) from lst-finetune run directories, grouped by task, method and tag, with the mean
and standard deviation over seeds and each seed's figure.

  scripts/results_tables.py [options] RUN_DIR [RUN_DIR ...]
  scripts/results_tables.py --root runs --name 2027-glue-minilm --title "GLUE, all-MiniLM-L6-v2" \\
      --commands-file cmds.sh --commit "$(git rev-parse --short HEAD)"      # -> docs/results/2027-glue-minilm.md

A run directory is what `lst-finetune --out DIR` writes (metrics.json, log.jsonl, last.safetensors);
scripts/glue_runs.sh names them <task>-<method>[-<tag>]. Runs that differ only by seed share a group: the tag's
seed token (`seed7`, matched by --seed-token) is dropped and the seed is read from metrics.json. A group's row
gives, over its seeds, the best epoch's dev metric (the checkpoint lst-finetune keeps) as mean ± sd, the last
epoch's, the raw weights' best where a weight average ran (--ema-decay), training minutes, peaks, and each
seed's best-epoch figure. Under the table: the configuration each group's runs recorded (metrics.json, and the
model configuration in last.safetensors' "lst.state"), and the commands that made the runs, as given with
--command / --commands-file (lst-finetune does not record its command line; a run directory's args.json,
command.txt or metrics.json "args"/"command", where present, are shown too).

Reuses scripts/seed_gaps.py (reading metrics.json) and scripts/summarize_runs.py (epoch seconds from log.jsonl).
"""
import argparse
import json
import pathlib
import re
import statistics
import struct
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from seed_gaps import load  # noqa: E402  metrics.json of a run directory
from summarize_runs import epoch_seconds  # noqa: E402  (first epoch's seconds, median of the later ones')

ROOT = pathlib.Path(__file__).resolve().parent.parent
NAME_RE = re.compile(r"^(?P<task>[a-z0-9]+)-(?P<method>[a-z]+)(?:-(?P<tag>.+))?$")
# The recorded training settings that must agree inside a group (a mismatch is reported, not hidden).
SETTINGS = ("batch_size", "max_seq_len", "lr", "ema_decay", "train_examples")


def checkpoint_state(run_dir):
    """The "lst.state" JSON of last.safetensors (else best.safetensors), or {}: safetensors' header is an 8-byte
    little-endian length and a JSON object whose "__metadata__" holds string values."""
    for name in ("last.safetensors", "best.safetensors"):
        path = run_dir / name
        if not path.exists():
            continue
        try:
            with path.open("rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            state = header.get("__metadata__", {}).get("lst.state")
            if state:
                return json.loads(state)
        except (OSError, struct.error, ValueError) as e:  # ValueError covers JSONDecodeError
            print(f"results_tables.py: warning: {path}: {e}", file=sys.stderr)
    return {}


def recorded_command(run_dir, m):
    """A command line or argument list the run directory records, if any (lst-finetune writes none today)."""
    for key in ("command", "args"):
        if key in m:
            v = m[key]
            return " ".join(v) if isinstance(v, list) else str(v)
    for name in ("command.txt", "cmdline", "args.json", "args"):
        path = run_dir / name
        if path.exists():
            text = path.read_text().strip()
            try:
                v = json.loads(text)
                return " ".join(map(str, v)) if isinstance(v, list) else json.dumps(v)
            except json.JSONDecodeError:
                return text
    return None


def run_record(run_dir, seed_token):
    run_dir = pathlib.Path(run_dir)
    m = load(run_dir)
    name = run_dir.resolve().name
    match = NAME_RE.match(name)
    tag = (match.group("tag") or "") if match else name
    tag = "-".join(t for t in tag.split("-") if t and not re.fullmatch(seed_token, t))
    metric = m["primary_metric"]
    first, later = epoch_seconds(run_dir)
    return {
        "dir": run_dir,
        "name": name,
        "task": m["task"],
        "method": m["method"],
        "tag": tag,
        "seed": int(m["seed"]),
        "metric": metric,
        "best": 100 * m["best_dev"][metric],
        "best_epoch": m["best_epoch"],
        "last": 100 * m["dev"][metric],
        "raw": 100 * m["best_raw_dev"][metric] if "best_raw_dev" in m else None,
        "epochs": m["epochs"],
        "train_min": m["train_seconds"] / 60,
        "first_s": first,
        "later_s": later,
        "trainable": m["trainable_parameters"],
        "tracker_mib": m["peak_bytes"]["total"] / 2**20,
        "rss_mib": m["peak_rss_bytes"] / 2**20,
        "settings": {k: m.get(k) for k in SETTINGS},
        "model": checkpoint_state(run_dir).get("model"),
        "command": recorded_command(run_dir, m),
    }


def mean_sd(values, digits=2):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def mean_of(values):
    values = [v for v in values if v is not None]
    return f"{statistics.mean(values):.0f}" if values else "–"


def group_runs(records):
    groups = {}
    for r in records:
        groups.setdefault((r["task"], r["method"], r["tag"]), []).append(r)
    for runs in groups.values():
        runs.sort(key=lambda r: (r["seed"], r["name"]))
    return dict(sorted(groups.items()))


def check_group(key, runs):
    """Messages for runs of one group that recorded different settings, or repeat a seed."""
    problems = []
    for field in ("settings", "model"):
        values = {json.dumps(r[field], sort_keys=True) for r in runs}
        if len(values) > 1:
            problems.append(f"{'/'.join(filter(None, key))}: runs disagree on {field}: "
                            + ", ".join(f"{r['name']}={json.dumps(r[field], sort_keys=True)}" for r in runs))
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) != len(seeds):
        problems.append(f"{'/'.join(filter(None, key))}: a seed appears twice: " + ", ".join(r["name"] for r in runs))
    return problems


def table(groups):
    lines = [
        "| task | method | tag | metric | seeds | best epoch, mean ± sd | last epoch, mean ± sd | raw weights' best, "
        "mean ± sd | per seed: best epoch (epoch) | train min, mean | epoch 1 s, mean | later epochs s, mean | "
        "trainable params | tracker peak MiB | peak RSS MiB |",
        "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (task, method, tag), runs in groups.items():
        per_seed = ", ".join(f"{r['seed']}: {r['best']:.2f} ({r['best_epoch']})" for r in runs)
        has_raw = all(r["raw"] is not None for r in runs)
        lines.append(
            f"| {task} | {method} | {tag or '–'} | {runs[0]['metric']} | {len(runs)} "
            f"| {mean_sd([r['best'] for r in runs])} | {mean_sd([r['last'] for r in runs])} "
            f"| {mean_sd([r['raw'] for r in runs]) if has_raw else '–'} | {per_seed} "
            f"| {statistics.mean(r['train_min'] for r in runs):.1f} | {mean_of([r['first_s'] for r in runs])} "
            f"| {mean_of([r['later_s'] for r in runs])} | {runs[0]['trainable']:,} "
            f"| {max(r['tracker_mib'] for r in runs):.0f} | {max(r['rss_mib'] for r in runs):.0f} |")
    return lines


def merged(runs, field):
    """{key: value} of the runs' recorded `field`; a key whose runs disagree shows every value ("a / b")."""
    out = {}
    for r in runs:
        for k, v in (r[field] or {}).items():
            if v is not None and str(v) not in out.setdefault(k, []):
                out[k].append(str(v))
    return {k: " / ".join(v) for k, v in out.items() if v}


def configurations(groups):
    lines = []
    for (task, method, tag), runs in groups.items():
        settings = ", ".join(f"{k} {v}" for k, v in merged(runs, "settings").items())
        model = merged(runs, "model")
        model = "; model " + ", ".join(f"{k} {v}" for k, v in model.items() if k != "method") if model else ""
        title = " ".join(filter(None, (task, method, tag)))
        lines.append(f"- **{title}** ({', '.join(x['name'] for x in runs)}): {settings}{model}")
        for x in runs:
            if x["command"]:
                lines.append(f"  - {x['name']}: `{x['command']}`")
    return lines


def git_commit():
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def document(args, groups):
    out = [f"# {args.title or args.name or 'Results'}", ""]
    out.append(f"Generated by `scripts/results_tables.py` at commit {git_commit()} from {sum(map(len, groups.values()))} "
               f"run directories. Runs made at commit: {args.commit or 'not given (lst-finetune does not record it)'}.")
    if args.machine:
        out.append(f"Machine: {args.machine}.")
    out += ["", "Dev figures are percent on the task's GLUE metric (accuracy, F1 for MRPC, Matthews correlation "
            "for CoLA, Pearson for STS-B); \"best epoch\" is the checkpoint lst-finetune keeps, sd the standard "
            "deviation over seeds (n - 1); peaks are the largest over a group's runs.", ""]
    out += table(groups)
    out += ["", "## Configurations recorded by the runs", ""]
    out += configurations(groups)
    commands = list(args.command)
    if args.commands_file:
        commands.append(pathlib.Path(args.commands_file).read_text().rstrip())
    out += ["", "## Commands", ""]
    if commands:
        out += ["```sh", *commands, "```"]
    else:
        out.append("Not given (pass --command or --commands-file).")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="lst-finetune output directories")
    ap.add_argument("--root", action="append", default=[], help="take every ROOT/*/metrics.json (repeatable)")
    ap.add_argument("--name", help="write docs/results/NAME.md (else stdout)")
    ap.add_argument("--out", help="write this file instead (else stdout)")
    ap.add_argument("--title", help="the document's title (default: NAME)")
    ap.add_argument("--commit", help="the commit the runs were made at (not recorded by lst-finetune)")
    ap.add_argument("--machine", help="the machine the runs were made on (CPU, ISA)")
    ap.add_argument("--command", action="append", default=[], help="a command that made the runs (repeatable)")
    ap.add_argument("--commands-file", help="a file of the commands that made the runs")
    ap.add_argument("--seed-token", default=r"seed\d+", help="regex of the tag token that names a seed")
    ap.add_argument("--strict", action="store_true", help="fail when a group's runs recorded different settings")
    args = ap.parse_args()

    dirs = [pathlib.Path(d) for d in args.runs]
    for root in args.root:
        dirs += sorted(p.parent for p in pathlib.Path(root).glob("*/metrics.json"))
    if not dirs:
        sys.exit("results_tables.py: no run directories (give RUN_DIRs or --root)")
    groups = group_runs([run_record(d, args.seed_token) for d in dirs])
    problems = [p for key, runs in groups.items() for p in check_group(key, runs)]
    for p in problems:
        print(f"results_tables.py: warning: {p}", file=sys.stderr)
    if problems and args.strict:
        sys.exit(1)
    text = document(args, groups)
    path = args.out or (ROOT / "docs" / "results" / f"{args.name}.md" if args.name else None)
    if path is None:
        sys.stdout.write(text)
    else:
        pathlib.Path(path).write_text(text)
        print(f"results_tables.py: {len(groups)} groups -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
