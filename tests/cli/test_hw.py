"""`localllm hw` through the real console script, and its rendering of each profile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from localllm.cli.hw import render
from localllm.hardware import HardwareReport
from tests.hardware.profiles import PROFILES, profile_report

SCRIPT = Path(sys.executable).with_name("localllm")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_hw_json_from_the_console_script() -> None:
    done = _run(str(SCRIPT), "hw", "--json")
    assert done.returncode == 0, done.stderr
    report = HardwareReport.from_dict(json.loads(done.stdout))
    assert report.cpu.logical_cores >= 1 and report.llama.installed


@pytest.mark.slow
def test_hw_readable_report_via_python_m() -> None:
    done = _run(sys.executable, "-m", "localllm", "hw")
    assert done.returncode == 0, done.stderr
    for heading in ("CPU", "Cores", "Threads", "Memory", "llama.cpp", "GPUs"):
        assert heading in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_render_each_profile(name: str) -> None:
    report = profile_report(name)
    console = Console(record=True, width=120)
    for part in render(report):
        console.print(part)
    text = console.export_text()
    assert report.cpu.brand in text
    for gpu in report.gpus:
        assert gpu.name in text
    for note in report.notes:
        assert note[:40] in text.replace("\n", " ")


def test_render_shows_numa_and_hybrid_cores() -> None:
    console = Console(record=True, width=160)
    for part in render(profile_report("xeon_2s_amx")):
        console.print(part)
    assert "node 1: 112 CPUs, 256.0 GiB" in console.export_text()
    console = Console(record=True, width=160)
    for part in render(profile_report("nvidia_laptop")):
        console.print(part)
    assert "6 performance + 8 efficiency" in console.export_text()
