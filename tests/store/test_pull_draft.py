"""A catalogue entry's DRAFT is pulled with it, from a hub on 127.0.0.1 through the real
`huggingface_hub` client; a draft that does not match is said, and the model kept."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from localllm.planner.plan import Plan, plan
from localllm.store.candidates import Source
from localllm.store.catalogue import Catalogue
from localllm.store.names import parse_name
from localllm.store.pull import PullEvent
from localllm.store.resolve import pull
from localllm.store.store import Store
from tests.factory import TINY, write_model
from tests.fakehub import FakeHub, serve
from tests.live_server import BUDGET

ENTRIES = {
    "big": "FROM hf.co/acme/big-GGUF\nDRAFT fam:small\n",
    "small": "FROM hf.co/acme/small-GGUF\n",
    "odd": "FROM hf.co/acme/big-GGUF\nDRAFT fam:wide\n",
    "wide": "FROM hf.co/acme/wide-GGUF\n",
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    fake = FakeHub()
    models = {"big": TINY, "small": replace(TINY, n_layer=1), "wide": replace(TINY, n_vocab=1024)}
    for name, spec in models.items():
        path = write_model(spec, tmp_path / f"{name}-F16.gguf")
        fake.add(f"acme/{name}-GGUF", path.name, path)
    with serve(fake):
        yield fake


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    folder = tmp_path / "catalogue" / "fam"
    folder.mkdir(parents=True)
    for tag, text in ENTRIES.items():
        (folder / f"{tag}.Modelfile").write_text(f"# test entry\n{text}LICENSE MIT\n")
    return Catalogue(root=folder.parent)


def choose(sources: list[Source]) -> Plan:
    return plan([s.candidate for s in sources], BUDGET)


def test_the_draft_comes_with_the_model(tmp_path: Path, hub: FakeHub, catalogue: Catalogue) -> None:
    store = Store(tmp_path / "models")
    events: list[PullEvent] = []
    manifest = pull("fam:big", store, choose, events.append, hub.url, catalogue=catalogue)
    small = store.get(parse_name("fam:small"))
    assert manifest.draft == small.model
    assert store.get(parse_name("fam:big")).draft == small.model
    assert any("draft model fam:small" in e.status for e in events)
    assert events[-1].status == "success"


def test_a_draft_that_does_not_match_is_said(
    tmp_path: Path, hub: FakeHub, catalogue: Catalogue
) -> None:
    store = Store(tmp_path / "models")
    events: list[PullEvent] = []
    manifest = pull("fam:odd", store, choose, events.append, hub.url, catalogue=catalogue)
    assert manifest.draft is None
    said = [e.status for e in events if e.status.startswith("without a draft model")]
    assert said and "1024 tokens, the model's 384" in said[0]
