"""The benchmark models: generated once (random weights), cached in a work directory."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.factory import LLAMA_1B, SLOW, quantize, write_model


def model_file(workdir: Path, small: bool) -> Path:
    """A 1B-shaped Q4_K_M llama (~0.8 GB; the F16 base takes minutes to write),
    or with `small` a 50 MB F16 one."""
    import llama_cpp

    if small:
        path = workdir / "slow-F16.gguf"
        if not path.exists():
            write_model(SLOW, path, dtype=np.float16)
        return path
    base, out = workdir / "llama-1B-F16.gguf", workdir / "llama-1B-Q4_K_M.gguf"
    if not out.exists():
        if not base.exists():
            write_model(LLAMA_1B, base, dtype=np.float16)
        partial = out.with_suffix(".partial")
        quantize(base, partial, llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)
        partial.rename(out)  # an interrupted run leaves no half-written model behind
    return out
