"""Read a model on disk: one `.gguf`, or every shard when given any shard of a split model."""

from __future__ import annotations

from pathlib import Path

from localllm.errors import ModelFileError
from localllm.gguf.info import SHARD_NAME, ModelInfo, describe
from localllm.gguf.reader import GGUFHeader, read_header
from localllm.gguf.source import FileSource


def shard_paths(path: Path) -> list[Path]:
    """All shards of the split model `path` belongs to (just `path` if not split)."""
    match = SHARD_NAME.match(path.name)
    if not match:
        return [path]
    count = int(match.group("count"))
    stem = match.group("stem")
    paths = [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise ModelFileError(str(path), f"split model is missing {', '.join(missing)}")
    return paths


def read_local_headers(path: Path) -> list[GGUFHeader]:
    headers = []
    for shard in shard_paths(path):
        with FileSource(shard) as source:
            headers.append(read_header(source))
    return headers


def read_local(path: Path) -> ModelInfo:
    """The model facts of a local GGUF (all shards of a split model)."""
    return describe(read_local_headers(path))
