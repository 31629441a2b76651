#!/usr/bin/env bash
# The project on a GPU machine as it is (no install, no DVC, offline), in one command that writes
# everything into one folder:
#
#   bench/gpu_check.sh --prepare          # once, on a CPU machine with the project installed:
#                                         # builds gpu_inputs/ (DB15K, its graph and entity tokens)
#   bench/gpu_check.sh OUT                # on the GPU: 9.5 minutes at most (BUDGET)
#   bench/gpu_check.sh --quick OUT        # the short rerun after a fix: about 4 minutes
#   bench/gpu_check.sh --amp OUT          # bf16 against float32 on the demo's curves, 3 seeds
#                                         # (bench/gpu_amp.py; AMP_SEEDS, AMP_EPOCHS; about 2 minutes)
#   TRAIN_MINUTES="0.5 1 2" bench/gpu_check.sh --quick OUT    # ... with longer training runs
#
# The full run: the CUDA tests (pytest tests/test_cuda.py), the harness's CUDA scenarios on the
# DB15K config, each after beside its before (peak matrix rate; the step launched kernel by kernel,
# profiled, and replayed as a CUDA graph; bf16 and fp32; the befores of the model-side changes; the floor;
# the evaluation and its before; the per-part breakdown; the resume state's save and its before;
# the compiled step), then the DB15K recipe
# as real training runs: eagerly (train.cuda_graph false, the before), then with the graphed step
# in two time-boxed pieces (stopped, then resumed from its state file) with its test metrics. Each
# part has its own time limit; a failed part is reported and the rest still run. Without CUDA
# every part that needs it fails with that reason, and the script exits 1 naming them.
#
# OUT receives at most 8 files: log.txt (everything printed, the test output included),
# harness.json/.md, eager_run.json (the eager run's record), and the graphed run's run.json,
# loss.csv and valid.csv (its curves). Each record names the code it measured (bench/version.py).
# With a GPU lent for 15 minutes (its start included): `bench/gpu_check.sh OUT` in one call with
# a 590 s limit; `--amp` in a second call only if the time left allows it (it writes amp_log.txt
# and amp_curves.json, so both calls' files fit one folder).
# Back on the CPU machine, the folder copied under bench/results/:
#   python bench/gpu_report.py bench/results/NAME   # summary.md, valid_mrr.png and verdicts.md
# Environment: PYTHON (default python3), GPU_INPUTS (default gpu_inputs), DATA (for --prepare,
# default ../shared/data/DB15K), DEMO (for --prepare: the demo's kg/ and entity_tokens/, default
# data/processed), TRAIN_MINUTES ("EAGER FIRST SECOND": each run's minutes; "FIRST
# SECOND": the graphed pieces alone), BUDGET (seconds for the whole run, default 570).
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
INPUTS=${GPU_INPUTS:-gpu_inputs}

if [ "${1:-}" = "--prepare" ]; then
    set -e
    DATA=${DATA:-../shared/data/DB15K}
    rm -rf "$INPUTS.tmp" && mkdir -p "$INPUTS.tmp"
    cp -r "$DATA" "$INPUTS.tmp/DB15K"
    # the DB15K recipe over params.yaml, as `dvc exp run -S recipe=db15k` composes it
    "$PYTHON" - "$INPUTS.tmp/params.yaml" <<'EOF'
import sys, yaml
def merge(a, b):
    return {**a, **{k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
                    for k, v in b.items()}}
