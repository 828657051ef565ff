"""The server's settings, from the environment and `localllm serve`'s flags.

- `LOCALLLM_HOST`: `HOST`, `HOST:PORT`, `:PORT` or `http://HOST:PORT` (default 127.0.0.1:11435).
- `LOCALLLM_API_KEY`: required as `Authorization: Bearer KEY` when set; needed to
  listen beyond loopback (unless `serve --insecure`).
- `LOCALLLM_ORIGINS`: extra browser origins allowed (comma-separated, `*` wildcards).
- `LOCALLLM_ALLOWED_HOSTS`: extra names the `Host` header may carry.
- `LOCALLLM_KEEP_ALIVE`: how long an idle model stays loaded (default `5m`).
- `LOCALLLM_MAX_QUEUE`: requests waiting per model before 503 (default 512).
- `LOCALLLM_MAX_LOADED_MODELS`: at most this many models at once (default 0: as many as fit).
- `LOCALLLM_NUM_PARALLEL`: requests one model runs at once, each with its own
  context (default 0: the planner picks 4, 2 or 1, as many as fit without
  costing context or GPU layers).
- `LOCALLLM_BACKEND_SAMPLING`: `on` / `off` to sample inside llama.cpp's graph or on the
  CPU (default `auto`: in the graph when the output layer is on a GPU).
- `LOCALLLM_REPLICAS`: on a machine with several GPUs, load a model that fits on one
  GPU up to this many times, one copy per GPU, requests balanced across the copies
  (default 1).
- `LOCALLLM_WORKERS`: RPC workers (`localllm worker`) as `HOST:PORT,...`, whose devices
  the planner may put part of a model on (also `serve --workers`).
- `LOCALLLM_IMAGE_URLS`: `1` to fetch the `http(s)` image URLs requests name (off by
  default: a request could make the server reach hosts of its network); `data:` URLs
  always work.
- `LOCALLLM_ALLOW_FILES`: folders (separated by the OS's path separator) whose files
  `/api/create` and `/api/pull` may name (also `serve --allow-files DIR`); without
  one, no server-local path is read through the API.
- `LOCALLLM_MAX_BODY_MB`: the largest request body read (default 64; blob uploads are
  streamed to disk and exempt): a larger one gets 413 before it is read.
- `LOCALLLM_MAX_CONNECTIONS`: open connections at most (default 1000); beyond it new
  ones get 503.
- `LOCALLLM_REQUEST_TIMEOUT`: seconds a connection has to send a whole request's headers,
  and the longest pause within its body (default 30); after it the connection closes.
- `LOCALLLM_IDLE_TIMEOUT`: seconds an idle keep-alive connection stays open (default 30).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from localllm.errors import ConfigError
from localllm.units import parse_keep_alive

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11435
"""Ollama's 11434 plus one: both can run side by side."""
DEFAULT_KEEP_ALIVE_S = 300.0
DEFAULT_ORIGINS = (
    "http://localhost",
    "https://localhost",
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1",
    "https://127.0.0.1",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]",
    "https://[::1]",
    "http://[::1]:*",
    "https://[::1]:*",
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
)
"""Ollama's defaults: pages served from this machine and desktop app shells."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    origins: tuple[str, ...] = DEFAULT_ORIGINS
    allowed_hosts: tuple[str, ...] = ()
    keep_alive_s: float | None = DEFAULT_KEEP_ALIVE_S
    """None: forever."""
    max_queue: int = 512
    queue_wait_s: float = 600.0
    """How long a request waits for a busy model's slot before a 503
    (`LOCALLLM_QUEUE_WAIT`, seconds)."""
    fair_queues: bool = True
    """Waiting requests take turns by client (`workers.turns`); off
    (`LOCALLLM_FAIR_QUEUES=0`): in arrival order."""
    max_loaded: int = 0
    kv_cache_type: str | None = None
    """The KV cache type of models whose Modelfile names none (`LOCALLLM_KV_CACHE_TYPE`)."""
    num_parallel: int = 0
    backend_sampling: str = "auto"
    """auto | on | off (`LOCALLLM_BACKEND_SAMPLING`)."""
    insecure: bool = False
    workers: tuple[str, ...] = ()
    """RPC workers (HOST:PORT) the planner may place models on."""
    replicas: int = 1
    """Copies of a model that fits on one GPU, one per GPU (`LOCALLLM_REPLICAS`)."""
    image_urls: bool = False
    no_repack: bool = False
    """Load every model without weight repacking (`LOCALLLM_NO_REPACK=1`): for CPUs whose
    repacking crashes llama.cpp (`workers.fallback`)."""
    """Fetch remote image URLs (`LOCALLLM_IMAGE_URLS`; `inference.images`)."""
    allow_files: tuple[str, ...] = ()
    """Folders whose files the API may name (`serve --allow-files`)."""
    prompt_cache_dir: Path | None = None
    """Where models' long prefixes are kept between workers (`engine.prompt_cache`);
    None: not kept."""
    prompt_cache_bytes: int = 4 << 30
    """The most they may take (`LOCALLLM_PROMPT_CACHE`, GiB; 0 keeps none)."""
    keys_file: Path | None = None
    """The scoped API keys (`localllm keys`; `server.keys`): `<data>/keys.json`."""
    require_keys: bool = False
    """Ask keys of loopback clients too (`serve --require-keys`)."""
    tls_cert: str | None = None
    tls_key: str | None = None
    """HTTPS with this certificate and key (`serve --tls-cert/--tls-key`)."""
    max_body_bytes: int = 64 << 20
    max_connections: int = 1000
    request_timeout_s: float = 30.0
    idle_timeout_s: float = 30.0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def check(self) -> None:
        """Refuse to listen beyond loopback without an API key (unless insecure), and
        half a TLS setting."""
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("HTTPS needs both --tls-cert and --tls-key")
        for path in (self.tls_cert, self.tls_key):
            if path and not Path(path).is_file():
                raise ConfigError(f"{path}: no such file (--tls-cert/--tls-key)")
        if self.loopback or self.api_key or self.insecure or self._has_keys():
            return
        raise ConfigError(
            f"listening on {self.host} exposes your models to the network: make a key "
            "(localllm keys add NAME --scope chat) or set LOCALLLM_API_KEY (clients then "
            "send it as a Bearer token), or pass --insecure to serve without one"
        )

    def _has_keys(self) -> bool:
        from localllm.server.keys import KeyFile

        return self.keys_file is not None and bool(KeyFile(self.keys_file).load())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_address(value: str) -> tuple[str, int]:
    text = value.strip()
    if not text:
        return DEFAULT_HOST, DEFAULT_PORT
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"LOCALLLM_HOST: bad port in {value!r}") from None
    host = parts.hostname or DEFAULT_HOST
    return host, port


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: use one of {', '.join(choices)}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in env.get(name, "").split(",") if x.strip())


def settings_from_env(
    env: Mapping[str, str] | None = None,
    insecure: bool = False,
    workers: str = "",
    allow_files: tuple[str, ...] = (),
) -> ServerSettings:
    """`workers`: `serve --workers`, which takes the place of LOCALLLM_WORKERS;
    `allow_files`: `serve --allow-files`, added to LOCALLLM_ALLOW_FILES."""
    from localllm.remote.workers import BadEndpoint, parse_endpoints

    env = os.environ if env is None else env
    try:
        endpoints = parse_endpoints(workers or env.get("LOCALLLM_WORKERS", ""))
    except BadEndpoint as exc:
        raise ConfigError(f"LOCALLLM_WORKERS: {exc}") from None
    host, port = parse_address(env.get("LOCALLLM_HOST", ""))
    return ServerSettings(
        host=host,
        port=port,
        api_key=env.get("LOCALLLM_API_KEY", "").strip() or None,
        origins=DEFAULT_ORIGINS + _list(env, "LOCALLLM_ORIGINS"),
        allowed_hosts=_list(env, "LOCALLLM_ALLOWED_HOSTS"),
        keep_alive_s=parse_keep_alive(env.get("LOCALLLM_KEEP_ALIVE"), DEFAULT_KEEP_ALIVE_S),
        max_queue=_int(env, "LOCALLLM_MAX_QUEUE", 512),
        queue_wait_s=max(1, _int(env, "LOCALLLM_QUEUE_WAIT", 600)),
        fair_queues=env.get("LOCALLLM_FAIR_QUEUES", "").strip().lower()
        not in ("0", "false", "off"),
        max_loaded=_int(env, "LOCALLLM_MAX_LOADED_MODELS", 0),
        kv_cache_type=_kv_cache_type(env),
        prompt_cache_bytes=max(0, _int(env, "LOCALLLM_PROMPT_CACHE", 4)) << 30,
        num_parallel=_int(env, "LOCALLLM_NUM_PARALLEL", 0),
        backend_sampling=_choice(env, "LOCALLLM_BACKEND_SAMPLING", ("auto", "on", "off")),
        insecure=insecure,
        workers=endpoints,
        replicas=max(1, _int(env, "LOCALLLM_REPLICAS", 1)),
        image_urls=env.get("LOCALLLM_IMAGE_URLS", "").strip().lower() in ("1", "true", "on"),
        no_repack=env.get("LOCALLLM_NO_REPACK", "").strip().lower() in ("1", "true", "on"),
        allow_files=_folders(
            (*env.get("LOCALLLM_ALLOW_FILES", "").split(os.pathsep), *allow_files)
        ),
        max_body_bytes=_int(env, "LOCALLLM_MAX_BODY_MB", 64) << 20,
        max_connections=max(1, _int(env, "LOCALLLM_MAX_CONNECTIONS", 1000)),
        request_timeout_s=max(1, _int(env, "LOCALLLM_REQUEST_TIMEOUT", 30)),
        idle_timeout_s=max(1, _int(env, "LOCALLLM_IDLE_TIMEOUT", 30)),
    )


OFF = ("0", "false", "off", "no")


def _kv_cache_type(env: Mapping[str, str]) -> str | None:
    from localllm.store.modelfile import KV_CACHE_TYPES

    value = env.get("LOCALLLM_KV_CACHE_TYPE", "").strip().lower()
    if value and value not in KV_CACHE_TYPES:
        raise ConfigError(f"LOCALLLM_KV_CACHE_TYPE must be one of {', '.join(KV_CACHE_TYPES)}")
    return value or None


def _folders(values: tuple[str, ...]) -> tuple[str, ...]:
    """The allowed folders, absolute; each must exist (a typo would allow nothing)."""
    out = []
    for value in (v.strip() for v in values):
        if not value:
            continue
        path = Path(value).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"--allow-files {value}: not a folder")
        out.append(str(path))
    return tuple(out)
