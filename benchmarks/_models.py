"""The benchmark models: generated once (random weights), cached in a work directory."""

from __future__ import annotations

import argparse
import ctypes
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.factory import LLAMA_1B, LLAMA_8B, SLOW, ModelSpec, quantize, write_model

_QUIET: Any = None
"""llama.cpp's log callback while a vocabulary is read (kept alive: llama.cpp calls it)."""
SHAPES: dict[str, ModelSpec] = {"1B": LLAMA_1B, "8B": LLAMA_8B}
"""The shapes the speed tables use: Llama-3.2-1B's and Llama-3.1-8B's."""


def _made_dir(value: str) -> Path:
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def add_workdir(parser: argparse.ArgumentParser) -> None:
    """`--workdir`, as every benchmark takes it: where the generated models are made once
    and kept between runs (made when missing)."""
    parser.add_argument("--workdir", type=_made_dir,
                        default=str(Path(tempfile.gettempdir()) / "localllm-bench"))  # fmt: skip


def base_file(workdir: Path, shape: str = "1B") -> Path:
    """The F16 model a quantized one is made from (no llama.cpp needed: it can be written
    while llama.cpp builds). 1B: ~2.5 GB, minutes; 8B: ~16 GB and as many GB of memory."""
    path = workdir / f"llama-{shape}-F16.gguf"
    if not path.exists():
        partial = path.with_suffix(".partial")
        write_model(SHAPES[shape], partial, dtype=np.float16)
        partial.rename(path)
    return path


def model_file(workdir: Path, small: bool, shape: str = "1B") -> Path:
    """A Q4_K_M llama of `shape` ("1B": ~0.8 GB, "8B": ~4.6 GB), or with `small` a 50 MB
    F16 one."""
    import llama_cpp

    if small:
        path = workdir / "slow-F16.gguf"
        if not path.exists():
            write_model(SLOW, path, dtype=np.float16)
        return path
    out = workdir / f"llama-{shape}-Q4_K_M.gguf"
    if not out.exists():
        base = base_file(workdir, shape)
        partial = out.with_suffix(".partial")
        quantize(base, partial, llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)
        partial.rename(out)  # an interrupted run leaves no half-written model behind
    return out


def vocab_only(path: Path) -> Any:
    """The model's vocabulary alone (no weights), llama.cpp's log silenced: the caller
    frees it with `llama_model_free`."""
    import llama_cpp

    global _QUIET
    _QUIET = llama_cpp.llama_log_callback(lambda *_: None)  # kept alive: llama.cpp calls it
    llama_cpp.llama_log_set(_QUIET, ctypes.c_void_p())
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    return llama_cpp.llama_model_load_from_file(str(path).encode(), params)


def eog_tokens(path: Path) -> list[int]:
    """The model's end tokens, to ban them where a server has no `ignore_eos`."""
    import llama_cpp

    model = vocab_only(path)
    vocab = llama_cpp.llama_model_get_vocab(model)
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    out = [t for t in range(n) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    llama_cpp.llama_model_free(model)
    return out


def bench_home(
    path: Path, parameters: dict[str, object], prefix: str
) -> tuple[Path, dict[str, str]]:
    """A fresh LOCALLLM_HOME holding `path` as the model `bench` with these PARAMETERs,
    and the environment that points at it."""
    import os
    import subprocess
    import tempfile

    home = Path(tempfile.mkdtemp(prefix=prefix))
    env = {**os.environ, "LOCALLLM_HOME": str(home)}
    lines = [f"FROM {path}", *(f"PARAMETER {k} {v}" for k, v in parameters.items())]
    (home / "Modelfile").write_text("\n".join(lines) + "\n")
    subprocess.run([sys.executable, "-m", "localllm", "create", "bench", "-f",
                    str(home / "Modelfile")], env=env, check=True, capture_output=True)  # fmt: skip
    return home, env


if __name__ == "__main__":  # python benchmarks/_models.py WORKDIR SHAPE [--base]
    where, shape = Path(sys.argv[1]), sys.argv[2]
    print(base_file(where, shape) if "--base" in sys.argv else model_file(where, False, shape))