params = merge(yaml.safe_load(open("params.yaml")), yaml.safe_load(open("conf/recipe/db15k.yaml")))
yaml.safe_dump(params, open(sys.argv[1], "w"), sort_keys=False)
EOF
    P="$INPUTS.tmp/params.yaml"
    "$PYTHON" stages/prepare.py "$INPUTS.tmp/DB15K" "$INPUTS.tmp/kg" --params "$P"
    "$PYTHON" stages/tokenize_text.py "$INPUTS.tmp/kg" "$INPUTS.tmp/text_tokens" --params "$P"
    "$PYTHON" stages/select_tokens.py "$INPUTS.tmp/kg" "$INPUTS.tmp/entity_tokens" \
        --text-dir "$INPUTS.tmp/text_tokens" --params "$P"
    # the demo's prepared graph and tokens, for --amp (the outputs of `make repro`, when present)
    DEMO=${DEMO:-data/processed}
    if [ -d "$DEMO/kg" ] && [ -d "$DEMO/entity_tokens" ]; then
        mkdir -p "$INPUTS.tmp/demo"
        cp -r "$DEMO/kg" "$DEMO/entity_tokens" params.yaml "$INPUTS.tmp/demo/"
    else
        echo "no $DEMO/kg (make repro makes it): the inputs have no demo, so --amp cannot run" >&2
    fi
    "$PYTHON" bench/version.py --write "$INPUTS.tmp/version.json"    # the commit, for the GPU machine's copy
    rm -rf "$INPUTS.tmp/text_tokens" "$INPUTS" && mv "$INPUTS.tmp" "$INPUTS"
    du -sh "$INPUTS"
    exit 0
fi

QUICK=0 AMP=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
if [ "${1:-}" = "--amp" ]; then AMP=1; shift; fi
OUT=${1:?usage: bench/gpu_check.sh [--quick | --amp] OUT   (or --prepare)}
mkdir -p "$OUT"
[ -d "$INPUTS/kg" ] || { echo "$INPUTS/kg is missing: run bench/gpu_check.sh --prepare first" >&2; exit 1; }
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
STATE=${TMPDIR:-/tmp}/mygo_gpu_check_state.pt
EAGER=${TMPDIR:-/tmp}/mygo_gpu_check_eager
FAILED=()
exec > >(tee -a "$OUT/$([ "$AMP" = 1 ] && echo amp_log.txt || echo log.txt)") 2>&1
# the code measured: the commit --prepare recorded, if this is still its code (results and logs say it)
MYGO_BENCH_VERSION=$("$PYTHON" bench/version.py --prepared "$INPUTS/version.json") || MYGO_BENCH_VERSION=unknown
export MYGO_BENCH_VERSION
echo "== code: $MYGO_BENCH_VERSION"

# The whole run keeps within BUDGET seconds (default 570: one device call of at most 600), each
# part within its own limit and what is left after keeping the later parts' share (`within`).
BUDGET=${BUDGET:-570}
STARTED=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - STARTED) )); }
within() {        # within LIMIT RESERVE: LIMIT, or less, so that RESERVE seconds stay for what follows
    local most=$(( $(left) - $2 ))
    if [ "$most" -lt "$1" ]; then echo "$most"; else echo "$1"; fi
}

part() {          # part NAME SECONDS COMMAND...: run with a time limit, report and go on
    local name=$1 limit=$2 started rc
    shift 2
    if [ "$limit" -lt 15 ]; then
        echo "== $name: skipped, $(left) s left of the run's $BUDGET s (BUDGET)"
        FAILED+=("$name (no time left)")
        return
    fi
    echo "== $(date -u +%H:%M:%S) $name (limit ${limit} s): $*"
    started=$(date +%s)
    timeout -k 10 "$limit" "$@"
    rc=$?
    echo "== $name: exit $rc after $(( $(date +%s) - started )) s"
    [ "$rc" -eq 0 ] || FAILED+=("$name (exit $rc)")
}

if [ "$AMP" = 1 ]; then
    [ -d "$INPUTS/demo/kg" ] || { echo "$INPUTS/demo is missing: make repro, then bench/gpu_check.sh --prepare" >&2; exit 1; }
    part amp-curves "${AMP_LIMIT:-300}" "$PYTHON" bench/gpu_amp.py "$INPUTS/demo" "$OUT/amp_curves.json" \
        --seeds ${AMP_SEEDS:-2024 1 2} ${AMP_EPOCHS:+--epochs $AMP_EPOCHS}
    [ "${#FAILED[@]}" -eq 0 ] || { echo "FAILED: ${FAILED[*]}"; exit 1; }
    echo "all parts passed"
    exit 0
