#!/usr/bin/env bash
# Stage what a GPU training round (gpu_round.sh) needs that the working tree lacks, then prove it on this CPU.
# The device tool's machine has torch (CUDA), einops, numpy, psutil, pillow and tqdm, but no ComfyUI: copy
# ComfyUI's comfy/ package (the model classes train.py builds; about 13 MB) into .gpu/, which git ignores and the
# device tool's `carry` takes along. Nothing of ComfyUI is committed.
#   bash bench/efficacy/gpu_prepare.sh            # COMFYUI_PATH or ~/ComfyUI
set -euo pipefail
cd "$(dirname "$0")/../.."
src="${COMFYUI_PATH:-$HOME/ComfyUI}"
[ -f "$src/comfy/ldm/wan/model.py" ] || { echo "no ComfyUI checkout at $src (set COMFYUI_PATH)"; exit 1; }
rm -rf .gpu/ComfyUI && mkdir -p .gpu/ComfyUI
(cd "$src" && tar cf - --exclude=__pycache__ comfy) | (cd .gpu/ComfyUI && tar xf -)
echo "staged $(du -sh .gpu | cut -f1) from $src ($(cd "$src" && git describe --tags 2>/dev/null || echo unknown))"
# smoke: the staged copy alone runs the round's code path (batched data) for a few steps here
smoke=$(mktemp -d)
COMFYUI_PATH="$PWD/.gpu/ComfyUI" python bench/efficacy/train.py --device cpu --data batched --batch 4 \
    --minutes 0.05 --init bench/efficacy/candidate/tiny_wan_shapes_9block.safetensors --layers 9 \
    --name smoke --out-dir "$smoke" --threads 2 > "$smoke/out" 2>&1 || { cat "$smoke/out"; exit 1; }
python - "$smoke" <<'PY'
import json, sys
meta = json.load(open(f"{sys.argv[1]}/smoke.json"))
assert meta["step"] >= 1 and meta["data"] == "batched", meta
print(f"smoke ok: {meta['step']} steps on the staged copy")
PY
rm -rf "$smoke"
