"""The GGUF reader: real files, bad files, and thousands of mutated headers."""

from __future__ import annotations

import contextlib
import random
import struct
import tracemalloc
from pathlib import Path

import pytest

from localllm.errors import ModelFileError
from localllm.gguf.local import read_local
from localllm.gguf.reader import ArrayInfo, read_header
from localllm.gguf.source import BytesSource, FileSource
from tests.factory import (
    LLAMA_8B,
    TINY,
    TINY_MAMBA,
    TINY_MOE,
    TINY_SWA,
    write_header_only,
    write_model,
)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(TINY, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_reads_a_generated_model(tiny_file: Path) -> None:
    with FileSource(tiny_file) as source:
        header = read_header(source)
    assert header.version == 3
    assert header.metadata["general.architecture"] == "llama"
    assert header.data_offset + header.data_size <= tiny_file.stat().st_size
    embd = next(t for t in header.tensors if t.name == "token_embd.weight")
    assert embd.shape == (TINY.n_embd, TINY.n_vocab)
    assert embd.nbytes == TINY.n_embd * TINY.n_vocab * 4


def test_header_only_8b_matches_the_real_file_size(tmp_path: Path) -> None:
    info = read_local(write_header_only(LLAMA_8B, tmp_path / "8b.gguf", "Q4_K_M"))
    assert info.parameter_count == 8_030_261_248  # Llama-3.1-8B
    assert abs(info.size_bytes / 2**30 - 4.58) < 0.01  # the published Q4_K_M size
    assert info.n_vocab == 128256 and info.quantization == "Q4_K_M"
    assert [layer.kv_bytes_per_cell for layer in info.layers] == [8 * 256 * 2] * 32


def test_long_arrays_are_kept_as_lengths(tmp_path: Path) -> None:
    path = write_header_only(LLAMA_8B, tmp_path / "8b.gguf", "Q8_0")
    with FileSource(path) as source:
        header = read_header(source)
    assert header.metadata["tokenizer.ggml.tokens"] == ArrayInfo("string", 128256)


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        (TINY_MOE, lambda m: m.expert_count == 4 and m.layers[0].expert_bytes > 0),
        (TINY_SWA, lambda m: [x.sliding_window for x in m.layers] == [True] * 5 + [False]),
        (TINY_MAMBA, lambda m: m.is_recurrent and m.layers[0].kv_bytes_per_cell == 0),
    ],
)
def test_variants(tmp_path: Path, spec: object, check: object) -> None:
    info = read_local(write_model(spec, tmp_path / "m.gguf"))  # type: ignore[arg-type]
    assert check(info)  # type: ignore[operator]


def _error(data: bytes, name: str = "model.gguf", size: int | None = None) -> str:
    with pytest.raises(ModelFileError) as info:
        read_header(BytesSource(data, name, size))
    return str(info.value)


