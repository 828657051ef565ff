"""pull / list / show / cp / rm / create through the console script, against a hub on
127.0.0.1, with a catalogue of test Modelfiles; and a real `localllm pull` killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localllm.store.blobs import sha256_file
from tests.factory import TINY, write_model
from tests.fakehub import FakeHub, serve

SCRIPT = str(Path(sys.executable).with_name("localllm"))
pytestmark = pytest.mark.slow


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    fake = FakeHub()
    (tmp_path / "repo").mkdir()
    q8 = write_model(TINY, tmp_path / "repo" / "tiny-Q8_0.gguf")
    fake.add("acme/tiny-GGUF", "tiny-Q8_0.gguf", q8)
    fake.add(
        "acme/tiny-GGUF", "tiny-F16.gguf", write_model(TINY, tmp_path / "repo" / "tiny-F16.gguf")
    )
    fake.add("acme/empty", "README.md", q8)
    with serve(fake):
        yield fake


def _run(home: Path, hub: FakeHub, *args: str, **popen: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOCALLLM_HOME": str(home), "HF_ENDPOINT": hub.url, "COLUMNS": "160"}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)  # fmt: skip


def test_pull_list_show_cp_rm(tmp_path: Path, hub: FakeHub) -> None:
    home = tmp_path / "home"
    done = _run(home, hub, "pull", "hf.co/acme/tiny-GGUF:Q8_0")
    assert done.returncode == 0, done.stderr
    assert "pulled acme/tiny-gguf:q8_0" in done.stdout
    listed = json.loads(_run(home, hub, "list", "--json").stdout)
    assert [m["name"] for m in listed] == ["acme/tiny-gguf:q8_0"]
    blob = home / "data" / "models" / "blobs" / listed[0]["digest"]
    assert sha256_file(blob) == listed[0]["digest"]
    # a second pull finds everything in place and downloads nothing
    sent = hub.bytes_sent("resolve")
    assert _run(home, hub, "pull", "hf.co/acme/tiny-GGUF:Q8_0").returncode == 0
    assert hub.bytes_sent("resolve") == sent
    assert _run(home, hub, "show", "hf.co/acme/tiny-GGUF").returncode == 0  # as pulled
    show = _run(home, hub, "show", "acme/tiny-gguf:q8_0")
    assert "architecture    llama" in show.stdout and "context length  4096" in show.stdout
    assert _run(home, hub, "cp", "acme/tiny-gguf:q8_0", "mine").returncode == 0
    assert (
        _run(home, hub, "rm", "acme/tiny-gguf:q8_0").stdout.strip()
        == "deleted 'acme/tiny-gguf:q8_0'"
    )
    assert blob.exists()  # still used by `mine`
    assert "1 file(s) freed" in _run(home, hub, "rm", "mine").stdout
    assert not blob.exists()


def test_pull_without_quant_lets_the_planner_choose(tmp_path: Path, hub: FakeHub) -> None:
    done = _run(tmp_path / "home", hub, "pull", "hf.co/acme/tiny-GGUF")
    assert done.returncode == 0, done.stderr
    assert "Picked" in done.stderr  # the reason is shown before downloading


def test_errors_are_messages(tmp_path: Path, hub: FakeHub) -> None:
    home = tmp_path / "home"
    for args, words in [
        (("pull", "hf.co/acme/empty"), "has no GGUF files"),
        (("pull", "hf.co/acme/tiny-GGUF:Q2_K"), "no Q2_K file; the repository has F16, Q8_0"),
        (("pull", "hf.co/acme/missing"), "no such repository"),
        (("show", "nothing"), "model 'nothing' not found"),
        (("rm", "../etc"), "may hold only letters"),
    ]:
        done = _run(home, hub, *args)
        assert done.returncode == 1 and words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_create_from_a_modelfile(tmp_path: Path, hub: FakeHub) -> None:
    home = tmp_path / "home"
    local = write_model(TINY, tmp_path / "mine.gguf")
    before = sha256_file(local)
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        'FROM ./mine.gguf\nPARAMETER temperature 0.3\nSYSTEM """Answer in French."""\n'
    )
    done = _run(home, hub, "create", "french", "-f", str(modelfile))
    assert done.returncode == 0, done.stderr
    assert sha256_file(local) == before  # the user's file is untouched
    text = _run(home, hub, "show", "french", "--modelfile").stdout
    assert "PARAMETER temperature 0.3" in text and "SYSTEM Answer in French." in text
    modelfile.write_text("FROM french\nPARAMETER temprature 0.3\n")
    bad = _run(home, hub, "create", "typo", "-f", str(modelfile))
    assert bad.returncode == 1 and f"{modelfile}:2: unknown parameter 'temprature'" in bad.stderr
    modelfile.write_text(
        'FROM french\nTEMPLATE """{{ if .System }}{{ .System }}{{ end }} {{ .Prompt }}"""\n'
    )
    go = _run(home, hub, "create", "go", "-f", str(modelfile))
    assert go.returncode == 0, go.stderr
    shown = _run(home, hub, "show", "go", "--modelfile").stdout
    assert "TEMPLATE {{ if .System }}{{ .System }}{{ end }} {{ .Prompt }}\n" in shown  # as written
    modelfile.write_text('FROM french\nTEMPLATE """{{ range .Messages }}{{ .Role }}"""\n')
    broken = _run(home, hub, "create", "broken", "-f", str(modelfile))
    assert broken.returncode == 1 and "not a valid Go template" in broken.stderr
    assert "unexpected EOF" in broken.stderr and "Traceback" not in broken.stderr


def test_kill_9_during_pull_then_resume(tmp_path: Path, hub: FakeHub) -> None:
    big = tmp_path / "repo" / "big-Q8_0.gguf"
    write_model(TINY, big)
    with big.open("ab") as f:  # pad the file: a GGUF reader ignores what follows its tensors
        f.write(os.urandom(40 << 20))
    hub.add("acme/big-GGUF", "big-Q8_0.gguf", big)
    hub.throttle_s = 0.01
    home = tmp_path / "home"
    env = {**os.environ, "LOCALLLM_HOME": str(home), "HF_ENDPOINT": hub.url}
    proc = subprocess.Popen([SCRIPT, "pull", "hf.co/acme/big-GGUF:Q8_0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    blobs = home / "data" / "models" / "blobs"
    deadline = time.monotonic() + 120
    state: dict[str, Any] = {}
    while time.monotonic() < deadline and not state.get("done"):
        for path in blobs.glob("*.partial.json") if blobs.exists() else []:
            state = json.loads(path.read_text() or "{}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.get("done"), "the pull was killed before any part was complete"
    hub.throttle_s = 0.0
    first = len(hub.log)
    done = _run(home, hub, "pull", "hf.co/acme/big-GGUF:Q8_0")
    assert done.returncode == 0, done.stderr
    part = int(state["part_size"])
    kept = {f"bytes={i * part}-{i * part + part - 1}" for i in state["done"]}
    assert not kept & {r.range for r in hub.log[first:]}  # nothing on disk was fetched again


def test_pull_a_bare_url(tmp_path: Path, hub: FakeHub) -> None:
    home = tmp_path / "home"
    url = f"{hub.url}/acme/tiny-GGUF/resolve/main/tiny-F16.gguf"
    done = _run(home, hub, "pull", url)
    assert done.returncode == 0, done.stderr
    assert [m["name"] for m in json.loads(_run(home, hub, "list", "--json").stdout)] == ["tiny-f16"]


def test_in_place_verify_repair_and_prune(tmp_path: Path, hub: FakeHub, dead_pid: int) -> None:
    home = tmp_path / "home"
    local = write_model(TINY, tmp_path / "big.gguf", seed=9)
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM ./big.gguf\n")
    done = _run(home, hub, "create", "big", "-f", str(modelfile), "--in-place")
    assert done.returncode == 0, done.stderr
    assert "Importing" in done.stderr
    assert _run(home, hub, "pull", "hf.co/acme/tiny-GGUF:Q8_0").returncode == 0
    ok = _run(home, hub, "verify")
    assert ok.returncode == 0 and "2 blobs of 2 models match their digests" in ok.stdout
    with local.open("r+b") as f:  # the file used in place changes
        f.seek(-64, os.SEEK_END)
        f.write(b"\x00" * 8)
    bad = _run(home, hub, "verify", "big")
    assert bad.returncode == 1 and "used by big" in bad.stdout and "--repair" in bad.stdout
    blobs = home / "data" / "models" / "blobs"
    pulled = [p for p in blobs.glob("sha256-*") if len(p.name) == 71 and not p.is_symlink()]
    with pulled[0].open("r+b") as f:  # a pulled blob rots on disk
        f.seek(-64, os.SEEK_END)
        f.write(b"\x00" * 8)
    repaired = _run(home, hub, "verify", "--repair")
    assert repaired.returncode == 1, repaired.stdout  # big cannot come back
    assert "restored from hf.co/acme/tiny-GGUF/tiny-Q8_0.gguf" in repaired.stdout
    assert "big removed; it cannot be restored" in repaired.stdout
    assert _run(home, hub, "verify").returncode == 0
    assert local.is_file()
    (blobs / f".sha256-{'a' * 64}.tmp-{dead_pid}-0123abcd").write_bytes(b"x" * 10)
    pruned = _run(home, hub, "prune")
    assert (
        pruned.returncode == 0 and "removed 1 temporary files and 0 unused blobs" in pruned.stdout
    )
