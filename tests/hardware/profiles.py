"""Five recorded machines, reused by the planner's and the API's tests.

Each function returns a fresh `Recording` (tests may alter their copy):

- `nvidia_laptop`: hybrid Intel i7-13700H (6P+8E), 16 GiB, RTX 4060 Laptop 8 GiB, CUDA build
- `workstation_2x24`: Threadripper 7960X, 128 GiB, two 24 GiB RTX 4090s, CUDA build
- `apple_m2`: MacBook Air M2, 16 GiB unified memory, Metal build
- `xeon_2s_amx`: two Xeon Platinum 8480+ (AVX-512, AMX), 2 NUMA nodes, 512 GiB, CPU build
- `no_nvml`: Ryzen desktop with an NVIDIA card but no NVIDIA driver, CPU build
"""

from __future__ import annotations

from collections.abc import Callable

import pynvml

from localllm.hardware import HardwareReport, MemoryCounters
from tests.hardware.recorded import (
    GIB,
    MIB,
    Core,
    FakeGpu,
    FakeNvml,
    Recording,
    drm_card,
    linux_cpu_files,
    llama_answer,
    numa_files,
    report_of,
    smt_cores,
)

_X86_BASE = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ht syscall nx lm constant_tsc pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 movbe "
    "popcnt aes xsave avx f16c rdrand lahf_lm abm bmi1 avx2 bmi2"
)
_CPU_AVX2 = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
_CPU_AVX512 = _CPU_AVX2 + "AVX512 = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | "
_CPU_TAIL = "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
_CUDA = "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | "
_NO_NVML = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND


def _cpu_device(brand: str, ram: int) -> dict[str, object]:
    return {"name": "CPU", "description": brand, "type": "cpu",
            "memory_free": ram, "memory_total": ram}  # fmt: skip


def nvidia_laptop() -> Recording:
    brand = "13th Gen Intel(R) Core(TM) i7-13700H"
    p_cores = [Core(0, i * 4, (2 * i, 2 * i + 1), 5_000_000) for i in range(6)]
    e_cores = [Core(0, 24 + i, (12 + i,), 3_700_000) for i in range(8)]
    files = linux_cpu_files(brand, _X86_BASE + " avx_vnni", p_cores + e_cores)
    files["/sys/devices/cpu_core/cpus"] = "0-11\n"
    files["/sys/devices/cpu_atom/cpus"] = "12-19\n"
    files.update(numa_files({0: (range(20), 16 * GIB, 9 * GIB)}))
    gpu = FakeGpu("NVIDIA GeForce RTX 4060 Laptop GPU", 8188 * MIB, 412 * MIB, (8, 9),
                  "GPU-5a8d3b52-1c2e-4f6a-9b1d-0e7f3c2a1b00", "00000000:01:00.0")  # fmt: skip
    cuda0 = {"name": "CUDA0", "description": gpu.name, "type": "gpu",
             "memory_free": gpu.total - gpu.used, "memory_total": gpu.total}  # fmt: skip
    return Recording(
        system="Linux",
        machine="x86_64",
        release="Linux-6.8.0-45-generic-x86_64-with-glibc2.39",
        files=files,
        memory=MemoryCounters(16 * GIB - 300 * MIB, 9 * GIB, 4 * GIB, 4 * GIB),
        cpu_counts=(20, 14),
        affinity=20,
        nvml=FakeNvml([gpu]),
        llama=llama_answer(
            _CUDA + _CPU_AVX2 + _CPU_TAIL,
            ["CUDA", "CPU"],
            [cuda0, _cpu_device(brand, 16 * GIB)],
            gpu_offload=True,
        ),
    )


def workstation_2x24() -> Recording:
    brand = "AMD Ryzen Threadripper 7960X 24-Cores"
    # Zen 4 preferred cores boost a little higher: still one kind of core.
    cores = smt_cores(0, 0, 24, 0, 24, 5_300_000)
    cores[:4] = smt_cores(0, 0, 4, 0, 24, 5_450_000)
    flags = _X86_BASE + " avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 avx512_vnni"
    files = linux_cpu_files(brand, flags, cores)
    files.update(numa_files({0: (range(48), 128 * GIB, 110 * GIB)}))
    gpus = [
        FakeGpu("NVIDIA GeForce RTX 4090", 24564 * MIB, 1100 * MIB, (8, 9),
                f"GPU-0d2c7b11-4e3b-4c1d-8a2f-5b6c7d8e9f0{i}", f"00000000:{i + 1:02x}:00.0")
        for i in range(2)
    ]  # fmt: skip
    return Recording(
        system="Linux",
        machine="x86_64",
        release="Linux-6.8.0-45-generic-x86_64-with-glibc2.39",
        files=files,
        memory=MemoryCounters(128 * GIB - 2 * GIB, 110 * GIB, 8 * GIB, 8 * GIB),
        cpu_counts=(48, 24),
        affinity=48,
        nvml=FakeNvml(gpus, driver="560.35.03", cuda=12060),
        llama=llama_answer(_CUDA + _CPU_AVX512 + _CPU_TAIL, ["CUDA", "CPU"], [], True),
    )


