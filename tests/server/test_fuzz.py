"""A bounded fuzz run against the real server and a real tiny model: a few hundred
mutated requests (fixed seed) to every endpoint, while an innocent stream on the
same model runs again and again. No 5xx, no hang, no dropped connection, and the
innocent stream gives exactly the text it gives alone. `benchmarks/fuzz.py` runs
the same requests by the thousand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from localllm.store.store import Store
from tests.fakehub import FakeHub
from tests.fakehub import serve as serve_hub
from tests.fuzzing import beside_innocent, fuzz, innocent_text
from tests.hardware.profiles import nvidia_laptop
from tests.hardware.recorded import report_of
from tests.live_server import add_model, start_server

pytestmark = pytest.mark.slow


@pytest.fixture
def fuzz_server(tmp_path: Path, tiny_files: dict[str, Path]) -> Iterator[str]:
    store = Store(tmp_path / "models")
    add_model(store, "tiny", tiny_files["tiny"], "PARAMETER num_ctx 1024\n")
    laptop = report_of(nvidia_laptop())
    with serve_hub(FakeHub()) as hub:  # a Hub on loopback, with no repositories
        running, thread = start_server(
            store, tmp_path / "logs", hub_endpoint=hub.url, hardware=lambda: laptop
        )
        yield running.url
        running.server.should_exit = True
        thread.join(timeout=30)


def test_mutated_requests_get_no_5xx_and_spare_the_innocent_stream(fuzz_server: str) -> None:
    alone, texts, tally = beside_innocent(fuzz_server, lambda: fuzz(fuzz_server, 14, 240))
    assert tally.server_errors == [] and tally.hangs == [] and tally.resets == []
    assert tally.total == 240 and tally.count(400, 500) > 100  # most were refused
    assert texts and all(t == alone for t in texts), (alone, texts)
    assert httpx.get(fuzz_server + "/api/version", timeout=30).status_code == 200
    assert innocent_text(fuzz_server) == alone  # the model still answers as before
