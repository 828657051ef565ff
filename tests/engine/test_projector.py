"""The generated vision projector (tests/factory.py `write_projector`) is one libmtmd
loads for the tiny model: an image becomes its tokens in the model's context. The
fixture the vision work builds on."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from tests.factory import TINY, TINY_PROJECTOR, write_model, write_projector


def test_an_image_becomes_tokens_of_the_tiny_model(tmp_path: Path) -> None:
    import llama_cpp
    from llama_cpp import mtmd_cpp as mtmd

    model_path = write_model(TINY, tmp_path / "tiny.gguf")
    projector = write_projector(TINY_PROJECTOR, tmp_path / "mmproj.gguf", TINY)
    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(
        str(model_path).encode(), llama_cpp.llama_model_default_params()
    )
    params = mtmd.mtmd_context_params_default()
    params.use_gpu, params.n_threads = False, 2
    ctx = mtmd.mtmd_init_from_file(str(projector).encode(), model, params)
    lctx = llama_cpp.llama_init_from_model(model, llama_cpp.llama_context_default_params())
    chunks = mtmd.mtmd_input_chunks_init()
    try:
        assert ctx and mtmd.mtmd_support_vision(ctx)
        pixels = np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)
        data = (ctypes.c_uint8 * pixels.size).from_buffer_copy(pixels.tobytes())
        bitmap = mtmd.mtmd_bitmap_init(48, 40, data)
        text = mtmd.mtmd_input_text()
        raw = b"Describe " + mtmd.mtmd_default_marker() + b" briefly."
        text.text, text.text_len, text.add_special, text.parse_special = raw, len(raw), True, True
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        assert mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(text), bitmaps, 1) == 0
        kinds = [
            mtmd.mtmd_input_chunk_get_type(mtmd.mtmd_input_chunks_get(chunks, i))
            for i in range(mtmd.mtmd_input_chunks_size(chunks))
        ]
        assert kinds == [mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT, mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE,
                         mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT]  # fmt: skip
        image = mtmd.mtmd_input_chunks_get(chunks, 1)
        assert mtmd.mtmd_input_chunk_get_n_tokens(image) == TINY_PROJECTOR.image_tokens
        n_past = llama_cpp.llama_pos(0)
        assert mtmd.mtmd_helper_eval_chunks(ctx, lctx, chunks, 0, 0, 512, True,
                                            ctypes.byref(n_past)) == 0  # fmt: skip
        assert n_past.value == mtmd.mtmd_helper_get_n_tokens(chunks)
        mtmd.mtmd_bitmap_free(bitmap)
    finally:
        mtmd.mtmd_input_chunks_free(chunks)
        llama_cpp.llama_free(lctx)
        mtmd.mtmd_free(ctx)
        llama_cpp.llama_model_free(model)
