"""llama.cpp's RPC backend through ctypes: serve this machine's devices, use another's.

llama-cpp-python dropped its own `rpc_servers` parameter, so these are the C
functions of `ggml-rpc.h` (in `libggml-rpc`, present when the wheel was built with
`-DGGML_RPC=ON`) and of ggml's device registry. Only processes that load models or
serve them import this module (it loads llama.cpp's libraries).

llama.cpp aborts the calling process when an RPC server cannot be reached or
stops answering, so the server never calls these itself: model workers do (a dead
host ends that worker, and the server names the host), and `remote.probe` asks in
a child process.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localllm.errors import LocalLLMError

DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}


class RpcUnavailable(LocalLLMError):
    """This llama.cpp build has no RPC backend."""


@dataclass(frozen=True)
class Device:
    """One ggml device: a local CPU or GPU, or one a worker serves (name `RPCn`)."""

    name: str
    description: str
    kind: str
    free: int
    total: int
    handle: int
    """The `ggml_backend_dev_t` pointer (valid in this process only)."""


@functools.cache
def _libs() -> tuple[Any, Any, Any | None]:
    """(libggml, libggml-base, libggml-rpc or None), as llama_cpp loaded them."""
    import llama_cpp

    folder = Path(llama_cpp.__file__).parent / "lib"

    def find(stem: str) -> Path | None:
        for name in (f"lib{stem}.so", f"lib{stem}.dylib", f"{stem}.dll"):
            if (folder / name).exists():
                return folder / name
        return None

    ggml_path, base_path = find("ggml"), find("ggml-base")
    if ggml_path is None or base_path is None:
        raise RpcUnavailable(f"llama.cpp's libraries are not in {folder}")
    ggml, base = ctypes.CDLL(str(ggml_path)), ctypes.CDLL(str(base_path))
    rpc_path = find("ggml-rpc")
    rpc = ctypes.CDLL(str(rpc_path)) if rpc_path else None
    _declare(ggml, base, rpc)
    return ggml, base, rpc


def _declare(ggml: Any, base: Any, rpc: Any | None) -> None:
    p, size, char = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
    ggml.ggml_backend_dev_count.restype = size
    ggml.ggml_backend_dev_get.restype, ggml.ggml_backend_dev_get.argtypes = p, [size]
    ggml.ggml_backend_register.argtypes = [p]
    for name in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(base, name).restype, getattr(base, name).argtypes = char, [p]
    base.ggml_backend_dev_type.argtypes = [p]
    base.ggml_backend_dev_memory.argtypes = [p, ctypes.POINTER(size), ctypes.POINTER(size)]
    base.ggml_backend_reg_dev_count.restype, base.ggml_backend_reg_dev_count.argtypes = size, [p]
    base.ggml_backend_reg_dev_get.restype = p
    base.ggml_backend_reg_dev_get.argtypes = [p, size]
    if rpc is not None:
        rpc.ggml_backend_rpc_add_server.restype = p
        rpc.ggml_backend_rpc_add_server.argtypes = [char]
        rpc.ggml_backend_rpc_start_server.argtypes = [char, char, size, size, p]


def available() -> bool:
    """Whether this build can serve and use RPC workers."""
    try:
        return _libs()[2] is not None
    except (OSError, RpcUnavailable):
        return False


def _rpc() -> Any:
    rpc = _libs()[2]
    if rpc is None:
        raise RpcUnavailable(
            "this llama.cpp build has no RPC backend: reinstall llama-cpp-python with "
            'CMAKE_ARGS="-DGGML_RPC=ON" (the README\'s install command does)'
        )
    return rpc


def _device(handle: int) -> Device:
    _, base, _ = _libs()
    free, total = ctypes.c_size_t(), ctypes.c_size_t()
    base.ggml_backend_dev_memory(handle, ctypes.byref(free), ctypes.byref(total))
    return Device(
        name=base.ggml_backend_dev_name(handle).decode(),
        description=base.ggml_backend_dev_description(handle).decode(),
        kind=DEVICE_TYPES.get(base.ggml_backend_dev_type(handle), "other"),
        free=free.value,
        total=total.value,
        handle=handle,
    )


def local_devices() -> list[Device]:
    """This process's ggml devices (the CPU and the GPUs of the build), not RPC ones."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    ggml, base, _ = _libs()
    handles = [ggml.ggml_backend_dev_get(i) for i in range(ggml.ggml_backend_dev_count())]
    # Workers registered earlier in this process are skipped by name before anything asks
    # them (their memory is a question over the network, and they may be gone).
    mine = [h for h in handles if not base.ggml_backend_dev_name(h).startswith(b"RPC")]
    return [_device(h) for h in mine]


def connect(endpoint: str) -> list[Device]:
    """The devices the worker at `endpoint` serves, registered with ggml so models
    can load onto them. Aborts the process if the worker cannot be reached."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    ggml, base, _ = _libs()
    reg = _rpc().ggml_backend_rpc_add_server(endpoint.encode())
    if not reg:
        raise LocalLLMError(f"the RPC worker at {endpoint} serves no devices")
    ggml.ggml_backend_register(reg)
    return [
        _device(base.ggml_backend_reg_dev_get(reg, i))
        for i in range(base.ggml_backend_reg_dev_count(reg))
    ]


def serve(endpoint: str, devices: Sequence[Device], threads: int, cache: Path | None) -> None:
    """Serve `devices` at `endpoint` until the process is stopped (never returns).

    `cache`: a folder where the worker keeps tensors it was sent, by hash, so the
    next load of the same model does not send the weights again."""
    rpc = _rpc()
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    handles = (ctypes.c_void_p * len(devices))(*(d.handle for d in devices))
    # The C loop never returns to Python: let Ctrl-C and SIGTERM end the process.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    rpc.ggml_backend_rpc_start_server(
        endpoint.encode(),
        str(cache).encode() if cache is not None else None,
        max(1, threads),
        len(devices),
        handles,
    )
    os._exit(1)  # only returns when it could not listen (it printed why)
