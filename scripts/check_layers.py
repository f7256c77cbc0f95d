#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks lst's include layering and keeps CPU specifics inside include/lst/backends/.

Two checks over every header under include/lst (or --root):

  layers  Each quoted #include (and each <lst/...> include) is resolved relative to the including file and
          mapped to its floor; a header may include only the floors its own floor lists in LAYERS below.
  leaks   Outside backends/, no header may use CPU-specific code (cpu::, <*intrin.h>, <omp.h>, OpenMP
          pragmas, LST_PARALLEL_FOR*, std::is_same_v<Backend, Cpu>) or a backend library's header (Eigen,
          CBLAS, cuBLAS, Thrust, CUDA); outside backends/ and ops/ none may include anything under backends/
          (lst.hpp, the umbrella header, may).

Lines that are // or /// comments (and /* ... */ comments) are skipped: mentions in prose are fine.

Usage:
  scripts/check_layers.py [--root DIR] [--only layers|leaks]
  scripts/check_layers.py --self-test [--root DIR]

Exit status: 0 when the rules hold, 1 on any violation (all of them are printed, then their count),
2 on a usage error. --self-test plants violations in a copy of the tree and checks they are caught.
"""

import argparse
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile

# The layering rule, floors lowest first: a header on a floor may include headers on the floors it lists (its own
# floor is always allowed). Floors are the top-level folders of include/lst (subfolders belong to their top
# folder's floor: methods/lst/ is on floor methods) and the top-level files config.hpp, fwd.hpp and lst.hpp.
# Two special entries:
#   BELOW        every floor listed before this one
#   OWN_BACKEND  the header's own backend, backends/<name>/ (backends/cpu/ may include backends/cpu/*, not
#                backends/cuda/*); "backends" in a list allows every backend
BELOW = "<every floor below>"
OWN_BACKEND = "<its own backend>"
LAYERS = {
    "config.hpp": ("config.hpp", "fwd.hpp"),
    "fwd.hpp": ("config.hpp", "fwd.hpp"),
    "core": ("config.hpp", "fwd.hpp", "core"),
    # An op header ends by including its backends' definitions (Thrust's adl/ dispatch pattern).
    "ops": ("config.hpp", "fwd.hpp", "core", "ops", "backends"),
    "io": ("config.hpp", "fwd.hpp", "core", "io"),
    "backends": ("config.hpp", "fwd.hpp", "core", "ops", OWN_BACKEND),
    "nn": ("config.hpp", "fwd.hpp", "core", "ops", "nn"),
    "models": ("config.hpp", "fwd.hpp", "core", "ops", "io", "nn", "models"),
    "init": ("config.hpp", "fwd.hpp", "core", "ops", "io", "nn", "models", "init"),
    "methods": ("config.hpp", "fwd.hpp", "core", "ops", "io", "nn", "models", "init", "methods"),
    "train": (BELOW, "train"),  # everything except lst.hpp
    "lst.hpp": (BELOW,),  # the umbrella header: everything
}

# Folders (floors) whose headers may contain CPU specifics, and those that may also include backends/.
CPU_FLOORS = ("backends",)
BACKEND_INCLUDERS = ("backends", "ops", "lst.hpp")

# CPU-specific code outside backends/: (label, pattern) searched in each line's code.
CPU_PATTERNS = (
    ("cpu::", re.compile(r"\bcpu::")),
    ("<*intrin.h>", re.compile(r'^\s*#\s*include\s*[<"][^>"]*intrin\.h[>"]')),
    ("<omp.h>", re.compile(r'^\s*#\s*include\s*[<"]omp\.h[>"]')),
    ("#pragma omp", re.compile(r"^\s*#\s*pragma\s+omp\b")),
    ('_Pragma("omp', re.compile(r'\b_Pragma\s*\(\s*"\s*omp\b')),
    ("LST_PARALLEL_FOR", re.compile(r"\bLST_PARALLEL_FOR\w*")),
    ("std::is_same_v<Backend, Cpu>", re.compile(r"\bstd::is_same(?:_v)?\s*<\s*Backend\s*,\s*(?:lst::)?Cpu\s*>")),
)
# Backend libraries' headers (matched at the start of the included name), allowed only under backends/.
BACKEND_LIBRARY_HEADER = re.compile(r"(?:unsupported/)?Eigen/|cblas\.h$|cublas|thrust/|cub/|cuda")

HEADER_SUFFIXES = (".hpp", ".h", ".hh", ".hxx", ".cuh", ".inl", ".ipp", ".tpp")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
SCRIPT = "scripts/check_layers.py"


def default_root():
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "include", "lst"))


def display(path):
    """path as printed: relative to the working directory when under it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def floor_order():
    return list(LAYERS)


