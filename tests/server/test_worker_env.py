"""A worker's environment (`workers.runner.worker_env`): CUDA numbers GPUs as NVML, and
so the hardware report and the planner, do."""

from __future__ import annotations

from localllm.workers.runner import worker_env


def test_cuda_numbers_gpus_in_pci_bus_order_unless_told_otherwise() -> None:
    env = worker_env({"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "1,0"})
    assert env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "PATH": "/usr/bin",
                   "CUDA_VISIBLE_DEVICES": "1,0"}  # fmt: skip
    assert worker_env({"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})["CUDA_DEVICE_ORDER"] == (
        "FASTEST_FIRST"
    )
