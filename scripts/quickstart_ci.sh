#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CI check of the README's first command: runs `scripts/quickstart.sh --short` (a few LST steps on the real
# checkpoint and data, a tiny evaluation, full fine-tuning's memory) and checks that it printed a dev score and
# the memory comparison. Arguments go to quickstart.sh (e.g. --task rte, --data DIR). $LST_QUICKSTART_BUILD_DIR
# picks the build directory (default build/quickstart; an already configured one, e.g. build/release, is
# reused as it is, which saves a second build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

status=0
bash scripts/quickstart.sh --short --out runs/quickstart-ci "$@" 2>&1 | tee "$log" || status=$?
if [[ $status -ne 0 ]]; then
  echo "quickstart_ci: scripts/quickstart.sh --short failed (exit $status)" >&2
  exit 1
fi
# The lines the README promises: "dev <metric> <number>" and "LST used N MiB, full fine-tuning would use M MiB".
fail=0
grep -Eq '^dev [a-z_]+ -?[0-9]+\.[0-9]' "$log" || { echo "quickstart_ci: no dev score in the output" >&2; fail=1; }
grep -Eq 'LST used [0-9]+ MiB, full fine-tuning would use [0-9]+ MiB' "$log" ||
  { echo "quickstart_ci: no memory comparison in the output" >&2; fail=1; }
# LST's whole point: less memory than full fine-tuning.
if line="$(grep -Eo 'LST used [0-9]+ MiB, full fine-tuning would use [0-9]+ MiB' "$log")"; then
  read -r n m < <(sed -E 's/LST used ([0-9]+) MiB, full fine-tuning would use ([0-9]+) MiB/\1 \2/' <<<"$line")
  [[ $n -lt $m ]] || { echo "quickstart_ci: LST's $n MiB is not below full fine-tuning's $m MiB" >&2; fail=1; }
fi
[[ $fail == 0 ]] && echo "quickstart_ci: ok"
exit "$fail"
