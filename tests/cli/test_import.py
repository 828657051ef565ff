"""`localllm import ollama DIR` through the console script, then the imported models
served and run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ollama
import pytest

from localllm.store.store import Store
from tests.live_server import start_server
from tests.ollama_folder import TEMPLATE, OllamaFolder

SCRIPT = str(Path(sys.executable).with_name("localllm"))
pytestmark = pytest.mark.slow


def localllm(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOCALLLM_HOME": str(home), "COLUMNS": "160"}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)  # fmt: skip


def test_import_then_list_and_run(tmp_path: Path, tiny_files: dict[str, Path]) -> None:
    folder = OllamaFolder(tmp_path / "ollama")
    model = ("model", *folder.file_blob(tiny_files["tiny"]))
    folder.manifest("library/tiny:latest", [model, folder.text("template", TEMPLATE)])
    folder.manifest("me/assistant:v1", [model, folder.text("system", "Be brief.")])
    damaged = folder.root / "manifests" / "registry.ollama.ai" / "library" / "bad" / "latest"
    damaged.parent.mkdir(parents=True)
    damaged.write_text("[]")
    home = tmp_path / "home"
    done = localllm(home, "import", "ollama", str(folder.root))
    assert done.returncode == 1  # one manifest was damaged: said, and the rest imported
    assert "2 imported, 1 not imported" in done.stdout and "bad:latest" in done.stdout
    listed = json.loads(localllm(home, "list", "--json").stdout)
    assert sorted(m["name"] for m in listed) == ["me/assistant:v1", "tiny"]
    server, thread = start_server(Store(home / "data" / "models"), tmp_path / "logs")
    try:
        client = ollama.Client(host=server.url)
        for name in ("tiny", "me/assistant:v1"):
            assert client.generate(name, "hi", options={"num_predict": 3, "seed": 1}).done
    finally:
        server.server.should_exit = True
        thread.join(timeout=20)
    missing = localllm(home, "import", "ollama", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "not an Ollama models folder" in missing.stderr
