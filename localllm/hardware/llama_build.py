"""What the installed llama.cpp build can use: its backends, devices, CPU features.

The CPU may have AVX-512 while the build was compiled without it, and a GPU
is idle if the build has no backend for it; so the build is probed apart from
the hardware. The query runs `_llama_child` in a child process: importing
llama_cpp costs a few hundred milliseconds, and a broken build may abort.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from localllm.hardware.report import CpuReport, GpuReport, LlamaBuildReport, LlamaDevice

# llama.cpp's feature names -> the CPU flag each one needs (see cpu.LLAMA_FLAGS).
_FEATURE_FLAG = {
    "sse3": "sse3", "ssse3": "ssse3", "avx": "avx", "avx2": "avx2", "f16c": "f16c",
    "fma": "fma", "avx512": "avx512f", "avx512_vnni": "avx512_vnni",
    "avx512_bf16": "avx512_bf16", "avx_vnni": "avx_vnni", "amx_int8": "amx_int8",
    "neon": "neon", "fp16_va": "fp16", "dotprod": "dotprod", "matmul_int8": "i8mm",
    "sve": "sve",
}  # fmt: skip
# CPU flags worth a rebuild when the build leaves them unused.
_SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8",
                "dotprod", "i8mm", "sve")  # fmt: skip
# The CMake switch that builds the backend for each GPU kind.
_BUILD_HINT = {
    "cuda": 'CMAKE_ARGS="-DGGML_CUDA=on"',
    "metal": 'CMAKE_ARGS="-DGGML_METAL=on"',
    "rocm": 'CMAKE_ARGS="-DGGML_HIP=on"',
    "sycl": 'CMAKE_ARGS="-DGGML_SYCL=on"',
}


def query_llama_build(python: str = sys.executable, timeout_s: float = 60.0) -> Mapping[str, Any]:
    """Ask a child process what the installed build offers (the raw JSON answer)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return {"installed": False, "error": "the llama-cpp-python package is not installed"}
    try:
        done = subprocess.run(
            [python, "-m", "localllm.hardware._llama_child"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"installed": True, "error": f"loading llama.cpp took over {timeout_s:.0f} s"}
    except OSError as exc:
        return {"installed": True, "error": f"could not start the llama.cpp probe: {exc}"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {
            "installed": True,
            "error": f"loading llama.cpp failed (exit code {done.returncode}): {last}",
        }
    try:
        answer: Mapping[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"installed": True, "error": "the llama.cpp probe printed something unexpected"}
    return answer


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """`CPU : AVX = 1 | AVX2 = 1 | CUDA : ARCHS = 900 |` -> {"cpu": {"avx": "1", ...}, ...}."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for part in text.split("|"):
        part = part.strip()
        if " : " in part:
            name, _, part = part.partition(" : ")
            current = sections.setdefault(name.strip().lower(), {})
        key, sep, value = part.partition("=")
        if current is not None and sep and key.strip():
            current[key.strip().lower()] = value.strip()
    return sections


def build_llama_report(answer: Mapping[str, Any]) -> tuple[LlamaBuildReport, list[str]]:
    """Turn the child's answer (live or recorded) into the report section and notes."""
    notes: list[str] = []
    if answer.get("error"):
        notes.append(f"llama.cpp: {answer['error']}")
    if not answer.get("installed"):
        empty = LlamaBuildReport(False, None, None, (), (), False)
        return empty, notes
    system_info = str(answer.get("system_info") or "")
    sections = parse_system_info(system_info)
    cpu_features = tuple(k for k, v in sections.get("cpu", {}).items() if v == "1")
    backends = [str(b).lower() for b in answer.get("backends") or ()]
    backends += [name for name in sections if name not in backends]
    devices = tuple(_device(d) for d in answer.get("devices") or () if isinstance(d, Mapping))
    report = LlamaBuildReport(
        installed=True,
        version=str(answer["version"]) if answer.get("version") else None,
        system_info=system_info or None,
        backends=tuple(backends),
        cpu_features=cpu_features,
        gpu_offload=bool(answer.get("gpu_offload")),
        devices=devices,
    )
    return report, notes


def _device(data: Mapping[str, Any]) -> LlamaDevice:
    return LlamaDevice(
        name=str(data.get("name", "")),
        description=str(data.get("description", "")),
        type=str(data.get("type", "unknown")),
        memory_free=int(data.get("memory_free") or 0),
        memory_total=int(data.get("memory_total") or 0),
    )


def can_drive(build: LlamaBuildReport, gpu: GpuReport) -> bool:
    """Whether this build has a backend for `gpu` (Vulkan drives every vendor)."""
    if not build.gpu_offload:
        return False
    return gpu.backend in build.backends or "vulkan" in build.backends


def gpu_notes(build: LlamaBuildReport, gpus: Sequence[GpuReport]) -> list[str]:
    """Say why a GPU that is present will sit idle, and how to fix it."""
    notes = []
    for gpu in gpus:
        if gpu.usable_by_llama:
            continue
        hint = _BUILD_HINT.get(gpu.backend)
        if build.installed:
            why = f"the installed llama.cpp build has no {gpu.backend.upper()} backend"
            fix = f"; reinstall llama-cpp-python with {hint}" if hint else ""
        else:
            why = "llama.cpp is not installed"
            fix = f"; install llama-cpp-python with {hint}" if hint else ""
        notes.append(f"GPU {gpu.index} ({gpu.name}) will not be used: {why}{fix}")
    return notes


def cpu_feature_notes(build: LlamaBuildReport, cpu: CpuReport) -> list[str]:
    """Mismatches between what the CPU has and what the build was compiled for."""
    if not build.installed or not build.cpu_features or not cpu.flags:
        return []
    used = {_FEATURE_FLAG[f] for f in build.cpu_features if f in _FEATURE_FLAG}
    notes = []
    unused = [f for f in _SPEED_FLAGS if f in cpu.flags and f not in used]
    if "avx512_vnni" in used and "avx_vnni" in unused:
        unused.remove("avx_vnni")  # the AVX-512 form covers it
    if unused:
        notes.append(
            f"llama.cpp: this CPU has {', '.join(unused)}, unused by the installed build; "
            "building llama-cpp-python on this machine may make inference faster"
        )
    missing = sorted(f for f in used if f not in cpu.flags)
    if missing:
        notes.append(
            f"llama.cpp: the installed build uses {', '.join(missing)}, which this CPU lacks; "
            "it may crash with an illegal instruction"
        )
    return notes
