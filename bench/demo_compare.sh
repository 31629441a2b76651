#!/usr/bin/env bash
# The README's comparison example, measured: a fresh clone of HEAD, `dvc repro`, two named runs
# with another m, then `mygo compare`. Writes bench/results/demo_compare.md.
#
#   PATH=$PWD/.venv/bin:$PATH bench/demo_compare.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/demo"
cd "$work/demo"
export PYTHONPATH="$work/demo/src"
dvc repro -q
dvc exp run -q -n m4 -S max_vis_token=4
dvc exp run -q -n m16 -S max_vis_token=16
table=$(python -m mygo compare)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
cat > "$root/bench/results/demo_compare.md" <<MD
# The demo with m = 4, 8 and 16

Made by \`bench/demo_compare.sh\`: in a fresh clone, \`dvc repro\`, then ($cpu, $(nproc) cores; one seed each):

\`\`\`bash
dvc exp run -n m4 -S max_vis_token=4
dvc exp run -n m16 -S max_vis_token=16
mygo compare
\`\`\`

$table
MD
cat "$root/bench/results/demo_compare.md"
