"""A vision model's projector (`mmproj-*.gguf`): chosen from its repository, pulled with it.

Hugging Face repositories of vision models (Gemma 3, Qwen2.5-VL, SmolVLM...) hold the
language model's quantizations and one or more projector files beside them, which
the model needs to read images. `pull` takes the projector of the best precision
(F16 first: projectors are small and lose more than language models do when
quantized, as Ollama and LM Studio ship them), verified like any blob, and records
it in the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence

from localllm.gguf.remote import QUANT_IN_NAME, RepoFile

PRECISIONS = ("F16", "BF16", "F32", "Q8_0")
"""Projector precisions in the order they are preferred; others come after."""


def is_projector(path: str) -> bool:
    return "mmproj" in path.rsplit("/", 1)[-1].lower()


def pick_projector(files: Sequence[RepoFile]) -> RepoFile | None:
    """The repository's projector of the best precision (the smaller of two alike);
    None when it has none."""

    def rank(f: RepoFile) -> tuple[int, int]:
        match = QUANT_IN_NAME.search(f.path.rsplit("/", 1)[-1])
        label = match.group(1).upper() if match else ""
        order = PRECISIONS.index(label) if label in PRECISIONS else len(PRECISIONS)
        return order, f.size

    projectors = [f for f in files if is_projector(f.path)]
    return min(projectors, key=rank) if projectors else None


def precision(path: str) -> str | None:
    match = QUANT_IN_NAME.search(path.rsplit("/", 1)[-1])
    return match.group(1).upper() if match else None
