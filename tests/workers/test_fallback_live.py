"""The careful loads after a crash, with real llama.cpp: a model loads and answers with
weight repacking off, and with the file read instead of mapped; a worker killed by a
signal in its warm-up is loaded again that way."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from localllm.server.settings import ServerSettings
from localllm.store.store import Store
from tests.live_server import Running

pytestmark = pytest.mark.slow


def test_no_repack_loads_and_answers_and_ps_says_so(
    make_server: Callable[..., Running], store: Store
) -> None:
    server = make_server(store, ServerSettings(port=0, no_repack=True))
    body = {"model": "tiny", "prompt": "Once", "raw": True, "stream": False,
            "options": {"num_predict": 4, "temperature": 0}}  # fmt: skip
    answer = httpx.post(f"{server.url}/api/generate", json=body, timeout=120).json()
    assert answer["eval_count"] > 0
    running = httpx.get(f"{server.url}/api/ps", timeout=30).json()["models"]
    assert running[0]["fallback"] == "weight repacking off"


CRASHING_WARM_UP = """
import os, signal

import localllm.engine.model as model

warm_up = model.warm_up


def crashing(m):  # as llama.cpp's AMX kernels do on some CPUs, unless repacking is off
    if m.settings.fallback == 0:
        os.kill(os.getpid(), signal.SIGILL)
    warm_up(m)


model.warm_up = crashing
"""


def test_a_worker_killed_in_its_warm_up_loads_again_without_repacking(
    make_server: Callable[..., Running], store: Store, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    site = tmp_path / "site"  # every worker this test starts runs it first
    site.mkdir()
    (site / "sitecustomize.py").write_text(CRASHING_WARM_UP)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    server = make_server(store, ServerSettings(port=0))
    body = {"model": "tiny", "prompt": "Once", "raw": True, "stream": False,
            "options": {"num_predict": 4, "temperature": 0}}  # fmt: skip
    answer = httpx.post(f"{server.url}/api/generate", json=body, timeout=120).json()
    assert answer["eval_count"] > 0  # the first answer, not a crash
    running = httpx.get(f"{server.url}/api/ps", timeout=30).json()["models"]
    assert running[0]["fallback"] == "weight repacking off"
    remembered = json.loads(server.scheduler.fallbacks.path.read_text())
    assert list(remembered.values()) == [1]  # for this model on this machine


def test_the_params_of_each_level() -> None:
    import llama_cpp

    from localllm.engine.params import model_params

    base = {"n_gpu_layers": 0}
    plain, careful, carefuller = (
        model_params(llama_cpp, {**base, "fallback": n}) for n in range(3)
    )
    assert plain.use_extra_bufts and not careful.use_extra_bufts
    assert carefuller.load_mode == llama_cpp.LLAMA_LOAD_MODE_NONE and not carefuller.no_alloc
