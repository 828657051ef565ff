"""A vision projector's memory, from its GGUF header: weights and compute buffer.

llama.cpp's own fit leaves the projector out (llama.cpp issue 18181), so a vision
model that just fits its GPU runs out of memory at its first image. libmtmd reserves
the encoder's compute graph for the largest image at load (its warmup), and that
buffer is what grows: without flash attention it holds every head's attention scores
(patches squared, f32), with it the widest activations. The formula below was fitted
on libmtmd's reported buffers for generated projectors from 16 to 2,305 patches
(`tests/planner/test_projector.py` checks it against the vendored libmtmd); it errs
high (by up to half with flash attention, a tenth to a fifth without), never low.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from localllm.planner.budget import Budget, less
from localllm.planner.memory import DeviceUse, MemoryEstimate
from localllm.planner.plan import Plan, gpu_targets
from localllm.planner.settings import LoadSettings
from localllm.units import format_bytes

F32 = 4
SLACK = 64 << 10
"""The graph's small tensors (outputs, positions) the terms below leave out."""


@dataclass(frozen=True)
class ProjectorShape:
    image_size: int
    patch_size: int
    n_embd: int
    n_ff: int
    n_head: int
    n_layer: int
    class_token: bool
    weights: int
    """Bytes of its tensors."""
    kind: str = "mlp"
    """`clip.projector_type`."""

    @classmethod
    def from_header(cls, metadata: Mapping[str, Any], tensors: Mapping[str, int]) -> ProjectorShape:
        """From an `mmproj` GGUF's metadata and its tensors' sizes in bytes, by name."""

        def key(name: str, default: int = 0) -> int:
            return int(metadata.get(f"clip.vision.{name}", default))

        return cls(
            image_size=key("image_size"),
            patch_size=max(1, key("patch_size", 1)),
            n_embd=key("embedding_length"),
            n_ff=key("feed_forward_length"),
            n_head=max(1, key("attention.head_count", 1)),
            n_layer=key("block_count"),
            class_token="v.class_embd" in tensors,
            weights=sum(tensors.values()),
            kind=str(
                metadata.get("clip.vision.projector_type")
                or metadata.get("clip.projector_type")
                or "mlp"
            ),
        )

    @property
    def layers_run(self) -> int:
        """LLaVA's projector (`mlp`) reads the last-but-one layer: the last never runs."""
        return self.n_layer - 1 if self.kind == "mlp" else self.n_layer

    @property
    def positions(self) -> int:
        """The encoder's sequence for the largest image: its patches (and class token)."""
        return (self.image_size // self.patch_size) ** 2 + int(self.class_token)


def compute_bytes(shape: ProjectorShape, flash_attn: bool) -> int:
    """The compute buffer libmtmd reserves for `shape`'s largest image."""
    image = shape.image_size * shape.image_size * 3 * F32 * 3 // 2 + SLACK  # pixels, patches
    if shape.layers_run <= 0:
        return image
    n = shape.positions
    scores = 0 if flash_attn else n * n * shape.n_head * F32
    activations = n * max(6 * shape.n_embd, shape.n_ff + 4 * shape.n_embd) * F32
    return scores + activations + image


def projector_estimate(
    shape: ProjectorShape, settings: LoadSettings, budget: Budget
) -> MemoryEstimate:
    """The projector's bytes where libmtmd puts it: the first GPU when the model uses
    one (`engine.vision` loads it with `use_gpu` then), else the host."""
    use = {"weights": shape.weights, "compute": compute_bytes(shape, settings.flash_attn)}
    gpus = gpu_targets(budget)[:1] if settings.n_gpu_layers else ()
    if gpus:
        return MemoryEstimate(DeviceUse("CPU"), (DeviceUse(f"GPU{gpus[0].index}", **use),))
    return MemoryEstimate(DeviceUse("CPU", **use))


def plan_with_projector(
    result: Plan, shape: ProjectorShape, name: str, replan: Callable[[Budget], Plan]
) -> Plan:
    """`result` with the vision projector `shape` (called `name`) beside its choice: the
    model planned again in what the projector leaves when both do not fit (`replan`),
    the choice's estimate counting both, and a note saying what the projector takes."""
    from localllm.planner.draft import combined, fits_beside, without_runtime

    choice = result.choice
    if choice is None:
        return result
    memory = projector_estimate(shape, choice.settings, result.budget)
    if not fits_beside(choice.estimate, memory, result.budget):
        room = less(result.budget, [without_runtime(memory)])  # one runtime per process
        result = replace(replan(room), budget=result.budget)
        choice = result.choice
        if choice is None:
            note = f"The vision projector {name} leaves too little room for the model."
            return replace(result, notes=(*result.notes, note))
        memory = projector_estimate(shape, choice.settings, result.budget)
    compute = compute_bytes(shape, choice.settings.flash_attn)
    note = (
        f"Vision projector {name}: {format_bytes(memory.total)} more "
        f"({format_bytes(shape.weights)} weights, {format_bytes(compute)} to encode an "
        f"image of {shape.image_size} px) {'on GPU0' if memory.gpus else 'in RAM'}; "
        "counted in the placement."
    )
    both = replace(choice, estimate=combined(choice.estimate, memory))
    return replace(result, choice=both, notes=(*result.notes, note))