fi
part environment "$(within 60 0)" bash -c "nvidia-smi || true; $PYTHON -c 'import torch, platform; print(\"python\", platform.python_version(), \"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"available\", torch.cuda.is_available()); print(torch.cuda.get_device_name() if torch.cuda.is_available() else \"no CUDA device\")'"
part cuda-tests "$(within 180 380)" "$PYTHON" -m pytest tests/test_cuda.py -v -p no:cacheprovider
HARNESS=("$PYTHON" bench/harness.py --dataset "$INPUTS/DB15K" --preset db15k --device cuda)
TRAIN=("$PYTHON" bench/gpu_train.py "$INPUTS/kg" "$INPUTS/entity_tokens" "$INPUTS/params.yaml")
rm -rf "$STATE" "$OUT/run.json" "$EAGER" "$EAGER.pt"
if [ "$QUICK" = 1 ]; then
    part harness "$(within 200 190)" "${HARNESS[@]}" --scenarios step,step_graphed,step_device_decisions,eval,eval_before,resume_save --steps 10 \
        --scenario-timeout 60 --out "$OUT/harness"
else
    # in the order of what matters most, as the budget may stop the harness before its end (what
    # it finished stays in harness.json): the step, its graph and its products' floor against the
    # peak, the evaluation and its before; then the befores of the model-side changes that act
    # on any device: the [ENT]-only last layer (step_all_slots), the [ENT] attention's own backward
    # (step_autograd_attention), the counter masks and the folded attention's own backward
    # (step_drawn_masks), the attention through the query
    # (step_kv_attention, against step_drawn_masks), the token tables projected before gathering
    # (step_gathered_tokens), deciding the encoded slots and the contrastive rows on the host
    # (step_device_decisions); the profile, breakdown, resume save and compiled step last.
    part harness "$(within 400 190)" "${HARNESS[@]}" \
        --scenarios peak,step,step_graphed,floor,eval,eval_before,step_no_visual,step_all_slots,step_autograd_attention,step_drawn_masks,step_kv_attention,step_gathered_tokens,step_device_decisions,step_fp32,profile,breakdown,resume_save,step_compiled \
        --steps 20 --scenario-timeout 100 --out "$OUT/harness"
fi
# the real runs (minutes each; TRAIN_MINUTES="EAGER FIRST SECOND"): eagerly, then graphed in two
# pieces, the second resuming from the first's state file and evaluating the best model on test
# (two numbers: the graphed pieces alone, no eager run)
read -r EAGER_MIN FIRST SECOND <<< "${TRAIN_MINUTES:-$([ "$QUICK" = 1 ] && echo "0.25 0.25 0.5" || echo "0.25 0.4 0.4")}"
[ -n "$SECOND" ] || { SECOND=$FIRST; FIRST=$EAGER_MIN; EAGER_MIN=0; }
# each run's time limit: its minutes and 75 s (start-up, the last epoch, saving), within the budget
# less RESERVE for the runs after it; when the budget cuts the limit, the minutes shrink with it
limit() { within "$(awk "BEGIN{print int($1 * 60 + 75)}")" "$2"; }
minutes() { awk "BEGIN{m = ($2 - 75) / 60; print (m < $1 ? (m > 0.05 ? m : 0.05) : $1)}"; }
if [ "$EAGER_MIN" != 0 ]; then
    L=$(limit "$EAGER_MIN" 150)
    part train-eager "$L" "${TRAIN[@]}" "$EAGER" --state "$EAGER.pt" \
        --set device=cuda eval_every=10 cuda_graph=false --minutes "$(minutes "$EAGER_MIN" "$L")"
    [ -f "$EAGER/run.json" ] && cp "$EAGER/run.json" "$OUT/eager_run.json"
fi
GRAPHED=("${TRAIN[@]}" "$OUT" --state "$STATE" --set device=cuda eval_every=10 cuda_graph=true)
L=$(limit "$FIRST" 75)
part train-piece-1 "$L" "${GRAPHED[@]}" --minutes "$(minutes "$FIRST" "$L")"
L=$(limit "$SECOND" 0)
part train-piece-2 "$L" "${GRAPHED[@]}" --minutes "$(minutes "$SECOND" "$L")" --test
rm -rf "$EAGER" "$EAGER.pt"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "FAILED: ${FAILED[*]}"
    exit 1
fi
echo "all parts passed"
