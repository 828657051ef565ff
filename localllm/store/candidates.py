"""Turn a model reference into the planner's candidates: one per quantization,
each with header facts and a file llama.cpp can trial-load.

Local files are their own trial file. Remote ones are read with range
requests; their header is written to a sparse stand-in under `workdir` (the
header, then a hole to the full size), which llama.cpp's `no_alloc` trial
load accepts as if it were the whole file.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from localllm.gguf.info import SHARD_NAME, describe
from localllm.gguf.local import read_local, shard_paths
from localllm.gguf.remote import (
    Quantization,
    RemoteHeader,
    RepoFile,
    fetch_header,
    group_quantizations,
    list_repo_gguf,
    sparse_copy,
)
from localllm.planner.plan import Candidate
from localllm.store.download import RemoteFile
from localllm.store.refs import HubRef, ModelRef, PathRef, RefError, UrlRef


@dataclass(frozen=True)
class Source:
    candidate: Candidate
    trial_file: Path
    """First shard of the file (or its sparse stand-in) for trial loads."""
    downloads: tuple[RemoteFile, ...] = ()
    """What `pull` fetches for this candidate (empty for a local file)."""


def candidates_for(
    ref: ModelRef,
    workdir: Path,
    endpoint: str | None = None,
    token: str | None = None,
    client: Any = None,
    listing: Sequence[RepoFile] | None = None,
) -> list[Source]:
    """The quantizations `ref` offers, with their header facts. `listing`: the
    repository's files when the caller already has them (one Hub call, not two)."""
    if isinstance(ref, PathRef):
        return _local(ref.path)
    if isinstance(ref, UrlRef):
        name = ref.url.rsplit("/", 1)[-1].split("?", 1)[0] or "model.gguf"
        remote = fetch_header(ref.url, client=client)
        trial = sparse_copy(remote.header_bytes, remote.size, workdir / name)
        info = describe([remote.header])
        candidate = Candidate(info.quantization, info, remote.size, (ref.url,))
        return [Source(candidate, trial, (RemoteFile(ref.url, remote.size, None),))]
    return _hub(ref, workdir, endpoint, token, client, listing)


def _local(path: Path) -> list[Source]:
    if path.is_dir():
        firsts = sorted(
            p for p in path.glob("*.gguf")
            if "mmproj" not in p.name.lower()
            and (not (m := SHARD_NAME.match(p.name)) or int(m.group("no")) == 1)
        )  # fmt: skip
        if not firsts:
            raise RefError(f"{path}: no .gguf files in this folder")
        sources = [s for p in firsts for s in _local(p)]
        labels = [s.candidate.label for s in sources]
        return [
            s
            if labels.count(s.candidate.label) == 1
            else Source(replace(s.candidate, label=s.trial_file.stem), s.trial_file)
            for s in sources
        ]
    info = read_local(path)
    first = shard_paths(path)[0]
    return [Source(Candidate(info.quantization, info, 0, (str(path),)), first)]


def _hub(
    ref: HubRef,
    workdir: Path,
    endpoint: str | None,
    token: str | None,
    client: Any,
    listing: Sequence[RepoFile] | None,
) -> list[Source]:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    if listing is None:
        listing = list_repo_gguf(ref.repo, ref.revision, token, endpoint)
    groups = group_quantizations(listing)
    if not groups:
        raise RefError(f"{ref}: the repository has no GGUF files")
    if ref.quant:
        wanted = [g for g in groups if g.label.upper() == ref.quant.upper()]
        if not wanted:
            labels = ", ".join(g.label for g in groups)
            raise RefError(f"{ref}: no {ref.quant} file; the repository has {labels}")
        groups = wanted
    headers = build_hf_headers(token=token)

    def url(path: str) -> str:
        return hf_hub_url(ref.repo, path, revision=ref.revision, endpoint=endpoint)

    def read(group: Quantization) -> list[RemoteHeader]:
        return [fetch_header(url(f.path), headers, client) for f in group.files]

    with ThreadPoolExecutor(max_workers=4) as pool:
        fetched = list(pool.map(read, groups))
    sources = []
    for group, remotes in zip(groups, fetched, strict=True):
        folder = workdir / group.label
        folder.mkdir(parents=True, exist_ok=True)
        trials = [
            sparse_copy(r.header_bytes, r.size, folder / f.path.rsplit("/", 1)[-1])
            for f, r in zip(group.files, remotes, strict=True)
        ]
        info = describe([r.header for r in remotes])
        files = tuple(f.path for f in group.files)
        downloads = tuple(RemoteFile(url(f.path), f.size, f.sha256, headers) for f in group.files)
        candidate = Candidate(group.label, info, group.size, files)
        sources.append(Source(candidate, trials[0], downloads))
    return sources
