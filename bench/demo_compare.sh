#!/usr/bin/env bash
# The README's comparison example, measured: a fresh clone of HEAD, `dvc repro`, two named runs
# with another m and one in the fast CPU mode, then `mygo compare`. Writes
# bench/results/demo_compare.md (with each run's training time) and the plots of the default
# run and m4 in docs/plots/ (`mygo plots HEAD m4`).
#
#   PATH=$PWD/.venv/bin:$PATH bench/demo_compare.sh
set -euo pipefail
source "$(dirname "$0")/fresh_clone.sh"
fresh_clone demo
export PYTHONPATH="$clone/src"
start=$SECONDS
dvc repro > "$work/main.log" 2>&1
repro_seconds=$((SECONDS - start))
git -c user.name=demo -c user.email=demo@example.com commit -qam "dvc repro" --allow-empty   # HEAD: this run
dvc exp run -n m4 -S max_vis_token=4 > "$work/m4.log" 2>&1
dvc exp run -n m16 -S max_vis_token=16 > "$work/m16.log" 2>&1
dvc exp run -n fast -S reproducible=false > "$work/fast.log" 2>&1
trained() { grep -o "trained [0-9]* epochs in [0-9.]*s" "$work/$1.log" | head -1; }
table=$(python -m mygo compare --format markdown)
python -m mygo plots HEAD m4 --out "$work/plots" > /dev/null      # docs/experiments.md shows three of them
cp "$work/plots/loss.png" "$work/plots/kgc_loss.png" "$work/plots/per_relation_mrr.png" "$root/docs/plots/"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
cat > "$root/bench/results/demo_compare.md" <<MD
# The demo with m = 4, 8 and 16, and in the fast CPU mode

Made by \`bench/demo_compare.sh\` ($cpu, $(nproc) cores; one seed each): in a fresh clone,
\`dvc repro\` (the run \`main\`: ${repro_seconds} s for the whole pipeline), then

\`\`\`bash
dvc exp run -n m4 -S max_vis_token=4
dvc exp run -n m16 -S max_vis_token=16
dvc exp run -n fast -S reproducible=false
mygo compare --format markdown
\`\`\`

$table

Training time (the train stage's log): main $(trained main | sed 's/.* in //'), m4 $(trained m4 | sed 's/.* in //'),
m16 $(trained m16 | sed 's/.* in //'), fast $(trained fast | sed 's/.* in //').
MD
cat "$root/bench/results/demo_compare.md"
