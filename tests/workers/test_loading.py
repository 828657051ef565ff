"""What a model's LoRA adapters take from the budget it is planned in."""

from __future__ import annotations

from localllm.planner.budget import Budget, GpuBudget
from localllm.workers.loading import without_adapters

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
