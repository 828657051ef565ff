"""A bounded, streaming reader for the GGUF header and tensor table.

Why not `gguf.GGUFReader`: it memory-maps a complete local file and trusts
the counts it reads, so a corrupt header can make it allocate without limit,
and it cannot read a remote file's first megabytes. This reader pulls bytes
from a `ByteSource` as it goes (local or HTTP ranges), caps every count and
length, keeps big arrays (the vocabulary) as a length only, and turns every
inconsistency into a `ModelFileError` that names the file and the problem.
The type tables (value types, quantization block sizes) come from `gguf`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from localllm.errors import ModelFileError
from localllm.gguf.source import ByteSource

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Limits far above any real model, far below what would hurt this process.
MAX_KV = 1 << 16
MAX_TENSORS = 1 << 20
MAX_KEY = 1 << 16
MAX_STRING = 1 << 24
MAX_ARRAY = 1 << 26
MAX_HEADER_BYTES = 1 << 30
KEEP_ARRAY_ITEMS = 1 << 16
"""Longer arrays (vocabularies, merges) are kept as `ArrayInfo`, their length only."""

_SCALARS: Mapping[GGUFValueType, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class ArrayInfo:
    """An array too long to keep: its element type and length."""

    type: str
    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    """ggml order (`ne`): the first dimension is the row length."""
    type: GGMLQuantizationType
    offset: int
    """From the start of the data section."""
    nbytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n


@dataclass(frozen=True)
class GGUFHeader:
    name: str
    version: int
    metadata: Mapping[str, Any]
    tensors: tuple[TensorInfo, ...]
    alignment: int
    data_offset: int
    """Where tensor data starts: the header is the bytes before it."""
    file_size: int | None

    @property
    def data_size(self) -> int:
        return sum(t.nbytes for t in self.tensors)


class _Cursor:
    """Sequential reads over a source, fetching in growing chunks."""

    def __init__(self, source: ByteSource, first_chunk: int = 1 << 20) -> None:
        self.source = source
        self.pos = 0
        self._buf = b""
        self._buf_start = 0
        self._chunk = first_chunk

    def need(self, n: int, what: str) -> None:
        """Refuse, before reading, a count that cannot fit in what is left of the file."""
        size = self.source.size
        if size is not None and self.pos + n > size:
            raise self.error(f"{what} runs past the end of the file: corrupt or truncated")

    def take(self, n: int) -> bytes:
        end = self.pos + n
        self.need(n, f"data at byte {self.pos}")
        if end > MAX_HEADER_BYTES:
            raise self.error(f"header larger than {MAX_HEADER_BYTES >> 20} MiB: not a sane GGUF")
        buf_end = self._buf_start + len(self._buf)
        if end > buf_end:
            want = max(end - buf_end, self._chunk)
            if self.source.size is not None:
                want = min(want, self.source.size - buf_end)
            more = self.source.read(buf_end, want)
            self._chunk = min(self._chunk * 2, 64 << 20)
            self._buf = self._buf[self.pos - self._buf_start :] + more
            self._buf_start = self.pos
            if self._buf_start + len(self._buf) < end:
                raise self.error(
                    f"truncated: the header stops at byte {self._buf_start + len(self._buf)}"
                )
        start = self.pos - self._buf_start
        self.pos = end
        return self._buf[start : start + n]

    def unpack(self, fmt: struct.Struct) -> Any:
        return fmt.unpack(self.take(fmt.size))[0]

    def string(self, limit: int, what: str) -> str:
        length = self.unpack(_U64)
        if length > limit:
            raise self.error(f"{what} claims {length} bytes at byte {self.pos - 8}: corrupt header")
        return self.take(length).decode("utf-8", errors="replace")

    def error(self, problem: str) -> ModelFileError:
        return ModelFileError(self.source.name, problem)


def read_header(source: ByteSource) -> GGUFHeader:
    """Parse the header and tensor table; raises `ModelFileError` on anything wrong."""
    cur = _Cursor(source)
    try:
        magic = cur.take(4)
    except ModelFileError:
        raise cur.error("empty or too short to be a GGUF file") from None
    if magic != MAGIC:
        raise cur.error(f"not a GGUF file (its first bytes are not {MAGIC!r})")
    version = cur.unpack(_U32)
    if version == 1:
        raise cur.error("GGUF version 1 is not supported: convert the model again")
    if version not in SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if swapped in SUPPORTED_VERSIONS:
            raise cur.error("big-endian GGUF files are not supported")
        raise cur.error(f"unsupported GGUF version {version}")
    n_tensors, n_kv = cur.unpack(_U64), cur.unpack(_U64)
    if n_tensors > MAX_TENSORS:
        raise cur.error(f"header claims {n_tensors} tensors: corrupt header")
    if n_kv > MAX_KV:
        raise cur.error(f"header claims {n_kv} metadata entries: corrupt header")
    cur.need(n_kv * 13 + n_tensors * 32, f"a table of {n_kv} entries and {n_tensors} tensors")

    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string(MAX_KEY, "a metadata key")
        metadata[key] = _value(cur, cur.unpack(_U32), key, depth=0)

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise cur.error(f"general.alignment must be a power of two, got {alignment!r}")

    infos = [_tensor_info(cur) for _ in range(n_tensors)]
    data_offset = -(-cur.pos // alignment) * alignment
    tensors = tuple(_check_tensor(cur, info, alignment) for info in infos)
    _check_layout(cur, tensors, data_offset, source.size)
    return GGUFHeader(
        name=source.name,
        version=version,
        metadata=metadata,
        tensors=tensors,
        alignment=alignment,
        data_offset=data_offset,
        file_size=source.size,
    )


def _value(cur: _Cursor, raw_type: int, key: str, depth: int) -> Any:
    try:
        vtype = GGUFValueType(raw_type)
    except ValueError:
        raise cur.error(f"metadata {key!r} has unknown value type {raw_type}") from None
    if vtype in _SCALARS:
        return cur.unpack(_SCALARS[vtype])
    if vtype == GGUFValueType.STRING:
        return cur.string(MAX_STRING, f"metadata {key!r}")
    # an array
    if depth > 0:
        raise cur.error(f"metadata {key!r} nests arrays: not supported")
    item_type, length = cur.unpack(_U32), cur.unpack(_U64)
    if length > MAX_ARRAY:
        raise cur.error(f"metadata {key!r} claims {length} items: corrupt header")
    try:
        item = GGUFValueType(item_type)
    except ValueError:
        raise cur.error(f"metadata {key!r} has unknown item type {item_type}") from None
    cur.need(length * (_SCALARS[item].size if item in _SCALARS else 8), f"metadata {key!r}")
    if item in _SCALARS:
        fmt = _SCALARS[item]
        data = cur.take(fmt.size * length)
        if length > KEEP_ARRAY_ITEMS:
            return ArrayInfo(item.name.lower(), length)
        return [v[0] for v in fmt.iter_unpack(data)] if length else []
    items = [_value(cur, item_type, key, depth + 1) for _ in range(length)]
    return items if length <= KEEP_ARRAY_ITEMS else ArrayInfo(item.name.lower(), length)


@dataclass(frozen=True)
class _RawTensor:
    name: str
    shape: tuple[int, ...]
    type: int
    offset: int


def _tensor_info(cur: _Cursor) -> _RawTensor:
    name = cur.string(MAX_KEY, "a tensor name")
    n_dims = cur.unpack(_U32)
    if not 1 <= n_dims <= 4:
        raise cur.error(f"tensor {name!r} has {n_dims} dimensions (1 to 4 allowed)")
    shape = tuple(cur.unpack(_U64) for _ in range(n_dims))
    return _RawTensor(name, shape, cur.unpack(_U32), cur.unpack(_U64))


def _check_tensor(cur: _Cursor, raw: _RawTensor, alignment: int) -> TensorInfo:
    try:
        qtype = GGMLQuantizationType(raw.type)
        block, type_size = GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise cur.error(f"tensor {raw.name!r} has unknown type {raw.type}") from None
    n = 1
    for dim in raw.shape:
        if dim == 0 or dim > 1 << 40:
            raise cur.error(f"tensor {raw.name!r} has a dimension of {dim}")
        n *= dim
    if n > 1 << 42:
        raise cur.error(f"tensor {raw.name!r} claims {n} elements: corrupt header")
    if raw.shape[0] % block:
        raise cur.error(
            f"tensor {raw.name!r}: row of {raw.shape[0]} is not a multiple of the "
            f"{qtype.name} block size {block}"
        )
    if raw.offset % alignment:
        raise cur.error(f"tensor {raw.name!r} data offset {raw.offset} is not aligned")
    return TensorInfo(raw.name, raw.shape, qtype, raw.offset, n // block * type_size)


def _check_layout(
    cur: _Cursor, tensors: tuple[TensorInfo, ...], data_offset: int, file_size: int | None
) -> None:
    names = set()
    for t in tensors:
        if t.name in names:
            raise cur.error(f"tensor {t.name!r} appears twice")
        names.add(t.name)
    if file_size is None or not tensors:
        return
    last = max(tensors, key=lambda t: t.offset + t.nbytes)
    end = data_offset + last.offset + last.nbytes
    if end > file_size:
        raise cur.error(
            f"truncated: tensor {last.name!r} ends at byte {end} but the file has "
            f"{file_size} bytes (an interrupted download?)"
        )
