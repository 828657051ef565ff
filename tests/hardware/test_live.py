"""Real detection on the machine running the tests (CPU only here)."""

from __future__ import annotations

import json
import os

import pytest

from localllm.hardware import HardwareReport, LiveHost, detect_live
from localllm.hardware.cpu import LLAMA_FLAGS


@pytest.fixture(scope="module")
def live() -> HardwareReport:
    return detect_live()


def test_cpu_is_consistent(live: HardwareReport) -> None:
    cpu = live.cpu
    assert cpu.brand and cpu.brand != "unknown CPU"
    assert cpu.logical_cores == os.cpu_count()
    assert 1 <= cpu.physical_cores <= cpu.logical_cores
    assert 1 <= cpu.recommended_threads <= cpu.usable_cpus <= cpu.logical_cores
    assert set(cpu.flags) <= set(LLAMA_FLAGS)
    if cpu.architecture == "x86_64":
        assert "sse3" in cpu.flags  # every x86-64 CPU llama.cpp runs on has it


def test_memory_is_consistent(live: HardwareReport) -> None:
    mem = live.memory
    assert 0 < mem.available <= mem.total
    assert 0 <= mem.swap_free <= mem.swap_total or mem.swap_total == 0
    for node in mem.numa_nodes:
        assert node.memory_total is None or node.memory_total <= mem.total
        assert set(node.cpus) <= set(range(live.cpu.logical_cores * 2))


def test_llama_build_is_seen(live: HardwareReport) -> None:
    llama = live.llama
    assert llama.installed and llama.version == "0.3.36"
    assert "cpu" in llama.backends
    assert any(d.type == "cpu" for d in llama.devices)
    if not llama.gpu_offload:
        assert not any(g.usable_by_llama for g in live.gpus)


def test_live_report_round_trips_through_json(live: HardwareReport) -> None:
    assert HardwareReport.from_dict(json.loads(json.dumps(live.to_dict()))) == live


def test_live_host_answers_none_for_missing_things() -> None:
    host = LiveHost()
    assert host.read_text("/nonexistent/file") is None
    assert host.list_dir("/nonexistent/dir") is None
    assert host.run(["/nonexistent/command"]) is None
    assert host.run(["false"]) is None
