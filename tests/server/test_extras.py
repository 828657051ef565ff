"""localllm's own endpoints: the server machine's hardware and each model's fit."""

from __future__ import annotations

import httpx

from tests.live_server import Running


def test_hardware_report_and_fits(server: Running) -> None:
    report = httpx.get(f"{server.url}/api/hardware", timeout=30).json()
    assert report["schema_version"] >= 1 and report["cpu"]["logical_cores"] >= 1
    fits = httpx.get(f"{server.url}/api/fit", timeout=30).json()["models"]
    by_name = {f["name"]: f for f in fits}
    assert set(by_name) == {"tiny:latest", "other:latest"}
    tiny = by_name["tiny:latest"]
    # The test budget has no GPU: everything runs on the CPU, at the Modelfile's context.
    assert tiny["fit"] == "CPU" and tiny["gpu_layers"] == 0
    assert tiny["context_length"] == 1024 and tiny["memory"] > 0 and tiny["layers"] >= 2
