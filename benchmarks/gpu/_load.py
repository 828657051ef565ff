"""Child of `vram.py`: one real load on the GPU, measured three ways.

    python benchmarks/gpu/_load.py MODEL.gguf '{"n_gpu_layers": 33, "n_ctx": 8192, ...}'

Loads with the engine's own `LlamaModel` (no retry with fewer layers), runs
one full batch and one single token so every compute buffer is in use, and
prints JSON: whether it loaded, NVML's used memory before and after (this
process's CUDA context included), and llama.cpp's own buffer report.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def used_mib(handle: object) -> float:
    import pynvml

    return float(pynvml.nvmlDeviceGetMemoryInfo(handle).used) / 2**20


def main() -> None:
    import llama_cpp
    import pynvml

    from localllm.engine.model import LlamaModel, LoadError
    from localllm.engine.trial import parse_load_log
    from localllm.planner.settings import LoadSettings

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    before = used_mib(handle)
    settings = LoadSettings(**json.loads(sys.argv[2]))
    out: dict[str, object] = {"settings": asdict(settings), "nvml_before_mib": before}
    try:
        model = LlamaModel([sys.argv[1]], settings, (), keep_log=None)
    except LoadError as exc:
        out.update(loaded=False, error=str(exc))
        print(json.dumps(out))
        return
    n = min(settings.n_ubatch, model.n_ctx_seq)
    batch = llama_cpp.llama_batch_init(n, 0, 1)
    ok = True
    for size in (n, 1):  # a full ubatch (the compute buffers' peak), then one token
        for i in range(size):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = 1, i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == size - 1
        batch.n_tokens = size
        ok = ok and llama_cpp.llama_decode(model.ctx, batch) == 0
        llama_cpp.llama_memory_seq_rm(model.memory, 0, -1, -1)
    after = used_mib(handle)
    measured = parse_load_log("".join(model.log), settings)
    out.update(
        loaded=True,
        decoded=ok,
        nvml_after_mib=after,
        nvml_delta_mib=after - before,
        buffers={k: v for k, v in asdict(measured).items() if k != "settings"},
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
