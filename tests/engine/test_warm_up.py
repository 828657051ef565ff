"""A model is warmed up while it loads (one decode, as llama.cpp's tools do), so a
backend that fails on the first inference fails the load, where the server retries
more carefully; the cache is empty again for the first request."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest

from localllm.engine.model import load
from localllm.engine.protocol import Load
from localllm.planner.settings import LoadSettings
from tests.factory import TINY, write_model


@pytest.mark.parametrize("backend_sampling", [False, True])
def test_the_warm_up_leaves_an_empty_cache(tmp_path: Path, backend_sampling: bool) -> None:
    """Also where every sequence has its graph sampler: a crash in the first inference
    must come while loading whichever way the model samples."""
    path = write_model(TINY, tmp_path / "tiny.gguf")
    settings = LoadSettings(
        n_gpu_layers=0, n_ctx=512, n_seq_max=2, n_threads=2, backend_sampling=backend_sampling
    )
    model, _ = load(Load((str(path),), settings))
    try:
        assert llama_cpp.llama_perf_context(model.ctx).n_p_eval == 2  # the warm-up's tokens
        for seq in range(2):
            assert llama_cpp.llama_memory_seq_pos_max(model.memory, seq) == -1
    finally:
        model.close()
