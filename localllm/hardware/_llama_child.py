"""Run as a child process by `llama_build.query_llama_build`: prints one JSON line.

Kept apart so the parent never loads llama.cpp (slow to import, and a broken
build may abort the process). Only the standard library and llama_cpp here.
"""

from __future__ import annotations

import ctypes
import json
import sys
from typing import Any

_DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}


def _devices(lib: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Backends and devices as ggml registered them: what llama.cpp can really use."""
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_get.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for name in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    size_p = ctypes.POINTER(ctypes.c_size_t)
    lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, size_p, size_p]

    backends = [
        lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)).decode(errors="replace")
        for i in range(lib.ggml_backend_reg_count())
    ]
    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        devices.append(
            {
                "name": lib.ggml_backend_dev_name(dev).decode(errors="replace"),
                "description": lib.ggml_backend_dev_description(dev).decode(errors="replace"),
                "type": _DEVICE_TYPES.get(lib.ggml_backend_dev_type(dev), "unknown"),
                "memory_free": free.value,
                "memory_total": total.value,
            }
        )
    return backends, devices


def main() -> None:
    try:
        import llama_cpp
    except ImportError as exc:
        print(json.dumps({"installed": False, "error": str(exc)}))
        return
    answer: dict[str, Any] = {
        "installed": True,
        "version": getattr(llama_cpp, "__version__", None),
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace"),
        "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
    }
    try:
        from llama_cpp import _ggml

        answer["backends"], answer["devices"] = _devices(_ggml.libggml)
        # llama.cpp counts an RPC backend as GPU offload; here it means a GPU of this
        # machine (RPC workers are reported apart, as the `rpc` backend).
        answer["gpu_offload"] = any(d["type"] in ("gpu", "igpu") for d in answer["devices"])
    except (ImportError, AttributeError, OSError) as exc:
        answer["devices_error"] = str(exc)
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
