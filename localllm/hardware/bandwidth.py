"""Memory bandwidth: what bounds decode speed (every weight is read once per token).

GPU figures are the vendors' published peak bandwidth, matched on the name the
driver reports; CPU bandwidth is measured, since it depends on channels and
DIMMs no probe can see.
"""

from __future__ import annotations

import threading
import time

# Substring of the reported name -> GB/s. Longer, more specific names first.
GPU_BANDWIDTH_GBS: tuple[tuple[str, float], ...] = (
    ("H200", 4800), ("H100 PCIe", 2000), ("H100", 3350), ("A100-SXM4-80GB", 2039),
    ("A100 80GB", 1935), ("A100", 1555), ("L40S", 864), ("L40", 864), ("A6000", 768),
    ("L4", 300), ("T4", 320), ("V100", 900),
    ("RTX 5090", 1792), ("RTX 5080", 960), ("RTX 5070 Ti", 896), ("RTX 5070", 672),
    ("RTX 4090", 1008), ("RTX 4080", 717), ("RTX 4070 Ti", 504), ("RTX 4070", 504),
    ("RTX 4060 Ti", 288), ("RTX 4060 Laptop", 256), ("RTX 4060", 272),
    ("RTX 3090", 936), ("RTX 3080", 760), ("RTX 3070", 448), ("RTX 3060", 360),
    ("RX 7900 XTX", 960), ("RX 7900", 800), ("RX 6900", 512),
    ("M1 Ultra", 800), ("M1 Max", 400), ("M1 Pro", 200), ("M1", 68),
    ("M2 Ultra", 800), ("M2 Max", 400), ("M2 Pro", 200), ("M2", 100),
    ("M3 Ultra", 800), ("M3 Max", 400), ("M3 Pro", 150), ("M3", 100),
    ("M4 Max", 546), ("M4 Pro", 273), ("M4", 120),
)  # fmt: skip
DEFAULT_GPU_GBS = {"nvidia": 300.0, "amd": 300.0, "intel": 100.0, "apple": 100.0}


def gpu_bandwidth(name: str, vendor: str) -> float:
    """Published peak GB/s for a GPU name, or a cautious default for its vendor."""
    for key, gbs in GPU_BANDWIDTH_GBS:
        if key.lower() in name.lower():
            return gbs
    return DEFAULT_GPU_GBS.get(vendor, 100.0)


def measure_cpu_bandwidth(threads: int, megabytes: int = 256, repeats: int = 3) -> float:
    """Read bandwidth in GB/s with `threads` threads summing slices of one array.

    numpy releases the GIL inside reductions, so the threads read in parallel
    like llama.cpp's decode threads do. Takes about a quarter of a second.
    """
    import numpy as np

    data = np.ones(megabytes * (1 << 20) // 8, dtype=np.float64)
    slices = np.array_split(data, max(threads, 1))
    best = float("inf")
    for _ in range(repeats):
        workers = [threading.Thread(target=np.sum, args=(part,)) for part in slices]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - start)
    return data.nbytes / best / 1e9
