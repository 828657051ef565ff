from __future__ import annotations

from pathlib import Path

import pytest

from localllm.errors import ConfigError
from localllm.paths import resolve_paths


def test_localllm_home_puts_everything_under_one_folder(tmp_path: Path) -> None:
    paths = resolve_paths({"LOCALLLM_HOME": str(tmp_path)})
    for location in (paths.config_dir, paths.data_dir, paths.cache_dir, paths.log_dir):
        assert location.parent == tmp_path
    assert paths.models_dir == tmp_path / "data" / "models"
    assert paths.config_file == tmp_path / "config" / "config.toml"


def test_localllm_models_moves_only_the_store(tmp_path: Path) -> None:
    paths = resolve_paths(
        {"LOCALLLM_HOME": str(tmp_path / "h"), "LOCALLLM_MODELS": str(tmp_path / "m")}
    )
    assert paths.models_dir == tmp_path / "m"
    assert paths.data_dir == tmp_path / "h" / "data"


def test_default_locations_follow_platformdirs() -> None:
    import platformdirs

    paths = resolve_paths({})
    assert paths.data_dir == platformdirs.user_data_path("localllm", appauthor=False)
    assert paths.log_dir == platformdirs.user_log_path("localllm", appauthor=False)
    assert paths.models_dir == paths.data_dir / "models"


def test_resolving_creates_nothing(tmp_path: Path) -> None:
    resolve_paths({"LOCALLLM_HOME": str(tmp_path / "home")})
    assert list(tmp_path.iterdir()) == []


def test_relative_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="LOCALLLM_MODELS must be an absolute path"):
        resolve_paths({"LOCALLLM_MODELS": "models"})
