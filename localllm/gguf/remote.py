"""Read the header of a remote GGUF with HTTP range requests, and list a Hugging Face
repository's GGUF files grouped by quantization.

Only the header is fetched (a few MiB, even for a 100 GB model): the reader
asks for more as it parses, in growing chunks. Requests go through
huggingface_hub's HTTP session, so proxies, the `HF_TOKEN` and the saved login
apply as they do for downloads. A server must answer a range with 206: one
that sends the whole file instead is refused before the body is read.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from localllm.errors import RemoteError
from localllm.gguf.info import SHARD_NAME
from localllm.gguf.reader import GGUFHeader, read_header

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
QUANT_IN_NAME = re.compile(
    r"(?<![A-Za-z0-9])(IQ\d_[A-Z]+|Q\d_K(?:_[SMLX]L?)?|Q\d_[01]|TQ\d_\d|MXFP4|BF16|F16|F32)"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)


class HttpRangeSource:
    """A `ByteSource` over HTTP; `size` is known after the first response."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, client: Any = None):
        self.url = url
        self.headers = dict(headers or {})
        self._client = client
        self._size: int | None = None
        self.prefix = bytearray()
        """Every byte fetched so far, from offset 0 (reads are sequential)."""
        self.bytes_fetched = 0

    @property
    def name(self) -> str:
        return self.url

    @property
    def size(self) -> int | None:
        return self._size

    def _session(self) -> Any:
        if self._client is None:
            from huggingface_hub import get_session

            self._client = get_session()
        return self._client

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0 or (self._size is not None and offset >= self._size):
            return b""
        headers = {**self.headers, "Range": f"bytes={offset}-{offset + length - 1}"}
        try:
            with self._session().stream("GET", self.url, headers=headers, timeout=30) as r:
                self._check(r.status_code, offset)
                match = _CONTENT_RANGE.match(r.headers.get("content-range", ""))
                if r.status_code != 206 or not match or int(match.group(1)) != offset:
                    raise RemoteError(
                        f"{self.url}: the server ignored the byte range (HTTP {r.status_code}); "
                        "its header cannot be read without downloading the whole file"
                    )
                if match.group(3) != "*":
                    self._size = int(match.group(3))
                data: bytes = r.read()
        except RemoteError:
            raise
        except Exception as exc:  # the HTTP client's own errors: connection, timeout, TLS
            raise RemoteError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        self.bytes_fetched += len(data)
        if offset == len(self.prefix):
            self.prefix += data
        return data

    def _check(self, status: int, offset: int) -> None:
        if status in (401, 403):
            raise RemoteError(
                f"{self.url}: access denied (HTTP {status}). If the repository is gated, "
                "accept its license on its Hugging Face page and log in (`hf auth login`) "
                "or set HF_TOKEN",
                403,
            )
        if status == 404:
            raise RemoteError(f"{self.url}: not found (HTTP 404)", 404)
        if status == 416:
            raise RemoteError(f"{self.url}: the file is shorter than its header claims")
        if status >= 400:
            raise RemoteError(f"{self.url}: HTTP {status} at byte {offset}")


@dataclass(frozen=True)
class RemoteHeader:
    header: GGUFHeader
    header_bytes: bytes
    """The first `header.data_offset` bytes: enough for a sparse stand-in file."""
    size: int
    bytes_fetched: int


def fetch_header(
    url: str, headers: Mapping[str, str] | None = None, client: Any = None
) -> RemoteHeader:
    """Parse the header of the GGUF at `url` from range reads."""
    source = HttpRangeSource(url, headers, client)
    header = read_header(source)
    if source.size is None:
        raise RemoteError(f"{url}: the server did not say how large the file is")
    return RemoteHeader(
        header=header,
        header_bytes=bytes(source.prefix[: header.data_offset]),
        size=source.size,
        bytes_fetched=source.bytes_fetched,
    )


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Quantization:
    """One downloadable model in a repository: a file, or the shards of a split one."""

    label: str
    files: tuple[RepoFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP clients' own failures (connection, timeout, TLS): httpx's, as
    huggingface_hub 1.x speaks, and httpx2's, as 2.x does."""
    import httpx

    errors: list[type[Exception]] = [httpx.TransportError]
    try:
        import httpx2  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        errors.append(httpx2.TransportError)
    return tuple(errors)


def _cause(exc: BaseException) -> str:
    """The cause in a few words (a name that does not resolve, a refused connection),
    without the client's traceback."""
    text = str(exc).strip() or type(exc).__name__
    return text.split("\n")[0][:200]


def list_repo_gguf(
    repo_id: str, revision: str | None = None, token: str | None = None, endpoint: str | None = None
) -> list[RepoFile]:
    """The repository's GGUF files with sizes and LFS sha256 (one Hub API call)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    api = HfApi(endpoint=endpoint, token=token)
    unreachable: tuple[type[Exception], ...] = (OSError, *transport_errors())
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except GatedRepoError:
        raise RemoteError(
            f"{repo_id} is gated: accept its license at https://huggingface.co/{repo_id} "
            "and log in (`hf auth login`) or set HF_TOKEN",
            403,
        ) from None
    except RepositoryNotFoundError:
        raise RemoteError(
            f"{repo_id}: no such repository (or it is private: log in)", 404
        ) from None
    except RevisionNotFoundError:
        raise RemoteError(f"{repo_id}: no revision {revision!r}", 404) from None
    except HfHubHTTPError as exc:
        raise RemoteError(f"{repo_id}: the Hub answered {exc}") from None
    except unreachable as exc:
        host = urlsplit(endpoint or "https://huggingface.co").hostname
        raise RemoteError(f"{repo_id}: cannot reach {host} ({_cause(exc)})") from None
    files = []
    for sibling in info.siblings or []:
        if not sibling.rfilename.lower().endswith(".gguf"):
            continue
        sha = sibling.lfs.sha256 if sibling.lfs is not None else None
        size = (
            sibling.size if sibling.size is not None else (sibling.lfs.size if sibling.lfs else 0)
        )
        files.append(RepoFile(sibling.rfilename, int(size or 0), sha))
    return files


def group_quantizations(files: Sequence[RepoFile]) -> list[Quantization]:
    """GGUF files by quantization; shards of one split model become one entry.
    Vision projectors (`mmproj`) are not models of their own and are left out."""
    groups: dict[tuple[str, str], list[RepoFile]] = defaultdict(list)
    for f in files:
        tail = f.path.rsplit("/", 1)[-1]
        if "mmproj" in tail.lower():
            continue
        match = QUANT_IN_NAME.search(tail) or QUANT_IN_NAME.search(f.path)
        label = match.group(1).upper() if match else tail.removesuffix(".gguf")
        shard = SHARD_NAME.match(tail)
        stem = f.path[: -len(tail)] + (shard.group("stem") if shard else tail)
        groups[(label, stem)].append(f)
    out = []
    for (label, _stem), group in sorted(groups.items()):
        out.append(Quantization(label, tuple(sorted(group, key=lambda f: f.path))))
    labels = [q.label for q in out]
    # Two files with one label (e.g. an imatrix and a plain Q4_K_M): name them apart.
    return [
        q
        if labels.count(q.label) == 1
        else Quantization(q.files[0].path.removesuffix(".gguf"), q.files)
        for q in out
    ]


def sparse_copy(header: bytes, size: int, path: Path) -> Path:
    """Write `header` then a hole up to `size` bytes: a stand-in for the whole file
    that occupies only the header's space on disk."""
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("wb") as f:
        f.write(header)
    os.truncate(tmp, size)
    tmp.replace(path)
    return path
