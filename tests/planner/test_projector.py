"""The planner's projector memory (`planner.projector`): libmtmd's reported compute
buffer for generated projectors is never above the prediction, and the server's load
plan counts the projector beside the model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from localllm.gguf.reader import read_header
from localllm.gguf.source import FileSource
from localllm.planner.projector import ProjectorShape, compute_bytes
from localllm.store.names import parse_name
from localllm.store.store import Store
from localllm.workers.loading import plan_load
from tests.factory import TINY, TINY_PROJECTOR, ProjectorSpec, write_model, write_projector
from tests.live_server import BUDGET, add_model

MIB = 1 << 20
SHAPES = [  # (projector, flash attention)
    (TINY_PROJECTOR, True),
    (ProjectorSpec(image_size=256, n_embd=128, n_ff=512, n_head=4, n_layer=3), False),
    (ProjectorSpec(image_size=256, n_embd=128, n_ff=512, n_head=4, n_layer=3), True),
    (ProjectorSpec(image_size=384, n_embd=128, n_ff=256, n_head=4, n_layer=3), False),
]


def shape_of(path: Path) -> ProjectorShape:
    with FileSource(path) as f:
        header = read_header(f)
    return ProjectorShape.from_header(header.metadata, {t.name: t.nbytes for t in header.tensors})


def reported(projector: Path, model_path: Path, flash: bool) -> int:
    """libmtmd's own compute buffer for `projector`, from its load report."""
    import llama_cpp
    from llama_cpp import mtmd_cpp as mtmd

    from localllm.engine.llamalog import capture_log, route_mtmd_log

    log = capture_log(keep=None)
    route_mtmd_log()
    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(
        str(model_path).encode(), llama_cpp.llama_model_default_params()
    )
    params = mtmd.mtmd_context_params_default()
    params.use_gpu, params.n_threads, params.warmup = False, 2, True
    params.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash
                              else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)  # fmt: skip
    ctx = mtmd.mtmd_init_from_file(str(projector).encode(), model, params)
    try:
        sizes = re.findall(r"compute buffer size =\s*([\d.]+) MiB", "".join(log))
        return round(float(sizes[-1]) * MIB)
    finally:
        mtmd.mtmd_free(ctx)
        llama_cpp.llama_model_free(model)


@pytest.mark.parametrize(("spec", "flash"), SHAPES)
def test_the_compute_buffer_is_never_above_the_prediction(
    spec: ProjectorSpec, flash: bool, tmp_path: Path
) -> None:
    model = write_model(TINY, tmp_path / "tiny.gguf")
    projector = write_projector(spec, tmp_path / "mmproj.gguf", TINY)
    predicted = compute_bytes(shape_of(projector), flash)
    measured = reported(projector, model, flash)
    assert measured <= predicted <= 2.2 * measured + 0.05 * MIB, (measured / MIB, predicted / MIB)


def test_a_gemma_3_4b_shaped_projector() -> None:
    """SigLIP at 896 px in 14 px patches (Gemma 3 4B's mmproj): without flash attention
    the attention scores of 16 heads over 4,096 patches dominate."""
    shape = ProjectorShape(896, 14, 1152, 4304, 16, 27, False, 851 * MIB, "gemma3")
    assert shape.positions == 4096
    assert round(compute_bytes(shape, flash_attn=False) / MIB) == 1177
    assert round(compute_bytes(shape, flash_attn=True) / MIB) == 153


def test_the_load_plan_counts_the_projector(tmp_path: Path) -> None:
    store = Store(tmp_path / "models")
    model = write_model(TINY, tmp_path / "tiny.gguf")
    projector = write_projector(TINY_PROJECTOR, tmp_path / "mmproj.gguf", TINY)
    add_model(store, "plain", model, "PARAMETER num_ctx 512\n")
    add_model(store, "eyes", model, f"FROM {projector}\nPARAMETER num_ctx 512\n")
    plain = plan_load(store.get(parse_name("plain")), store, BUDGET, None, {}, trial=False)
    eyes = plan_load(store.get(parse_name("eyes")), store, BUDGET, None, {}, trial=False)
    shape = shape_of(projector)
    extra = shape.weights + compute_bytes(shape, eyes.option.settings.flash_attn)
    assert eyes.option.estimate.host.total == plain.option.estimate.host.total + extra
