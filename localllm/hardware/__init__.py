"""Hardware detection: what this machine and its llama.cpp build can run.

`detect_live()` probes this machine; `detect(host, nvml, llama_answer)` does the
same from explicit inputs (recorded profiles in tests). Both return one frozen
`HardwareReport`, whose `to_dict()` is the versioned JSON of `localllm hw --json`.
"""

from localllm.hardware.detect import detect, detect_live
from localllm.hardware.host import Host, LiveHost, MemoryCounters
from localllm.hardware.report import (
    SCHEMA_VERSION,
    CpuReport,
    GpuReport,
    HardwareReport,
    LlamaBuildReport,
    LlamaDevice,
    MemoryReport,
    NumaNode,
    ReportFormatError,
)

__all__ = [
    "SCHEMA_VERSION",
    "CpuReport",
    "GpuReport",
    "HardwareReport",
    "Host",
    "LiveHost",
    "LlamaBuildReport",
    "LlamaDevice",
    "MemoryCounters",
    "MemoryReport",
    "NumaNode",
    "ReportFormatError",
    "detect",
    "detect_live",
]
