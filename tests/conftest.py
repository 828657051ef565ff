"""Fixtures shared by every test.

Every test runs with `LOCALLLM_HOME` pointing into its own temporary folder,
so nothing reads or writes the developer's real config, models or logs.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def localllm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "localllm-home"
    monkeypatch.setenv("LOCALLLM_HOME", str(home))
    monkeypatch.delenv("LOCALLLM_MODELS", raising=False)
    return home
