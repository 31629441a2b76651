#!/usr/bin/env bash
# Every benchmark whose results are committed under bench/results (CPU; about two hours on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
# CPU_TAG=epyc bench/run_all.sh: the floor and kernel runs of a second CPU kind go to
# bench/results/db15k_cpu_floor_epyc and db15k_cpu_kernels_epyc beside the first kind's
tag=${CPU_TAG:+_$CPU_TAG}
python bench/harness.py --dataset ../shared/data/DB15K --preset db15k \
  --scenarios step,step_no_contrastive,step_before,step_no_visual,step_no_visual_before,step_compiled,eval,eval_loop,breakdown \
  --out bench/results/db15k_cpu
# the step before and after the cheaper dropout, and against its floor (its matrix products alone)
python bench/harness.py --dataset ../shared/data/DB15K --preset db15k --scenarios step_torch_dropout,step_torch_attention,step,floor \
  --steps 3 --out bench/results/db15k_cpu_step
# the step and the evaluation against the machine's peak rate and the step's own products, with the
# befores of each CPU change and bf16, in one run
python bench/harness.py --dataset ../shared/data/DB15K --preset db15k \
  --scenarios peak,step,floor,step_gathered_tokens,step_cat_sequence,step_drawn_masks,step_autograd_attention,step_per_op_adam,step_kv_attention,step_all_slots,step_unfolded,step_system_allocator,step_denormals,step_torch_dropout,step_amp,eval,eval_amp,profile \
  --warmup 4 --steps 3 --out bench/results/db15k_cpu_floor$tag
# the fast CPU kernels against their befores, part by part
python bench/kernels.py --out bench/results/db15k_cpu_kernels$tag
python bench/harness.py --dataset ../shared/data/MKG-W --preset mkgw \
  --scenarios step,step_no_contrastive,step_no_visual,eval,breakdown --out bench/results/mkgw_cpu
# bf16 autocast and torch.compile on this CPU, and whole epochs against the step-based estimate
python bench/harness.py --synthetic 300 --batch-size 256 --scenarios step,step_amp,step_compiled,epoch \
  --out bench/results/cpu_options_synthetic300
python bench/harness.py --synthetic 1000 --scenarios step,epoch --out bench/results/epoch_check_1000
for n in 1000 4000 16000; do
  python bench/harness.py --synthetic $n --preset db15k --steps 1 --scenarios step --memory-limit-gb 20 \
    --out bench/results/scaling_entities_$n
done
python bench/harness.py --synthetic 16000 --preset db15k --steps 1 --scenarios step --memory-limit-gb 20 \
  --encoder-chunk 4096 --out bench/results/scaling_entities_16000_chunk4096
for n in 64000 256000; do      # one pass (out of memory), chunks of 4,096, and a memory budget
  python bench/harness.py --synthetic $n --preset db15k --steps 1 --no-warmup --scenarios step --memory-limit-gb 20 \
    --out bench/results/scaling_entities_$n
  python bench/harness.py --synthetic $n --preset db15k --steps 1 --no-warmup --scenarios step --memory-limit-gb 20 \
    --encoder-chunk 4096 --out bench/results/scaling_entities_${n}_chunk4096
done
python bench/harness.py --synthetic 64000 --preset db15k --steps 1 --no-warmup --scenarios step --memory-limit-gb 20 \
  --memory-budget-gb 5 --out bench/results/scaling_entities_64000_budget5
# data-parallel ranks (torchrun, gloo): per-rank memory with one encoder pass, and at 64k with chunks
python bench/distributed.py --synthetic 16000 --preset db15k --nprocs 1,2 --no-warmup \
  --out bench/results/distributed_16000
python bench/distributed.py --synthetic 64000 --preset db15k --nprocs 2 --encoder-chunk 4096 --no-warmup \
  --out bench/results/distributed_64000_chunk4096
for mn in "4 2" "8 4" "16 8" "32 16"; do
  set -- $mn
  python bench/harness.py --synthetic 4000 --preset db15k --steps 1 --scenarios step -m $1 -n $2 \
    --out bench/results/scaling_tokens_m$1_n$2
done
python bench/tokenize_text.py ../shared/data/DB15K --out bench/results/tokenize_text_db15k.md
python bench/download.py --out bench/results/download.md
python bench/image_tokenizers.py --out bench/results/image_tokenizers.md
python bench/demo_ablation.py --out bench/results/demo_ablation.md
python bench/demo_curves.py --seeds 2024,2 --out bench/results/demo_curves.md
python bench/demo_recipe.py --seeds 2024,1,2,3,4 --out bench/results/demo_recipe.md
python bench/demo_amp.py --out bench/results/demo_amp.md
