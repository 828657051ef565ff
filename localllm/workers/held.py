"""What the scheduler holds for each loaded model, and what it counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localllm.errors import LocalLLMError
from localllm.planner.memory import MemoryEstimate
from localllm.planner.placement import Placed
from localllm.store.manifests import Manifest
from localllm.workers.runner import Runner

LOAD_OPTIONS = ("num_ctx", "num_gpu", "num_thread", "num_batch")
"""The options a model is loaded with: a request asking for others reloads it."""


class Busy(LocalLLMError):
    """Too many requests are waiting for this model."""

    status = 503

    retry_after_s = 5


@dataclass(frozen=True)
class LoadKey:
    digests: tuple[str, ...]
    options: tuple[tuple[str, Any], ...]


@dataclass
class Tally:
    """What the scheduler has done since it started (`/metrics` exports it)."""

    loads: int = 0
    evictions: int = 0
    """Idle models unloaded to make room for another."""
    deaths: int = 0
    """Worker processes that died under a loaded model (not stopped by the server)."""


@dataclass
class Slot:
    runner: Runner
    key: LoadKey
    estimate: MemoryEstimate
    manifest: Manifest
    placement: tuple[Placed, ...] = ()
    """Where the model is, host by host (`ps` shows it)."""


def gpu_of_slot(slot: Slot) -> int | None:
    devices = slot.runner.load_request.settings.devices
    return devices[0] if len(devices) == 1 else None


def load_key(manifest: Manifest, options: dict[str, Any]) -> LoadKey:
    digests = tuple(sorted(manifest.digests))
    chosen = {k: options.get(k, manifest.parameters.get(k)) for k in LOAD_OPTIONS}
    return LoadKey(digests, tuple((k, v) for k, v in sorted(chosen.items()) if v is not None))
