"""Workers on hosts of their own: each in a network namespace with its own address
behind a veth pair (`tests/remote/lan.py`), where the machine lets an unprivileged
user make namespaces; skipped with the reason where it does not."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localllm.remote import rpc

pytestmark = [pytest.mark.slow]
LAN = Path(__file__).with_name("lan.py")


def _namespaces_refused() -> str | None:
    """Why this machine cannot make the test's network namespaces, or None."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        return f"no {' or '.join(missing)} command"
    probe = subprocess.run(
        ["unshare", "-rn", "sh", "-c", "ip link add lltest0 type veth peer name lltest1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"unprivileged network namespaces refused: {probe.stderr.strip()}"
    return None


@pytest.mark.skipif(not rpc.available(), reason="llama.cpp built without -DGGML_RPC=ON")
def test_a_split_across_two_hosts_on_a_lan_gives_the_same_tokens(
    tiny_files: dict[str, Path],
) -> None:
    refused = _namespaces_refused()
    if refused:
        pytest.skip(refused)
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, str(LAN), str(tiny_files["tiny"])],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["up"] == [True, True]
    assert all(rtt > 0 for rtt in result["rtt_s"])
    assert result["held"] == [True, True]
    assert result["split"] == result["expected"] != ""