_M2_SYSCTL = """\
hw.ncpu: 8
hw.memsize: 17179869184
hw.physicalcpu: 8
hw.logicalcpu: 8
hw.packages: 1
hw.nperflevels: 2
hw.perflevel0.physicalcpu: 4
hw.perflevel0.logicalcpu: 4
hw.perflevel0.name: Performance
hw.perflevel1.physicalcpu: 4
hw.perflevel1.logicalcpu: 4
hw.perflevel1.name: Efficiency
hw.optional.floatingpoint: 1
hw.optional.neon: 1
hw.optional.neon_hpfp: 1
hw.optional.neon_fp16: 1
hw.optional.arm.FEAT_FP16: 1
hw.optional.arm.FEAT_DotProd: 1
hw.optional.arm.FEAT_I8MM: 1
hw.optional.arm.FEAT_BF16: 1
hw.optional.arm.FEAT_SME: 0
machdep.cpu.brand_string: Apple M2
machdep.cpu.core_count: 8
machdep.cpu.thread_count: 8
"""


def apple_m2() -> Recording:
    ram = 16 * GIB
    metal = {"name": "Metal", "description": "Apple M2", "type": "gpu",
             "memory_free": 11453251584, "memory_total": 11453251584}  # fmt: skip
    return Recording(
        system="Darwin",
        machine="arm64",
        release="macOS-14.6.1-arm64-arm-64bit",
        commands={
            "sysctl hw machdep": _M2_SYSCTL,
            "sysctl iogpu.wired_limit_mb": "iogpu.wired_limit_mb: 0\n",
        },
        memory=MemoryCounters(ram, 7 * GIB, 2 * GIB, 1 * GIB),
        cpu_counts=(8, 8),
        affinity=None,  # macOS has no sched_getaffinity
        nvml=FakeNvml(init_error=_NO_NVML),
        llama=llama_answer(
            "Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | "
            "MATMUL_INT8 = 1 | DOTPROD = 1 | ACCELERATE = 1 | REPACK = 1 | ",
            ["Metal", "BLAS", "CPU"],
            [metal, _cpu_device("Apple M2", ram)],
            gpu_offload=True,
        ),
    )


def xeon_2s_amx() -> Recording:
    brand = "Intel(R) Xeon(R) Platinum 8480+"
    # Linux numbers socket 0's cores 0-55, socket 1's 56-111, then the hyperthreads.
    cores = smt_cores(0, 0, 56, 0, 112, 3_800_000) + smt_cores(1, 0, 56, 56, 112, 3_800_000)
    flags = _X86_BASE + (
        " avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16 avx_vnni"
        " amx_bf16 avx512_fp16 amx_tile amx_int8"
    )
    files = linux_cpu_files(brand, flags, cores)
    node0 = [*range(56), *range(112, 168)]
    node1 = [*range(56, 112), *range(168, 224)]
    files.update(numa_files({0: (node0, 256 * GIB, 240 * GIB), 1: (node1, 256 * GIB, 242 * GIB)}))
    return Recording(
        system="Linux",
        machine="x86_64",
        release="Linux-5.14.0-427.el9.x86_64-x86_64-with-glibc2.34",
        files=files,
        memory=MemoryCounters(512 * GIB - 6 * GIB, 482 * GIB, 0, 0),
        cpu_counts=(224, 112),
        affinity=224,
        nvml=FakeNvml(init_error=_NO_NVML),
        llama=llama_answer(
            _CPU_AVX512 + "AMX_INT8 = 1 | " + _CPU_TAIL,
            ["CPU"],
            [_cpu_device(brand, 512 * GIB)],
            gpu_offload=False,
        ),
    )


def no_nvml() -> Recording:
    brand = "AMD Ryzen 7 5800X 8-Core Processor"
    files = linux_cpu_files(brand, _X86_BASE, smt_cores(0, 0, 8, 0, 8, 4_850_000))
    files.update(numa_files({0: (range(16), 32 * GIB, 20 * GIB)}))
    files.update(drm_card(0, 0x10DE, 0x2484))  # an RTX 3070, driver not installed
    return Recording(
        system="Linux",
        machine="x86_64",
        release="Linux-6.1.0-25-amd64-x86_64-with-glibc2.36",
        files=files,
        memory=MemoryCounters(32 * GIB, 20 * GIB, 1 * GIB, 1 * GIB),
        cpu_counts=(16, 8),
        affinity=16,
        nvml=FakeNvml(init_error=_NO_NVML),
        llama=llama_answer(_CPU_AVX2 + _CPU_TAIL, ["CPU"], [_cpu_device(brand, 32 * GIB)], False),
    )


PROFILES: dict[str, Callable[[], Recording]] = {
    "nvidia_laptop": nvidia_laptop,
    "workstation_2x24": workstation_2x24,
    "apple_m2": apple_m2,
    "xeon_2s_amx": xeon_2s_amx,
    "no_nvml": no_nvml,
}


def profile_report(name: str) -> HardwareReport:
    """The `HardwareReport` that `detect()` makes of a recorded machine."""
    return report_of(PROFILES[name]())
