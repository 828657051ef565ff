"""Ask llama.cpp itself how much memory a model will take, without allocating it.

A trial load sets `no_alloc`, so llama.cpp builds the model and the context
and sizes every buffer but allocates nothing. It only needs the file's header:
a sparse file holding the first bytes of a remote model gives the same numbers
(see `gguf.remote.sparse_copy`), so the exact memory of a model is known before downloading
it. The load runs in a child process: llama.cpp aborts on some malformed files.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from localllm.engine.llamalog import crash_reason, last_reason
from localllm.errors import LocalLLMError
from localllm.planner.settings import LoadSettings, MeasuredBuffers

_MIB = 1 << 20
_MODEL = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")
_KV_TOTAL = re.compile(r"llama_kv_cache: size =\s+([\d.]+) MiB")
_KV_LAYER = re.compile(r"llama_kv_cache: layer\s+\d+: dev = (\S+)")
_KV_BUFFER = re.compile(r"llama_kv_cache:\s+(\S+) KV buffer size =\s+([\d.]+) MiB")
_RECURRENT = re.compile(r"llama_memory_recurrent: size =\s+([\d.]+) MiB")
_COMPUTE = re.compile(r"(\S+) compute buffer size =\s+([\d.]+) MiB")
_OUTPUT = re.compile(r"(\S+)\s+output buffer size =\s+([\d.]+) MiB")
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")


class TrialError(LocalLLMError):
    """llama.cpp could not load the model or create its context."""


def _mib(value: str) -> int:
    return round(float(value) * _MIB)


def _sum_by_name(pattern: re.Pattern[str], log: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, size in pattern.findall(log):
        out[name] = out.get(name, 0) + _mib(size)
    return out


def parse_load_log(log: str, settings: LoadSettings | None = None) -> MeasuredBuffers:
    """The buffer sizes in a llama.cpp load log. Defensive: formats change between
    versions, and a line that does not match is simply not counted."""
    kv_devices: dict[str, int] = {}
    for device in _KV_LAYER.findall(log):
        kv_devices[device] = kv_devices.get(device, 0) + 1
    offloaded = _OFFLOADED.search(log)
    return MeasuredBuffers(
        kv_total=sum(_mib(m) for m in _KV_TOTAL.findall(log)),
        kv_layers_by_device=kv_devices,
        recurrent_total=sum(_mib(m) for m in _RECURRENT.findall(log)),
        compute=_sum_by_name(_COMPUTE, log),
        output=_sum_by_name(_OUTPUT, log),
        model=_sum_by_name(_MODEL, log),
        kv_buffers=_sum_by_name(_KV_BUFFER, log),
        offloaded=(int(offloaded.group(1)), int(offloaded.group(2))) if offloaded else None,
        settings=settings,
    )


def trial_load(
    path: Path,
    settings: LoadSettings,
    no_alloc: bool = True,
    timeout_s: float = 120.0,
    python: str = sys.executable,
) -> MeasuredBuffers:
    """Load `path` with `settings` in a child process and return what llama.cpp reported.

    `no_alloc=True` allocates nothing (a header-only sparse file is enough);
    `no_alloc=False` is a real load, used to calibrate the formula model.
    """
    request = {"path": str(path), "settings": asdict(settings), "no_alloc": no_alloc}
    try:
        done = subprocess.run(
            [python, "-m", "localllm.engine._trial_child"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TrialError(f"{path}: llama.cpp took over {timeout_s:.0f} s to size it") from None
    try:
        answer = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = crash_reason(done.stderr)
        code = done.returncode
        raise TrialError(
            f"{path}: llama.cpp died loading the model (exit {code}): {tail}"
        ) from None
    log = str(answer.get("log", ""))
    if not answer.get("model") or not answer.get("context"):
        what = "the model" if not answer.get("model") else "a context for the model"
        reason = last_reason([log])
        raise TrialError(f"{path}: llama.cpp could not create {what}: {reason}")
    return parse_load_log(log, settings)
