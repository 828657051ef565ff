#!/usr/bin/env bash
# On the GPU machine, after setup.sh: the GPU measurements; results land in $OUT.
#   benchmarks/gpu/run.sh hw        # localllm hw --json, and a full-offload smoke test
#   benchmarks/gpu/run.sh vram ...  # benchmarks/gpu/vram.py with these arguments
#   benchmarks/gpu/run.sh speed ... # benchmarks/concurrency.py on the GPU, these arguments
#   benchmarks/gpu/run.sh draft ... # benchmarks/draft.py on the GPU, these arguments
#   benchmarks/gpu/run.sh vision    # benchmarks/gpu/vision.py: images with the projector on the GPU
#   benchmarks/gpu/run.sh step ...  # benchmarks/gpu/step.py: one decode step, bare and the engine's
set -euo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 LOCALLLM_HOME=/tmp/localllm-home
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/gpu-models
step=$1
shift
model() {
    # Random weights (generated, then quantized by llama.cpp): text, so streams have tokens.
    python3 -c 'from pathlib import Path; from benchmarks._models import model_file
print(model_file(Path("/tmp/gpu-models"), small=False))'
}
case "$step" in
hw)
    python3 -m localllm hw --json > "$OUT/hw.json"
    python3 -m localllm hw
    nvidia-smi --query-gpu=name,memory.total,memory.used,memory.free --format=csv
    ;;
vram)
    python3 benchmarks/gpu/vram.py --workdir /tmp/gpu-models --out "$OUT/vram.json" "$@"
    ;;
speed)
    model
    touch /tmp/speed-stamp
    python3 benchmarks/concurrency.py --model /tmp/gpu-models/llama-1B-Q4_K_M.gguf \
        --llama-server /tmp/llama-server --batched-bench /tmp/llama-batched-bench \
        --no-bundled --workdir /tmp/gpu-models "$@" | tee "$OUT/speed.md"
    # only this run's files: $OUT takes a limited number back
    find benchmarks/results -newer /tmp/speed-stamp -name 'concurrency-*' -exec cp {} "$OUT/" \;
    ;;
step)
    model
    python3 benchmarks/gpu/step.py --model /tmp/gpu-models/llama-1B-Q4_K_M.gguf \
        --out "$OUT/step.md" "$@" 2> "$OUT/step.log" || { tail -50 "$OUT/step.log"; exit 1; }
    cat "$OUT/step.md"
    ;;
draft)
    python3 benchmarks/draft.py --ngl 99 --llama-server /tmp/llama-server \
        --workdir /tmp/gpu-models --tag h200 "$@" | tee "$OUT/draft.md"
    cp benchmarks/results/draft-h200.md "$OUT/" 2>/dev/null || true
    ;;
vision)
    python3 benchmarks/gpu/vision.py --out "$OUT/vision-h200.md" 2> "$OUT/vision.log"
    ;;
esac