def allowed_floors(floor):
    order = floor_order()
    out = []
    for entry in LAYERS[floor]:
        if entry == BELOW:
            out.extend(order[: order.index(floor)])
        else:
            out.append(entry)
    return out


def floor_of(rel):
    """(floor, unit) of a root-relative posix path; floor is None when the rule has none for it. The unit is
    the floor, except under backends/ where it is the backend, backends/<name>."""
    parts = rel.split("/")
    head = parts[0]
    if head not in LAYERS or (len(parts) == 1) != head.endswith(".hpp"):  # a top-level file, or a folder
        return None, head
    if head == "backends" and len(parts) > 2:
        return head, "backends/" + parts[1]
    return head, head


def label(unit):
    return unit if unit.endswith(".hpp") else unit + "/"


COMMENT_OR_LITERAL = re.compile(r"""//|/\*|"(?:\\.|[^"\\])*"?|'(?:\\.|[^'\\])*'?""")


def code_lines(text):
    """(line number, code) of each line, with // and /* */ comments removed; lines left empty are dropped.
    String and character literals are skipped over only so that // or /* inside them is not taken for a
    comment."""
    in_block = False
    for number, line in enumerate(text.splitlines(), 1):
        if not in_block and "/" not in line:
            code = line
        else:
            out, pos = [], 0
            while True:
                if in_block:
                    end = line.find("*/", pos)
                    if end < 0:
                        break
                    in_block, pos = False, end + 2
                    out.append(" ")
                m = COMMENT_OR_LITERAL.search(line, pos)
                if not m:
                    out.append(line[pos:])
                    break
                out.append(line[pos:m.start()])
                if m.group() == "//":
                    break
                if m.group() == "/*":
                    in_block, pos = True, m.end()
                    continue
                out.append(m.group())
                pos = m.end()
            code = "".join(out)
        if code.strip():
            yield number, code.rstrip()


def headers(root):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(HEADER_SUFFIXES):
                found.append(os.path.join(dirpath, name))
    return found


def resolve(root, rel_dir, bracket, target):
    """Root-relative posix path an include names, or None when it is not lst's (an external header).
    A result starting with ../ lies outside the root."""
    if bracket == '"':
        candidate = posixpath.normpath(posixpath.join(rel_dir, target)) if rel_dir else posixpath.normpath(target)
        if os.path.exists(os.path.join(root, *candidate.split("/"))) or not target.startswith("lst/"):
            return candidate
    if target.startswith("lst/"):
        return posixpath.normpath(target[len("lst/"):])
    return None


