"""Around a model's plan: what its LoRA adapters take from the budget, where its
saved prompts go, and sampling in the graph turned on or off for it and its draft."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from localllm.planner.budget import Budget, GpuBudget
from localllm.store.atomic import StoreError
from localllm.workers.loading import sampling_in_graph, with_prompt_cache, without_adapters

GIB = 1 << 30


def gpu(index: int, usable: int, unified: bool = False) -> GpuBudget:
    return GpuBudget(index, f"gpu{index}", "nvidia", "cuda", 24 * GIB, usable, usable,
                     unified, 900.0)  # fmt: skip


def budget(*gpus: GpuBudget) -> Budget:
    return Budget(gpus, 64 * GIB, 48 * GIB, 40 * GIB, 50.0, 8, False)


def test_adapters_take_room_beside_the_weights() -> None:
    two = budget(gpu(0, 10 * GIB), gpu(1, 20 * GIB))
    less = without_adapters(two, GIB)
    assert [g.usable for g in less.gpus] == [10 * GIB, 19 * GIB]  # the roomiest GPU
    assert less.ram_usable == two.ram_usable
    cpu = without_adapters(budget(), 2 * GIB)
    assert cpu.ram_usable == 38 * GIB
    unified = without_adapters(budget(gpu(0, 16 * GIB, unified=True)), GIB)
    assert unified.ram_usable == 39 * GIB  # a unified GPU's memory is the RAM
    assert without_adapters(two, 0) is two


def test_the_prompt_cache_folder_comes_from_a_checked_digest(tmp_path: Path) -> None:
    from localllm.engine.protocol import Load
    from localllm.planner.settings import LoadSettings
    from localllm.store.manifests import Layer, Manifest

    load = Load(("model.gguf",), LoadSettings(n_gpu_layers=0, n_ctx=512))
    good = Manifest("m:latest", Layer("sha256-" + "ab" * 32, 1))
    folder = with_prompt_cache(load, good, tmp_path, GIB).prompt_cache
    assert folder == str(tmp_path / ("ab" * 8 + "-f16-f16"))
    plain = replace(load, settings=replace(load.settings, flash_attn=False))  # V transposed
    assert with_prompt_cache(plain, good, tmp_path, GIB).prompt_cache == folder + "-vt"
    assert with_prompt_cache(load, good, None, GIB).prompt_cache is None
    assert with_prompt_cache(load, good, tmp_path, 0).prompt_cache is None
    forged = Manifest("m:latest", Layer("sha256-../../../../etc", 1))  # a tampered manifest
    with pytest.raises(StoreError, match="not a blob digest"):
        with_prompt_cache(load, forged, tmp_path, GIB)


def test_sampling_in_the_graph_is_set_for_the_draft_too() -> None:
    from localllm.engine.protocol import Draft, Load
    from localllm.planner.settings import LoadSettings

    on = LoadSettings(n_gpu_layers=99, n_ctx=512, backend_sampling=True)
    load = Load(("model.gguf",), on, draft=Draft("draft.gguf", on))
    off = sampling_in_graph(load, False)
    assert off.draft is not None and not off.draft.settings.backend_sampling
    assert not off.settings.backend_sampling and off.settings.n_gpu_layers == 99
    assert sampling_in_graph(off, True) == load
    alone = Load(("model.gguf",), on)
    assert sampling_in_graph(alone, False).draft is None
