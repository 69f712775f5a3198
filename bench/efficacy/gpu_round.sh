#!/usr/bin/env bash
# One device-tool call: two continuations of the 9-block candidate trained side by side on the lent GPU (the tiny
# model leaves an H100 mostly idle, so two runs cost little more than one), saved under $OUT every 2 minutes.
# Prepare with gpu_prepare.sh, then: run(command="bash bench/efficacy/gpu_round.sh", carry=[".gpu"],
# timeout_s=560). Back here, gate each save on held-out seeds before anything is promoted:
#   python bench/efficacy/run.py --threads 2 --sections gate --gate-seeds 1,2,3,4,5,6,7,8,9 \
#       --checkpoint /work/.device/.../gpu_lr1e-4.safetensors --out /tmp/gate_a
# 8 files come back at most: two runs x (weights, config JSON, log) and the combined output. MINUTES (default 6.5)
# is each run's training time after its compile (a minute or two); DEVICE, BATCH and COMPILE= (empty: eager) let
# the script be tried here on the CPU: DEVICE=cpu BATCH=2 MINUTES=0.05 COMPILE= bash bench/efficacy/gpu_round.sh
set -u
cd "$(dirname "$0")/../.."
export COMFYUI_PATH="$PWD/.gpu/ComfyUI" PYTHONUNBUFFERED=1
out="${OUT:-bench/out/gpu_round}"
mkdir -p "$out"
minutes="${MINUTES:-6.5}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
common=(--device "${DEVICE:-cuda}" --init bench/efficacy/candidate/tiny_wan_shapes_9block.safetensors --layers 9
        --data batched --batch "${BATCH:-256}" --decay cosine --ema 0.9995 --focus-fraction 0.5 --focus-sigma 0.85 --bf16
        ${COMPILE---compile} --threads 4
        --minutes "$minutes" --save-every 120 --out-dir "$out")
python3 bench/efficacy/train.py "${common[@]}" --name gpu_lr1e-4 --lr 1e-4 --seed 21 > "$out/round.out" 2>&1 &
python3 bench/efficacy/train.py "${common[@]}" --name gpu_lr3e-4 --lr 3e-4 --seed 22 > "$out/round_b.out" 2>&1 &
wait
cat "$out/round_b.out" >> "$out/round.out" && rm -f "$out/round_b.out"
tail -n 3 "$out"/*.log
