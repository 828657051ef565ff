"""A vision model's projector (`mmproj-*.gguf`): chosen from its repository, pulled with it.

Hugging Face repositories of vision models (Gemma 3, Qwen2.5-VL, SmolVLM...) hold the
language model's quantizations and one or more projector files beside them, which
the model needs to read images. `pull` takes the projector of the best precision
(F16 first: projectors are small and lose more than language models do when
quantized, as Ollama and LM Studio ship them), verified like any blob, and records
it in the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


VISION_TYPES = (
    "mlp", "ldp", "ldpv2", "resampler", "adapter", "qwen2vl_merger", "qwen2.5vl_merger",
    "qwen3vl_merger", "ling3vl", "step3vl", "gemma3", "gemma3nv", "gemma4v", "gemma4uv",
    "phi4", "idefics3", "pixtral", "internvl", "llama4", "qwen2.5o", "lfm2", "kimivl",
    "paddleocr", "lightonocr", "cogvlm", "janus_pro", "dots_ocr", "dots3note_v",
    "deepseekocr", "deepseekocr2", "deepseek4v", "glm4v", "glm5v", "youtuvl", "yasa2",
    "kimik25", "nemotron_v2_vl", "exaone4_5", "hunyuanvl", "minicpmv4_6", "mimovl",
    "minimax_m3", "granite4_vision", "muse-glimmer",
)  # fmt: skip
"""Projector types with a vision encoder that the vendored llama.cpp's libmtmd knows
(`tools/mtmd/clip-impl.h`, llama-cpp-python 0.3.36); the others there are audio."""


WIDTH_OF = {
    "mlp": ("mm.2.weight", 1), "pixtral": ("mm.2.weight", 1), "phi4": ("mm.2.weight", 1),
    "lightonocr": ("mm.2.weight", 1), "gemma3": ("mm.input_projection.weight", 0),
    "idefics3": ("mm.model.fc.weight", 1), "qwen2vl_merger": ("mm.2.bias", 0),
    "qwen2.5vl_merger": ("mm.2.bias", 0),
}  # fmt: skip
"""Where libmtmd reads the width of a projector's embeddings (`clip_n_mmproj_embd`):
the tensor and its dimension (ggml order), for the common vision types; for the
others libmtmd's own check at load says it."""


def check_projector(
    metadata: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], n_embd: int, where: str
) -> str:
    """The projector type of an `mmproj` GGUF (its `metadata` and tensor `shapes`),
    checked against the text model's embedding width `n_embd`; ValueError saying what
    does not fit."""
    if metadata.get("general.architecture") != "clip":
        raise ValueError(f"{where}: not a vision projector (general.architecture is not 'clip')")
    if not metadata.get("clip.has_vision_encoder", False):
        raise ValueError(f"{where}: the projector reads no images (no vision encoder)")
    kind = str(metadata.get("clip.vision.projector_type") or metadata.get("clip.projector_type")
               or "mlp")  # fmt: skip
    if kind not in VISION_TYPES:
        raise ValueError(
            f"{where}: projector type {kind!r} is not one this llama.cpp reads images with"
        )
    tensor, dim = WIDTH_OF.get(kind, ("", 0))
    shape = shapes.get(tensor)
    if shape is not None and len(shape) > dim and shape[dim] != n_embd:
        raise ValueError(
            f"{where}: the projector gives {shape[dim]}-wide embeddings but the model takes "
            f"{n_embd}: it belongs to another model"
        )
    return kind
