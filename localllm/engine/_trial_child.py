"""Child process of `trial.trial_load`: load a model, create a context, print the log.

Input (stdin): JSON {"path", "settings": LoadSettings fields, "no_alloc": bool}.
Output (stdout): JSON {"model": bool, "context": bool, "log": str}.
Only the standard library and llama_cpp: a crash here costs nothing but this process.
"""

from __future__ import annotations

import ctypes
import json
import sys
from typing import Any

GGML_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}
_KEEP_ALIVE: list[object] = []


def capture_log() -> list[str]:
    """Route llama.cpp's log into the returned list (for the buffer sizes it reports)."""
    import llama_cpp

    lines: list[str] = []

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def collect(level: int, text: bytes, user: object) -> None:
        lines.append(text.decode(errors="replace"))

    _KEEP_ALIVE.append(collect)  # ctypes must keep the callback object alive
    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    return lines


def main() -> None:
    request: dict[str, Any] = json.load(sys.stdin)
    import llama_cpp

    lines = capture_log()
    llama_cpp.llama_backend_init()
    s = request["settings"]
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = s["n_gpu_layers"]
    if request["no_alloc"]:
        mp.no_alloc = True
        mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE  # no_alloc aborts with mmap
    model = llama_cpp.llama_model_load_from_file(request["path"].encode(), mp)
    context = None
    if model:
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = s["n_ctx"]
        cp.n_batch = s["n_batch"]
        cp.n_ubatch = s["n_ubatch"]
        cp.n_seq_max = s["n_seq_max"]
        cp.flash_attn_type = 1 if s["flash_attn"] else 0
        cp.type_k = GGML_TYPES[s["type_k"]]
        cp.type_v = GGML_TYPES[s["type_v"]]
        cp.swa_full = False
        cp.n_threads = cp.n_threads_batch = max(1, s["n_threads"])
        context = llama_cpp.llama_init_from_model(model, cp)
    json.dump({"model": bool(model), "context": bool(context), "log": "".join(lines)}, sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