def check(root, only=None):
    """(violations, header count): violations are (root-relative path, line, message), sorted."""
    violations = []
    unknown_folders = set()
    files = headers(root)
    for path in files:
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        rel_dir = posixpath.dirname(rel)
        floor, unit = floor_of(rel)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()

        if only in (None, "layers") and floor is None and unit not in unknown_folders:
            unknown_folders.add(unit)
            what = "file" if "/" not in rel else "folder"
            violations.append((unit, 0, f"{what} {unit} has no floor in the layering rule; add it to {SCRIPT}"))

        for number, code in code_lines(text):
            m = INCLUDE.match(code)
            target = resolve(root, rel_dir, m.group(1), m.group(2)) if m else None

            if only in (None, "layers") and floor is not None and target is not None:
                problem = layering_problem(root, floor, unit, target)
                if problem:
                    violations.append((rel, number, problem))
            layering_reported = bool(violations) and violations[-1][:2] == (rel, number)

            if only in (None, "leaks") and floor not in CPU_FLOORS:
                hits = [name for name, pattern in CPU_PATTERNS if pattern.search(code)]
                external = m and (target is None or not os.path.isfile(os.path.join(root, *target.split("/"))))
                if external and BACKEND_LIBRARY_HEADER.match(m.group(2)):
                    hits.append(f"<{m.group(2)}>")
                if hits:
                    violations.append((rel, number, f"CPU/backend specifics outside backends/ "
                                                    f"[{', '.join(hits)}]: {code.strip()}"))
                if (target is not None and target.split("/")[0] == "backends"
                        and floor not in BACKEND_INCLUDERS and not layering_reported):  # said once is enough
                    violations.append((rel, number, f"includes {target}: only backends/, ops/ and lst.hpp may "
                                                    f"include backends/: {code.strip()}"))
    violations.sort()
    return violations, len(files)


def layering_problem(root, floor, unit, target):
    """The violation when a header on floor/unit includes target (root-relative), or None when it may."""
    if target.startswith("../"):
        return f"includes {target[3:]}, which lies outside the include root"
    if not os.path.isfile(os.path.join(root, *target.split("/"))):
        return f"includes {target}, which does not exist (a stale include? external headers take <...>)"
    tfloor, tunit = floor_of(target)
    if tfloor is None:
        what = "file" if "/" not in target else "folder"
        why = f"{what} {tunit} has no floor in the layering rule"
    elif floor == "backends" and tfloor == "backends":
        why = None if tunit == unit else f"{tunit} is another backend"
    elif tfloor == floor or tfloor in allowed_floors(floor):
        why = None
    elif floor_order().index(tfloor) > floor_order().index(floor):
        why = f"floor {tfloor} is above {floor}"
    else:
        allowed = [a for a in allowed_floors(floor) if a != OWN_BACKEND]
        why = f"{label(floor)} may use only {', '.join(allowed)}"
    return why and f"{label(unit)} may not include {target} ({why})"


def render(root, only=None, shown=None):
    """(exit status, output lines) of a check of root; paths are printed under shown (default: display(root))."""
    violations, count = check(root, only)
    shown = display(root) if shown is None else shown
    lines = [f"{shown}/{rel}" + (f":{line}" if line else "") + f": {message}" for rel, line, message in violations]
    if violations:
        files = len({rel for rel, _, _ in violations})
        lines.append(f"check_layers: {len(violations)} violation(s) in {files} file(s) "
                     f"of {count} headers under {shown}")
        return 1, lines
    rules = {None: "layering and backend rules hold", "layers": "layering rule holds",
             "leaks": "backend rules hold"}[only]
    return 0, lines + [f"check_layers: {count} headers, {rules}"]


# ---------------------------------------------------------------- self-test

