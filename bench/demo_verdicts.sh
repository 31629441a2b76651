#!/usr/bin/env bash
# The demo's modality ablation as DVC experiments, judged by `mygo compare`: in a clone of HEAD
# (sharing this repository's DVC cache, so only train and evaluate run), three seeds of each set
# of modalities queued as named experiments and run two at a time, then
#
#   mygo compare --baseline structure-only --per-relation
#
# Writes bench/results/demo_verdicts.md; the README's demo verdicts are its output, as it stands
# there (tests/test_docs.py).
#
#   dvc repro && PATH=$PWD/.venv/bin:$PATH bench/demo_verdicts.sh     # about 15 min on 2 cores
#   SEEDS=1,2,3,4,5 JOBS=1 bench/demo_verdicts.sh                     # other seeds, one run at a time
set -euo pipefail
source "$(dirname "$0")/fresh_clone.sh"
seeds=${SEEDS:-2024,1,2}
jobs=${JOBS:-2}
fresh_clone demo
cleanup() {                              # the queue's workers first, then the folder
  (cd "$clone" 2>/dev/null && dvc queue stop --kill > /dev/null 2>&1 && sleep 5) || true
  rm -rf "$work" 2>/dev/null || { sleep 10; rm -rf "$work"; }
}
trap cleanup EXIT
export PYTHONPATH="$clone/src"           # the clone's code, also in the queue's workers
dvc cache dir --local "$root/.dvc/cache"
dvc checkout -q          # the committed outputs, from this repository's cache (`dvc repro` made them)
dvc status -q || { echo "the outputs of HEAD are not in $root/.dvc/cache: run \`dvc repro\` there first" >&2; exit 1; }

declare -A switches=(
  [structure-only]="-S train.model.use_visual=false -S train.model.use_text=false"
  [with-text]="-S train.model.use_visual=false"
  [with-images]="-S train.model.use_text=false"
  [all-modalities]=""
)
names=(structure-only with-text with-images all-modalities)
queued=()
for name in "${names[@]}"; do
  for seed in ${seeds//,/ }; do
    # shellcheck disable=SC2086  # the switches are separate words
    dvc exp run --queue -q -n "$name-s$seed" ${switches[$name]} -S "train.seed=$seed"
    queued+=("$name-s$seed")
  done
done
start=$SECONDS
dvc queue start -j "$jobs" > "$work/queue.log" 2>&1
# busy while a task is queued or running, or fewer than all have finished: just after the worker
# takes a task off the queue, `dvc queue status` lists it neither as queued nor as running
queue_busy() {
  local status finished
  status=$(dvc queue status)
  finished=$(grep -cE '\b(Success|Failed)\b' <<< "$status" || true)
  grep -qE '\b(Queued|Running)\b' <<< "$status" || [ "$finished" -lt "${#queued[@]}" ]
}
while queue_busy; do sleep 10; done
minutes=$(( (SECONDS - start + 30) / 60 ))
succeeded=$(dvc queue status | grep -c Success || true)
if [ "$succeeded" -ne "${#queued[@]}" ]; then
  dvc queue status >&2
  echo "only $succeeded of ${#queued[@]} runs succeeded" >&2
  exit 1
fi
verdicts=$(mygo compare --baseline structure-only --per-relation)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
cat > "$root/bench/results/demo_verdicts.md" <<MD
# The demo's modality ablation as DVC experiments, judged by \`mygo compare\`

Made by \`bench/demo_verdicts.sh\` ($cpu, $(nproc) cores; ${#queued[@]} runs in $minutes min, $jobs at a time):
in a clone of the repository, each set of modalities over seeds $seeds, queued as named experiments,

\`\`\`bash
dvc exp run --queue -n structure-only-s1 -S train.model.use_visual=false -S train.model.use_text=false -S train.seed=1
dvc exp run --queue -n with-text-s1 -S train.model.use_visual=false -S train.seed=1
dvc exp run --queue -n with-images-s1 -S train.model.use_text=false -S train.seed=1
dvc exp run --queue -n all-modalities-s1 -S train.seed=1
# ... the same for each seed
dvc queue start -j $jobs
mygo compare --baseline structure-only --per-relation
\`\`\`

Test MRR per relation against the structure-only runs, Welch's t over seeds:

\`\`\`text
$verdicts
\`\`\`
MD
echo "wrote bench/results/demo_verdicts.md"
