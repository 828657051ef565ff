"""The planner's NUMA settings applied in a worker, and where the model's pages landed.

`apply` pins the worker to the CPUs the plan chose and tells llama.cpp the mode
before the model loads (`planner.numa` says why each mode). `spread` reads the
kernel's per-node page counts of the model file's mappings (`/proc/self/numa_maps`),
so a load can say when the pages sit on one node although the threads are spread
(they were read before, under another mode or by another process).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from localllm.planner.settings import LoadSettings

MODES = {"distribute": 1, "isolate": 2}
"""llama.cpp's `ggml_numa_strategy` values."""
LOPSIDED = 0.8
"""The share of the pages on one node above which a distributed load says so."""
_NODE = re.compile(r"\bN(\d+)=(\d+)")


def apply(settings: LoadSettings) -> None:
    if settings.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, settings.cpus)
    if settings.numa in MODES:
        import llama_cpp

        llama_cpp.llama_numa_init(MODES[settings.numa])


def spread(paths: Sequence[str], maps: str) -> dict[int, int]:
    """Pages of the files `paths` per node, from the text of a `numa_maps` file."""
    names = {str(Path(p).resolve()) for p in paths}
    pages: dict[int, int] = {}
    for line in maps.splitlines():
        file = next((f[5:] for f in line.split() if f.startswith("file=")), None)
        if file is None or file not in names:
            continue
        for node, count in _NODE.findall(line):
            pages[int(node)] = pages.get(int(node), 0) + int(count)
    return pages


def lopsided(settings: LoadSettings, pages: dict[int, int]) -> str | None:
    """A note when a distributed load's pages are mostly on one node, else None."""
    total = sum(pages.values())
    if settings.numa != "distribute" or total == 0 or len(pages) == 0:
        return None
    node, most = max(pages.items(), key=lambda kv: kv[1])
    if most / total <= LOPSIDED:
        return None
    return (
        f"{most / total:.0%} of the model's pages are on NUMA node {node}, although its "
        "threads are spread over the nodes: they were read into the page cache before. "
        "Drop the cache (sync; echo 3 > /proc/sys/vm/drop_caches, as root) and load again "
        "for the model to use every node's memory."
    )


def check(settings: LoadSettings, paths: Sequence[str]) -> str | None:
    """`lopsided` for this process's mappings of `paths` (None where the OS has no
    numa_maps)."""
    try:
        maps = Path("/proc/self/numa_maps").read_text()
    except OSError:
        return None
    return lopsided(settings, spread(paths, maps))