def run_script(root):
    """(exit status, output lines, with root's printed path replaced by <root>) of this script run on root."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--root", root],
                          capture_output=True, text=True, check=False)
    prefix = display(root)
    lines = [l.replace(prefix + "/", "<root>/").replace(prefix, "<root>") for l in proc.stdout.splitlines()]
    return proc.returncode, lines + ([f"stderr: {proc.stderr.strip()}"] if proc.stderr.strip() else [])


def pick(root, folder, preferred):
    if os.path.isfile(os.path.join(root, folder, preferred)):
        return f"{folder}/{preferred}"
    names = sorted(n for n in os.listdir(os.path.join(root, folder)) if n.endswith(HEADER_SUFFIXES)) \
        if os.path.isdir(os.path.join(root, folder)) else []
    return f"{folder}/{names[0]}" if names else None


def append_line(path, line):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        text += "\n"
    text += line + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text.count("\n")  # the appended line's number


def self_test(real_root):
    results = []

    def expect(name, ok, detail=""):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} - {name}" + ("" if ok or not detail else f"\n       {detail}"))

    with tempfile.TemporaryDirectory(prefix="check_layers.") as tmp:
        def copy(source, name):
            root = os.path.join(tmp, name, "include", "lst")
            shutil.copytree(source, root)
            return root

        # The pristine copy, checked in this process, must give what the script itself (a second process) says
        # of the real tree. The tree may be being edited meanwhile, so a mismatch is retried before it counts;
        # the plants below are made in copies of the pristine copy, never of the live tree.
        for attempt in range(3):
            pristine_root = copy(real_root, f"pristine{attempt}")
            real = run_script(real_root)
            pristine = render(pristine_root, shown="<root>")
            if pristine == real:
                break
        expect(f"a pristine copy gives the real tree's result (exit {real[0]}, {len(real[1]) - 1} violation(s))",
               pristine == real, f"real tree {real} / copy {pristine}")

        baselines = {}

        def planted(name, rel, line, only=None, caught=True):
            if only not in baselines:
                baselines[only] = render(pristine_root, only, "<root>")
            base_rc, base = baselines[only]
            root = copy(pristine_root, name)
            number = append_line(os.path.join(root, *rel.split("/")), line)
            rc, lines = render(root, only, "<root>")
            new = [l for l in lines[:-1] if l not in base]
            mode = f"--only {only}" if only else "both checks"
            if caught:
                ok = (rc == 1 and set(base[:-1]) <= set(lines) and len(new) == 1
                      and new[0].startswith(f"<root>/{rel}:{number}: "))
                expect(f"{mode}: {line!r} planted at {rel}:{number} is reported", ok, f"exit {rc}, new: {new}")
            else:
                ok = (rc, lines) == (base_rc, base)
                expect(f"{mode}: {line!r} planted in {rel} is not reported", ok, f"exit {rc}, new: {new}")

        core = pick(pristine_root, "core", "shape.hpp")
        nn = pick(pristine_root, "nn", "linear.hpp")
        if core is None or nn is None:
            expect("the tree has a core/ and an nn/ header to plant in", False)
        else:
            upward = '#include "../train/trainer.hpp"'
            omp = "#pragma omp parallel for"
            planted("upward", core, upward)
            planted("upward_leaks", core, upward, only="leaks", caught=False)
            planted("omp", nn, omp)
            planted("omp_layers", nn, omp, only="layers", caught=False)
            planted("backend_include", nn, '#include "../backends/cpu/cpu.hpp"', only="leaks")
            planted("comment", nn, "// prose may mention cpu::gemm, #pragma omp and LST_PARALLEL_FOR", caught=False)
            planted("doc_comment", nn, "/// std::is_same_v<Backend, Cpu> in a doc comment", caught=False)

        root = copy(pristine_root, "new_folder")
        os.makedirs(os.path.join(root, "widgets"))
        with open(os.path.join(root, "widgets", "w.hpp"), "w", encoding="utf-8") as f:
            f.write('#pragma once\n#include "../config.hpp"\n')
        rc, lines = render(root, "layers", "<root>")
        expect("a folder the rule does not know is reported", rc == 1 and any(
            l.startswith("<root>/widgets: folder widgets has no floor") for l in lines), f"exit {rc}: {lines}")

    failed = results.count(False)
    print(f"check_layers self-test: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=default_root(), help="the include/lst folder (default: this repo's)")
    parser.add_argument("--only", choices=("layers", "leaks"), help="run one of the two checks")
    parser.add_argument("--self-test", action="store_true", help="check that planted violations are caught")
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        parser.error(f"--root {args.root}: no such folder")
    if args.self_test:
        return self_test(root)
    rc, lines = render(root, args.only)
    print("\n".join(lines))
    return rc


if __name__ == "__main__":
    sys.exit(main())
