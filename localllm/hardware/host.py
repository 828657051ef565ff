"""The one seam between the probes and the machine.

Every probe reads the machine only through a `Host`: files (`/proc`, `/sys`),
command output (`sysctl`), environment variables and psutil's counters. The
live implementation reads this machine; tests pass recorded hosts, so each
probe runs on an NVIDIA laptop, an Apple M2 or a dual-socket server without
monkeypatching anything.

Every method answers `None` (or a neutral value) when the thing cannot be
read: probes turn that into a note in the report, never into an exception.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class MemoryCounters:
    """What psutil says about RAM and swap, in bytes."""

    total: int
    available: int
    swap_total: int
    swap_free: int


class Host(Protocol):
    """Read-only access to the facts of one machine."""

    @property
    def system(self) -> str:
        """`platform.system()`: `Linux`, `Darwin` or `Windows`."""
        ...

    @property
    def machine(self) -> str:
        """`platform.machine()`: `x86_64`, `arm64`, `aarch64`, `AMD64`..."""
        ...

    @property
    def release(self) -> str:
        """The OS release, for the report only."""
        ...

    def read_text(self, path: str) -> str | None: ...

    def list_dir(self, path: str) -> list[str] | None: ...

    def run(self, argv: Sequence[str]) -> str | None:
        """Standard output of a short command, or None if it fails."""
        ...

    def getenv(self, name: str) -> str | None: ...

    def memory(self) -> MemoryCounters | None: ...

    def cpu_counts(self) -> tuple[int | None, int | None]:
        """(logical, physical) CPU counts as psutil reports them."""
        ...

    def affinity(self) -> int | None:
        """How many logical CPUs this process may be scheduled on."""
        ...

    def cpuinfo(self) -> Mapping[str, Any] | None:
        """py-cpuinfo's answer: the slow, portable fallback (it runs CPUID in a child)."""
        ...


class LiveHost:
    """This machine, read on demand; nothing is cached or read at construction."""

    command_timeout_s = 5.0

    @property
    def system(self) -> str:
        return platform.system()

    @property
    def machine(self) -> str:
        return platform.machine()

    @property
    def release(self) -> str:
        return platform.platform(terse=True)

    def read_text(self, path: str) -> str | None:
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def list_dir(self, path: str) -> list[str] | None:
        try:
            return sorted(entry.name for entry in Path(path).iterdir())
        except OSError:
            return None

    def run(self, argv: Sequence[str]) -> str | None:
        try:
            done = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                timeout=self.command_timeout_s,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    def getenv(self, name: str) -> str | None:
        return os.environ.get(name)

    def memory(self) -> MemoryCounters | None:
        import psutil

        try:
            vm, sw = psutil.virtual_memory(), psutil.swap_memory()
        except (OSError, RuntimeError):
            return None
        return MemoryCounters(
            total=int(vm.total),
            available=int(vm.available),
            swap_total=int(sw.total),
            swap_free=int(sw.free),
        )

    def cpu_counts(self) -> tuple[int | None, int | None]:
        import psutil

        try:
            return psutil.cpu_count(logical=True), psutil.cpu_count(logical=False)
        except (OSError, RuntimeError):
            return os.cpu_count(), None

    def affinity(self) -> int | None:
        getter = getattr(os, "sched_getaffinity", None)
        if getter is None:
            return None
        try:
            return len(getter(0))
        except OSError:
            return None

    def cpuinfo(self) -> Mapping[str, Any] | None:
        try:
            import cpuinfo

            info: Mapping[str, Any] = cpuinfo.get_cpu_info()
        except Exception:  # py-cpuinfo fails in many platform-specific ways
            return None
        return info
