"""Where localllm keeps its files.

Locations come from `platformdirs` (the platform's conventions for config,
data, cache and logs). Two environment variables override them:

- `LOCALLLM_HOME`: every location lives under this one folder
  (`config/`, `data/`, `cache/`, `logs/`); tests use it to stay hermetic.
- `LOCALLLM_MODELS`: the model store only (default: `<data>/models`).

Resolving paths only computes them: nothing is created or read here. Code that
writes a location creates it when it writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localllm.errors import ConfigError

APP_NAME = "localllm"


@dataclass(frozen=True)
class Paths:
    """The resolved locations; plain data, passed down to whoever needs them."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path
    log_dir: Path
    models_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def keys_file(self) -> Path:
        """The server's API keys, hashed (`server.keys`), in the data folder."""
        return self.data_dir / "keys.json"

    @property
    def history_file(self) -> Path:
        """The chats (`history.ChatStore`), beside the models in the data folder."""
        return self.data_dir / "history.db"


def _from_env(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ConfigError(f"{name} must be an absolute path, got {value!r}")
    return path


def resolve_paths(env: Mapping[str, str] | None = None) -> Paths:
    """Compute the locations from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    home = _from_env(env, "LOCALLLM_HOME")
    if home is not None:
        config, data, cache, logs = (home / "config", home / "data", home / "cache", home / "logs")
    else:
        import platformdirs

        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        config = dirs.user_config_path
        data = dirs.user_data_path
        cache = dirs.user_cache_path
        logs = dirs.user_log_path
    models = _from_env(env, "LOCALLLM_MODELS") or data / "models"
    return Paths(config_dir=config, data_dir=data, cache_dir=cache, log_dir=logs, models_dir=models)
