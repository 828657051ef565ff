"""Child of planner_accuracy.py: load a model for real, fill its context, report memory.

Uses llama.cpp's low-level API (as localllm's engine does): mmap load, one
context, the prompt decoded in n_batch chunks with one sequence.
argv: JSON {"path", "n_ctx", "n_ubatch", "flash_attn", "type_k", "type_v", "prompt_tokens"}.
Prints JSON {"rss_base", "rss_loaded", "rss_filled", "log", "seconds"}.
"""

from __future__ import annotations

import json
import os
import sys
import time

import llama_cpp
import psutil

from localllm.engine.llamalog import capture_log
from localllm.engine.params import GGML_TYPES

N_BATCH = 2048


def main() -> None:
    req = json.loads(sys.argv[1])
    lines = capture_log()
    llama_cpp.llama_backend_init()
    proc = psutil.Process()
    rss_base = proc.memory_info().rss
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(req["path"].encode(), mp)
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = req["n_ctx"]
    cp.n_batch = N_BATCH
    cp.n_ubatch = req["n_ubatch"]
    cp.flash_attn_type = 1 if req["flash_attn"] else 0
    cp.type_k = GGML_TYPES[req["type_k"]]
    cp.type_v = GGML_TYPES[req["type_v"]]
    cp.swa_full = False
    cp.n_threads = cp.n_threads_batch = psutil.cpu_count(logical=False) or 1
    ctx = llama_cpp.llama_init_from_model(model, cp)
    if not model or not ctx:
        sys.exit("load failed: " + "".join(list(lines)[-3:]))
    rss_loaded = proc.memory_info().rss
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    tokens = [300 + (i * 7919) % (n_vocab - 300) for i in range(req["prompt_tokens"])]
    start = time.perf_counter()
    for i in range(0, len(tokens), N_BATCH):
        chunk = tokens[i : i + N_BATCH]
        array = (llama_cpp.llama_token * len(chunk))(*chunk)
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(array, len(chunk))) != 0:
            sys.exit(f"decode failed at token {i}")
    seconds = time.perf_counter() - start
    rss_filled = proc.memory_info().rss
    print(json.dumps({"rss_base": rss_base, "rss_loaded": rss_loaded, "rss_filled": rss_filled,
                      "log": "".join(lines), "seconds": seconds}))  # fmt: skip
    sys.stdout.flush()
    os._exit(0)  # skip llama.cpp's teardown: the OS frees it all, and quietly


if __name__ == "__main__":
    main()
