"""The background server's life: start it when a command needs it, check that it
serves this store, and stop it (`localllm serve --stop`).

`ensure_running` asks the configured address; if nothing answers, it takes
a file lock (so two commands started together spawn one server), asks
again, then spawns `python -m localllm serve` detached from the terminal
(its own session, output appended to `<logs>/server.log`) and waits until it
answers. A server that answers must serve the models folder this command
uses (`/api/version` says which): otherwise a model created here would be
"not found" there, so the command stops with the remedy instead.

A running `localllm serve` records itself in `<data>/server.json` (pid,
address, models folder) until it exits; `stop` reads that record, or asks
the configured address, and ends the server with SIGTERM: its streams end
with an error line and its workers exit before it does. Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from localllm.errors import LocalLLMError
from localllm.paths import Paths
from localllm.server.settings import ServerSettings

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class ServerStartError(LocalLLMError):
    """The background server did not come up."""


class OtherStoreError(LocalLLMError):
    """The server at the configured address serves another models folder."""


@dataclass(frozen=True)
class ServerIdentity:
    """What a server says of itself on `/api/version`."""

    version: str
    models: Path | None
    """The models folder it serves; None from a server that does not say (not localllm,
    or an older one)."""
    pid: int | None


def identify(settings: ServerSettings, timeout: float = 1.0) -> ServerIdentity | None:
    """The server answering at `settings.url`, or None if nothing does (the standard
    library's HTTP client: this runs before the TUI's first paint, where httpx costs
    90 ms)."""
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    parts = urlsplit(settings.url)
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    connection = HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", "/api/version", headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            return None
        body = json.loads(response.read() or b"{}")
    except (OSError, ValueError):
        return None
    finally:
        connection.close()
    own = body.get("localllm") if isinstance(body, dict) else None
    own = own if isinstance(own, dict) else {}
    models, pid = own.get("models"), own.get("pid")
    return ServerIdentity(
        version=str(own.get("version", "")),
        models=Path(models) if isinstance(models, str) else None,
        pid=pid if isinstance(pid, int) else None,
    )


def answers(settings: ServerSettings, timeout: float = 1.0) -> bool:
    return identify(settings, timeout) is not None


def check_same_store(server: ServerIdentity, settings: ServerSettings, paths: Paths) -> None:
    """OtherStoreError, with the remedy, unless `server` serves `paths.models_dir`."""
    ours = paths.models_dir.expanduser().resolve()
    if server.models is not None and server.models == ours:
        return
    where = (
        f"serves the models in {server.models}"
        if server.models is not None
        else "does not say which models it serves (another program, or an older localllm)"
    )
    pid = f" (pid {server.pid})" if server.pid else ""
    raise OtherStoreError(
        f"the server at {settings.url}{pid} {where}, but this command uses {ours}. "
        "Stop that server (`localllm serve --stop`, with the LOCALLLM_HOME it was started "
        "with), or give this store a server of its own: set LOCALLLM_HOST to another "
        f"address, e.g. LOCALLLM_HOST=127.0.0.1:{settings.port + 1}"
    )


def ensure_running(settings: ServerSettings, paths: Paths) -> bool:
    """Make sure a server of this store answers at `settings.url`; True if this call
    started it. OtherStoreError if the one answering serves another folder."""
    server = identify(settings)
    if server is not None:
        check_same_store(server, settings, paths)
        return False
    from filelock import FileLock

    paths.data_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(paths.data_dir / "server.lock"), timeout=START_TIMEOUT_S):
        server = identify(settings)
        if server is not None:
            check_same_store(server, settings, paths)
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


# --- the record of a running server, and stopping it -------------------------------------


def record_path(paths: Paths) -> Path:
    return paths.data_dir / "server.json"


@contextlib.contextmanager
def recorded(paths: Paths, settings: ServerSettings) -> Iterator[Callable[[], None]]:
    """While the block runs (the server), `<data>/server.json` says who serves this home.
    Yields the function that removes the record: call it as the server begins to stop,
    since a server ended by a signal may not come back to the end of the block."""
    from localllm import __version__
    from localllm.store.atomic import atomic_write

    path = record_path(paths)
    record = {
        "pid": os.getpid(),
        "url": settings.url,
        "models": str(paths.models_dir.expanduser().resolve()),
        "version": __version__,
    }
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(record).encode())

    def forget() -> None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_bytes()).get("pid") == os.getpid():
                path.unlink()

    try:
        yield forget
    finally:
        forget()


def _recorded_pid(paths: Paths) -> int | None:
    try:
        record = json.loads(record_path(paths).read_bytes())
    except (OSError, ValueError):
        return None
    pid = record.get("pid") if isinstance(record, dict) else None
    return pid if isinstance(pid, int) and _is_server(pid) else None


def _is_server(pid: int) -> bool:
    """Whether `pid` is a running `localllm serve` (not a process that took its number)."""
    import psutil

    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return False
    return "localllm" in command and "serve" in command


def find_server(settings: ServerSettings, paths: Paths) -> int | None:
    """The pid of the server of this home: the recorded one, else the one answering at
    `settings.url` if it serves this store."""
    pid = _recorded_pid(paths)
    if pid is not None:
        return pid
    server = identify(settings)
    ours = paths.models_dir.expanduser().resolve()
    if server is not None and server.models == ours and server.pid and _is_server(server.pid):
        return server.pid
    return None


def stop(pid: int, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM `pid` and wait for it to exit (its streams end with an error, its workers
    stop); SIGKILL after `timeout`. True if it ended by itself."""
    import psutil

    try:
        process = psutil.Process(pid)
        process.terminate()
        process.wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            process.kill()
        return False
    return True


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"