def test_not_gguf() -> None:
    assert "not a GGUF file" in _error(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert "model.gguf" in _error(b"<html>" + b"\0" * 64)


def test_empty_and_tiny() -> None:
    assert "too short" in _error(b"")
    assert "too short" in _error(b"GG")


def test_versions() -> None:
    header = b"GGUF" + struct.pack("<I", 1) + b"\0" * 16
    assert "version 1 is not supported" in _error(header)
    assert "unsupported GGUF version 99" in _error(b"GGUF" + struct.pack("<I", 99) + b"\0" * 16)
    assert "big-endian" in _error(b"GGUF" + struct.pack(">I", 3) + b"\0" * 16)


def test_truncated_data_names_the_tensor(tiny_file: Path) -> None:
    data = tiny_file.read_bytes()
    message = _error(data[: len(data) - 1000], name="tiny.gguf")
    assert "truncated" in message and "tensor" in message and "interrupted download" in message


def test_truncated_header(tiny_file: Path) -> None:
    data = tiny_file.read_bytes()
    with FileSource(tiny_file) as source:
        header_end = read_header(source).data_offset
    for cut in (10, 30, header_end // 2, header_end - 40):
        message = _error(data[:cut])
        assert "truncated" in message or "past the end" in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such file"):
        FileSource(tmp_path / "nope.gguf")
    with pytest.raises(ModelFileError, match="is a directory"):
        FileSource(tmp_path)


def test_split_model_missing_a_shard(tmp_path: Path) -> None:
    write_model(TINY, tmp_path / "m-00001-of-00002.gguf")
    with pytest.raises(ModelFileError, match=r"missing m-00002-of-00002\.gguf"):
        read_local(tmp_path / "m-00001-of-00002.gguf")


def _mutations(data: bytes, header_end: int, rng: random.Random, count: int) -> list[bytes]:
    """Bit flips, truncations and huge counts/lengths written over 8-byte fields."""
    out = []
    huge = [2**64 - 1, 2**63, 2**40, 2**32 - 1, 2**31, 10**12]
    for i in range(count):
        mutated = bytearray(data[:header_end])
        kind = i % 4
        if kind == 0:
            for _ in range(rng.randint(1, 8)):
                pos = rng.randrange(len(mutated))
                mutated[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del mutated[rng.randrange(len(mutated)) :]
        elif kind == 2:
            pos = rng.randrange(max(len(mutated) - 8, 1))
            mutated[pos : pos + 8] = struct.pack("<Q", rng.choice(huge))
        else:
            pos = rng.randrange(max(len(mutated) - 4, 1))
            mutated[pos : pos + 4] = struct.pack(
                "<I", rng.choice([0, 4, 8, 9, 13, 2**31, 2**32 - 1])
            )
        out.append(bytes(mutated))
    return out


@pytest.mark.slow
def test_thousands_of_mutated_headers_never_hang_crash_or_balloon(tiny_file: Path) -> None:
    data = tiny_file.read_bytes()
    with FileSource(tiny_file) as source:
        header_end = read_header(source).data_offset
    cases = _mutations(data, header_end, random.Random(1234), 4000)
    # The first 16 bytes hold the version and counts: flip each bit there too.
    for pos in range(4, 24):
        for bit in range(8):
            flipped = bytearray(data[:header_end])
            flipped[pos] ^= 1 << bit
            cases.append(bytes(flipped))

    outcomes = {"parsed": 0, "refused": 0}
    largest_read = 0
    for case in cases:
        # Claim the real file size, as a local file or a remote Content-Range would.
        recording = _RecordingSource(case, "mutated.gguf", size=len(data))
        try:
            read_header(recording)
            outcomes["parsed"] += 1
        except ModelFileError as exc:
            assert "mutated.gguf" in str(exc)
            outcomes["refused"] += 1
        largest_read = max(largest_read, recording.largest_request)
    assert sum(outcomes.values()) == len(cases)
    assert outcomes["refused"] > len(cases) // 4
    # Every byte the reader holds comes through read(): it never asks for more than
    # its first chunk or what the file can hold, whatever the header claims.
    assert largest_read <= max(1 << 20, len(data))

    tracemalloc.start()
    try:
        for case in cases[::15]:
            with contextlib.suppress(ModelFileError):
                read_header(BytesSource(case, "mutated.gguf", size=len(data)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"peak allocation {peak >> 20} MiB"


class _RecordingSource(BytesSource):
    largest_request = 0

    def read(self, offset: int, length: int) -> bytes:
        self.largest_request = max(self.largest_request, length)
        return super().read(offset, length)


def test_split_model_reads_as_one_and_llama_cpp_agrees(tmp_path: Path) -> None:
    from localllm.engine.trial import trial_load
    from localllm.planner.settings import LoadSettings

    first = write_model(TINY, tmp_path / "tiny.gguf", split=8)
    shards = sorted(tmp_path.glob("tiny-*-of-*.gguf"))
    assert len(shards) > 1 and first == shards[0]
    whole = read_local(write_model(TINY, tmp_path / "whole.gguf"))
    split = read_local(shards[-1])  # any shard names the model
    assert split.shards == len(shards)
    assert split.parameter_count == whole.parameter_count
    assert split.size_bytes == whole.size_bytes
    s = LoadSettings(n_gpu_layers=0, n_ctx=512)
    assert trial_load(first, s).kv_total == trial_load(tmp_path / "whole.gguf", s).kv_total
