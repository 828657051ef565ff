"""LoadSettings to llama.cpp's model and context parameter structs.

Shared by the worker's real loads and the trial child's `no_alloc` loads, so
a trial measures exactly what the worker will load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GGML_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}


def model_params(
    llama_cpp: Any, settings: dict[str, Any], no_alloc: bool = False, devices: Sequence[int] = ()
) -> Any:
    """`devices`: ggml device handles to load onto, in order (empty: llama.cpp's choice)."""
    import ctypes

    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = settings["n_gpu_layers"]
    if devices:  # NULL-terminated; the struct keeps the arrays alive
        handles = (ctypes.c_void_p * (len(devices) + 1))(*devices, None)
        mp.devices = ctypes.cast(handles, dict(mp._fields_)["devices"])
        mp._keep_devices = handles
    split = settings.get("tensor_split") or ()
    if split:
        n = max(len(split), llama_cpp.LLAMA_MAX_DEVICES)  # llama.cpp reads that many
        shares = (ctypes.c_float * n)(*split)
        mp.tensor_split = shares
        mp._keep_split = shares
    fallback = int(settings.get("fallback", 0))
    if fallback >= 1:  # no weight repacking (llama.cpp's extra buffer types)
        mp.use_extra_bufts = False
    if no_alloc or fallback >= 2:
        mp.no_alloc = no_alloc
        mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE  # no_alloc aborts with mmap
    return mp


def context_params(llama_cpp: Any, settings: dict[str, Any]) -> Any:
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = settings["n_ctx"]
    cp.n_batch = settings["n_batch"]
    cp.n_ubatch = settings["n_ubatch"]
    cp.n_seq_max = settings["n_seq_max"]
    cp.flash_attn_type = 1 if settings["flash_attn"] else 0
    cp.type_k = GGML_TYPES[settings["type_k"]]
    cp.type_v = GGML_TYPES[settings["type_v"]]
    # llama-cpp-python's Llama sets True; here only where the planner chose it (`rollback`)
    cp.swa_full = bool(settings.get("swa_full", False))
    cp.n_threads = cp.n_threads_batch = max(1, settings["n_threads"])
    return cp
