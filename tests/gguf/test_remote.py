"""Remote headers over HTTP ranges, and Hub listings, against a hub on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localllm.engine.trial import trial_load
from localllm.errors import RemoteError
from localllm.gguf.remote import (
    HttpRangeSource,
    RepoFile,
    fetch_header,
    group_quantizations,
    list_repo_gguf,
)
from localllm.planner.settings import LoadSettings
from localllm.store.candidates import candidates_for
from localllm.store.refs import HubRef, RefError, UrlRef, parse_ref
from tests.factory import TINY, write_model
from tests.fakehub import FakeHub, serve

REPO = "acme/llama-8b-GGUF"


@pytest.fixture
def hub(llama8b_quants: dict[str, Path]) -> Iterator[FakeHub]:
    fake = FakeHub()
    for q in ("Q4_K_M", "Q8_0", "Q2_K"):
        # a stand-in digest: hashing gigabytes of sparse zeros is not what is tested here
        fake.add(REPO, f"llama-8b-{q}.gguf", llama8b_quants[q], sha256=f"{q.lower():0>64}")
    fake.add(REPO, "README.md", llama8b_quants["Q2_K"], sha256="0" * 64)
    with serve(fake):
        yield fake


def _url(hub: FakeHub, name: str) -> str:
    return f"{hub.url}/{REPO}/resolve/main/{name}"


def test_header_is_read_with_a_few_ranges(hub: FakeHub, llama8b_quants: dict[str, Path]) -> None:
    remote = fetch_header(_url(hub, "llama-8b-Q4_K_M.gguf"))
    size = llama8b_quants["Q4_K_M"].stat().st_size
    assert remote.size == size
    assert remote.header.data_offset == len(remote.header_bytes)
    assert remote.bytes_fetched < 3 * remote.header.data_offset  # a 4.9 GB file: ~7 MB read
    assert all(r.status == 206 for r in hub.log)


def test_remote_sparse_copy_gives_llama_cpp_the_same_numbers(
    hub: FakeHub, llama8b_quants: dict[str, Path], tmp_path: Path
) -> None:
    [source] = candidates_for(UrlRef(_url(hub, "llama-8b-Q4_K_M.gguf")), tmp_path)
    assert source.trial_file.stat().st_size == llama8b_quants["Q4_K_M"].stat().st_size
    s = LoadSettings(n_gpu_layers=0, n_ctx=4096)
    assert trial_load(source.trial_file, s) == trial_load(llama8b_quants["Q4_K_M"], s)


def test_server_ignoring_ranges_is_refused_without_downloading(hub: FakeHub) -> None:
    hub.ranges = False
    with pytest.raises(RemoteError, match="ignored the byte range"):
        fetch_header(_url(hub, "llama-8b-Q4_K_M.gguf"))
    source = HttpRangeSource(_url(hub, "llama-8b-Q4_K_M.gguf"))
    with pytest.raises(RemoteError, match="ignored the byte range"):
        source.read(0, 1 << 16)
    assert source.bytes_fetched == 0  # the client read none of the body
    # The hub wrote only what the socket buffers took before the client hung up (a few
    # MiB on a loaded machine), not the 4.9 GB file.
    assert hub.bytes_sent() < 64 << 20


def test_listing_groups_quantizations(hub: FakeHub) -> None:
    files = list_repo_gguf(REPO, endpoint=hub.url)
    assert {f.path for f in files} == {f"llama-8b-{q}.gguf" for q in ("Q4_K_M", "Q8_0", "Q2_K")}
    assert all(f.sha256 and len(f.sha256) == 64 for f in files)
    groups = group_quantizations(files)
    assert [g.label for g in groups] == ["Q2_K", "Q4_K_M", "Q8_0"]


def test_split_files_are_one_quantization() -> None:
    files = [
        RepoFile("Q8_0/m-Q8_0-00001-of-00002.gguf", 10, None),
        RepoFile("Q8_0/m-Q8_0-00002-of-00002.gguf", 5, None),
        RepoFile("m-Q4_K_M.gguf", 7, None),
        RepoFile("mmproj-m-f16.gguf", 3, None),
    ]
    groups = {g.label: g for g in group_quantizations(files)}
    assert set(groups) == {"Q8_0", "Q4_K_M"}
    assert groups["Q8_0"].size == 15 and len(groups["Q8_0"].files) == 2


def test_hub_candidates_and_quant_filter(hub: FakeHub, tmp_path: Path) -> None:
    sources = candidates_for(HubRef(REPO), tmp_path, endpoint=hub.url)
    assert sorted(s.candidate.label for s in sources) == ["Q2_K", "Q4_K_M", "Q8_0"]
    assert all(s.candidate.download_bytes > 0 for s in sources)
    [one] = candidates_for(HubRef(REPO, "q4_k_m"), tmp_path, endpoint=hub.url)
    assert one.candidate.label == "Q4_K_M"
    with pytest.raises(RefError, match="no Q6_K file; the repository has Q2_K, Q4_K_M, Q8_0"):
        candidates_for(HubRef(REPO, "Q6_K"), tmp_path, endpoint=hub.url)


def test_unknown_and_gated_repos(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(RemoteError, match="no such repository"):
        list_repo_gguf("acme/nothing", endpoint=hub.url)
    hub.gated[REPO] = "secret"
    with pytest.raises(RemoteError, match=r"gated: accept its license at https://huggingface\.co/"):
        list_repo_gguf(REPO, endpoint=hub.url)
    assert list_repo_gguf(REPO, endpoint=hub.url, token="secret")
    with pytest.raises(RemoteError, match="access denied"):
        fetch_header(_url(hub, "llama-8b-Q4_K_M.gguf"))


def test_unreachable_server() -> None:
    with pytest.raises(RemoteError, match=r"ConnectError|connect"):
        fetch_header("http://127.0.0.1:9/m.gguf")


def test_parse_ref(tmp_path: Path) -> None:
    assert parse_ref("hf.co/acme/m-GGUF:Q4_K_M") == HubRef("acme/m-GGUF", "Q4_K_M")
    assert parse_ref("hf://acme/m-GGUF") == HubRef("acme/m-GGUF")
    assert parse_ref("https://huggingface.co/acme/m-GGUF") == HubRef("acme/m-GGUF")
    url = "https://example.org/models/m.gguf"
    assert parse_ref(url) == UrlRef(url)
    path = write_model(TINY, tmp_path / "tiny.gguf")
    assert parse_ref(str(path)).path == path  # type: ignore[union-attr]
    with pytest.raises(RefError, match="nor a GGUF file, a folder"):
        parse_ref("definitely-not-a-model")
    with pytest.raises(RefError, match=r"expected hf\.co/OWNER/REPO"):
        parse_ref("hf.co/just-one-part")


def test_a_hub_that_cannot_be_reached_is_one_line_naming_the_host() -> None:
    """Offline, or a proxy that blocks the Hub: a 502 naming the host and the cause,
    never the HTTP client's traceback (whichever client huggingface_hub speaks)."""
    with pytest.raises(RemoteError) as caught:
        list_repo_gguf("acme/model", endpoint="http://127.0.0.1:9")
    assert caught.value.status == 502
    message = str(caught.value)
    assert message.startswith("acme/model: cannot reach 127.0.0.1 (") and "\n" not in message
