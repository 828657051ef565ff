"""`localllm plan` from the console script: local files, a Hub repo, what-ifs, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factory import TINY, write_model
from tests.fakehub import FakeHub, serve

SCRIPT = str(Path(sys.executable).with_name("localllm"))
pytestmark = pytest.mark.slow


def _plan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, "plan", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "160", **(env or {})},
        check=False,
    )


def test_plan_a_local_file_as_json(tmp_path: Path) -> None:
    path = write_model(TINY, tmp_path / "tiny.gguf")
    done = _plan(str(path), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["choice"]["quantization"] == "F32"
    assert data["choice"]["fit"] == "CPU"  # this machine has no GPU
    assert data["choice"]["measured"] is True
    assert data["n_ctx"] == 4096  # the model's training context caps the default
    assert any("Picked F32" in line for line in data["explanation"])


def test_plan_a_hub_repo_with_what_if_vram(llama8b_quants: dict[str, Path]) -> None:
    hub = FakeHub()
    for q in ("Q8_0", "Q6_K", "Q4_K_M", "IQ4_XS"):
        hub.add("acme/llama-8b-GGUF", f"llama-8b-{q}.gguf", llama8b_quants[q], sha256="a" * 64)
    with serve(hub):
        done = _plan("hf.co/acme/llama-8b-GGUF", "--vram", "8G", "--ctx", "8192",
                     env={"HF_ENDPOINT": hub.url})  # fmt: skip
        assert done.returncode == 0, done.stderr
        for words in ("Q4_K_M", "full GPU", "What if this machine had one GPU with 8 GiB",
                      "Picked Q4_K_M", "Quality loss vs F16"):  # fmt: skip
            assert words in done.stdout, done.stdout
        # only headers travelled: a few MiB of 20 GB
        assert hub.bytes_sent() < 64 << 20


def test_plan_that_fits_nowhere_exits_1(tmp_path: Path, llama8b_quants: dict[str, Path]) -> None:
    done = _plan(str(llama8b_quants["F16"]), "--policy", "gpu-only", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["choice"] is None


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("no-such-model", "is not in the catalogue, nor a GGUF file"),
        ("/nonexistent/model.gguf", "no such file"),
        ("hf.co/x", "expected hf.co/OWNER/REPO"),
    ],
)
def test_errors_are_one_line_without_traceback(arg: str, message: str) -> None:
    done = _plan(arg)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    done = _plan(str(bad))
    assert done.returncode == 1 and "bad.gguf" in done.stderr and "Traceback" not in done.stderr


def test_bad_sizes() -> None:
    done = _plan("x.gguf", "--vram", "lots")
    assert done.returncode == 1 and "not a size" in done.stderr


def test_plan_for_a_saved_hardware_report(tmp_path: Path, llama8b_quants: dict[str, Path]) -> None:
    from tests.hardware.profiles import profile_report

    saved = tmp_path / "laptop.json"
    saved.write_text(json.dumps(profile_report("nvidia_laptop").to_dict()))
    done = _plan(str(llama8b_quants["Q4_K_M"]), "--hardware", str(saved), "--json")
    assert done.returncode == 0, done.stderr
    choice = json.loads(done.stdout)["choice"]
    assert choice["fit"] == "full GPU" and choice["n_gpu_layers"] == 33
    missing = _plan("x.gguf", "--hardware", str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "cannot be read" in missing.stderr
    saved.write_text("{not json")
    broken = _plan("x.gguf", "--hardware", str(saved))
    assert broken.returncode == 1 and "not JSON" in broken.stderr


def test_plan_counts_a_repositorys_vision_projector(tmp_path: Path) -> None:
    from tests.factory import ProjectorSpec, write_projector

    hub = FakeHub()
    hub.add("acme/eyes-GGUF", "eyes-F32.gguf", write_model(TINY, tmp_path / "eyes.gguf"))
    big = ProjectorSpec(image_size=256, n_embd=128, n_ff=512, n_head=4, n_layer=3)
    hub.add("acme/eyes-GGUF", "mmproj-eyes-F16.gguf",
            write_projector(big, tmp_path / "mmproj.gguf", TINY))  # fmt: skip
    with serve(hub):
        done = _plan("hf.co/acme/eyes-GGUF", "--json", "--no-trial", env={"HF_ENDPOINT": hub.url})
    assert done.returncode == 0, done.stderr
    notes = json.loads(done.stdout)["explanation"]
    assert any(n.startswith("Vision projector mmproj-eyes-F16.gguf:") and "in RAM" in n
               for n in notes), notes  # fmt: skip
