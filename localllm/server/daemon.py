"""Start the server in the background when a command needs it, exactly once.

`ensure_running` asks the configured address; if nothing answers, it takes
a file lock (so two commands started together spawn one server), asks
again, then spawns `python -m localllm serve` detached from the terminal
(its own session, output appended to `<logs>/server.log`) and waits until it
answers. Imports nothing heavy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from localllm.errors import LocalLLMError
from localllm.paths import Paths
from localllm.server.settings import ServerSettings

START_TIMEOUT_S = 60.0


class ServerStartError(LocalLLMError):
    """The background server did not come up."""


def answers(settings: ServerSettings, timeout: float = 1.0) -> bool:
    """Whether a localllm server answers at `settings.url` (the standard library's
    HTTP client: this runs before the TUI's first paint, where httpx costs 90 ms)."""
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    parts = urlsplit(settings.url)
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    connection = HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", "/api/version", headers=headers)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def ensure_running(settings: ServerSettings, paths: Paths) -> bool:
    """Make sure a server answers at `settings.url`; True if this call started it."""
    if answers(settings):
        return False
    from filelock import FileLock

    paths.data_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.data_dir / "server.lock"), timeout=START_TIMEOUT_S):
        if answers(settings):
            return False
        paths.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = paths.log_dir / "server.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "localllm", "serve"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env=dict(os.environ),
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerStartError(
                    f"the server exited at start ({_tail(log_path)}); see {log_path}"
                )
            if answers(settings, timeout=0.5):
                return True
            time.sleep(0.1)
        raise ServerStartError(
            f"the server did not answer within {START_TIMEOUT_S:.0f} s; see {log_path}"
        )


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"
