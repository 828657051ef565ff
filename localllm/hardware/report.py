"""The hardware report: immutable facts about this machine, and its JSON form.

`localllm hw --json` prints `HardwareReport.to_dict()`; the planner and the API
read the same shape back with `HardwareReport.from_dict()`. The schema is
versioned by `SCHEMA_VERSION`; a reader refuses a report newer than it knows.

Conventions of the JSON form:

- sizes are integers in bytes; `null` means "not known", never zero;
- `notes` holds one sentence per thing that could not be detected or looks
  wrong, so a missing driver is a reason in the report and never an exception;
- GPU `index` is the device number llama.cpp will use (after
  `CUDA_VISIBLE_DEVICES`), `physical_index` the driver's own number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from localllm.errors import LocalLLMError

SCHEMA_VERSION = 1


class ReportFormatError(LocalLLMError):
    """A hardware report read back from JSON is malformed or too new."""


@dataclass(frozen=True)
class CpuReport:
    brand: str
    architecture: str
    """Normalised: `x86_64` or `arm64` (others verbatim)."""
    sockets: int
    physical_cores: int
    logical_cores: int
    usable_cpus: int
    """Logical CPUs this process may run on (affinity and cgroup quota)."""
    performance_cores: int | None
    """Physical performance cores, when the OS tells core kinds apart."""
    efficiency_cores: int | None
    core_kinds_source: str | None
    """Where the performance/efficiency split came from, e.g. `sysfs:cpu_capacity`."""
    flags: tuple[str, ...]
    """The instruction-set extensions that matter to llama.cpp, canonical lower-case names."""
    recommended_threads: int
    """Physical performance cores, capped by `usable_cpus`: llama.cpp decodes
    slower on hyperthreads and efficiency cores."""


@dataclass(frozen=True)
class NumaNode:
    id: int
    cpus: tuple[int, ...]
    memory_total: int | None
    memory_free: int | None


@dataclass(frozen=True)
class MemoryReport:
    total: int
    """Physical RAM, or the cgroup limit when that is lower."""
    available: int
    """What can be allocated without swapping (page cache counts as available)."""
    swap_total: int
    swap_free: int
    cgroup_limit: int | None
    """The container's memory limit when one is set."""
    numa_nodes: tuple[NumaNode, ...]


@dataclass(frozen=True)
class GpuReport:
    index: int
    """The device number llama.cpp sees (CUDA_VISIBLE_DEVICES applied)."""
    vendor: str
    """`nvidia`, `apple`, `amd` or `intel`."""
    name: str
    backend: str
    """The llama.cpp backend that drives this GPU: `cuda`, `metal`, `rocm`, `vulkan`, `sycl`."""
    memory_total: int
    memory_free: int
    memory_used: int
    unified_memory: bool
    """True when the GPU shares system RAM (Apple Silicon): its memory is not extra."""
    usable_by_llama: bool
    """Whether the installed llama.cpp build has a backend for this GPU."""
    physical_index: int | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
    compute_capability: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None


@dataclass(frozen=True)
class LlamaDevice:
    """A device as ggml registered it: what llama.cpp itself will use."""

    name: str
    """ggml's name, e.g. `CUDA0`, `Metal`, `CPU`."""
    description: str
    type: str
    """`cpu`, `gpu`, `igpu` or `accel`."""
    memory_free: int
    memory_total: int


@dataclass(frozen=True)
class LlamaBuildReport:
    installed: bool
    version: str | None
    system_info: str | None
    """`llama_print_system_info()` verbatim."""
    backends: tuple[str, ...]
    """Lower-case backend names the build contains, e.g. `("cuda", "cpu")`."""
    cpu_features: tuple[str, ...]
    """What the build was compiled with for the CPU, as llama.cpp names it (`avx2`, `repack`...)."""
    gpu_offload: bool
    """`llama_supports_gpu_offload()`: false for a CPU-only build."""
    devices: tuple[LlamaDevice, ...] = ()


@dataclass(frozen=True)
class HardwareReport:
    os: str
    os_release: str
    cpu: CpuReport
    memory: MemoryReport
    gpus: tuple[GpuReport, ...]
    llama: LlamaBuildReport
    notes: tuple[str, ...] = ()
    schema_version: int = field(default=SCHEMA_VERSION)

    @property
    def gpu_memory_total(self) -> int:
        """Dedicated GPU memory llama.cpp can offload to (unified memory excluded)."""
        return sum(g.memory_total for g in self.gpus if g.usable_by_llama and not g.unified_memory)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring for its conventions)."""
        data = asdict(self)
        data = {"schema_version": data.pop("schema_version"), **data}
        return {key: _lists(value) for key, value in data.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HardwareReport:
        """Read a report back; raises `ReportFormatError` with what is wrong."""
        try:
            version = int(data["schema_version"])
            if version > SCHEMA_VERSION:
                raise ReportFormatError(
                    f"hardware report schema {version} is newer than this localllm "
                    f"understands ({SCHEMA_VERSION}); upgrade localllm"
                )
            cpu = dict(data["cpu"])
            cpu["flags"] = tuple(cpu["flags"])
            memory = dict(data["memory"])
            memory["numa_nodes"] = tuple(
                NumaNode(**{**n, "cpus": tuple(n["cpus"])}) for n in memory["numa_nodes"]
            )
            llama = dict(data["llama"])
            llama["backends"] = tuple(llama["backends"])
            llama["cpu_features"] = tuple(llama["cpu_features"])
            llama["devices"] = tuple(LlamaDevice(**d) for d in llama.get("devices", ()))
            return cls(
                os=str(data["os"]),
                os_release=str(data["os_release"]),
                cpu=CpuReport(**cpu),
                memory=MemoryReport(**memory),
                gpus=tuple(GpuReport(**g) for g in data["gpus"]),
                llama=LlamaBuildReport(**llama),
                notes=tuple(data.get("notes", ())),
                schema_version=version,
            )
        except ReportFormatError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportFormatError(f"not a valid hardware report: {exc!r}") from exc


def _lists(value: object) -> object:
    """Tuples become lists so the dict is exactly what `json.loads` gives back."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value
