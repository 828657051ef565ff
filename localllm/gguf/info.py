"""What the planner needs to know about a model, from its GGUF header(s).

Per-layer facts are resolved here the way llama.cpp resolves them: head
counts may be arrays, sliding-window layers follow a per-architecture pattern
unless the file states one, and recurrent layers (Mamba, RWKV, the recurrent
half of hybrids) keep a fixed state instead of a KV cache.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gguf import LlamaFileType

from localllm.errors import ModelFileError
from localllm.gguf.reader import ArrayInfo, GGUFHeader, TensorInfo

SHARD_NAME = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")

# llama.cpp's set_swa_pattern(n): layer il uses the window when il % n < n - 1.
SWA_PATTERNS = {"gemma2": 2, "gemma3": 6, "cohere2": 4, "gpt-oss": 2, "exaone4": 4, "llama4": 4}
RECURRENT_ARCHS = {"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"}
# Hybrids: a layer with no KV heads is a recurrent one.
HYBRID_ARCHS = {"jamba", "falcon-h1", "granitehybrid", "nemotron_h", "lfm2", "plamo2", "qwen3next"}


@dataclass(frozen=True)
class Layer:
    index: int
    weight_bytes: int
    expert_bytes: int
    """Of weight_bytes, the MoE expert tensors (`*_exps`): only the used share is read per token."""
    n_head_kv: int
    kv_bytes_per_cell: int
    """K plus V for one token at f16 (0 for recurrent layers)."""
    sliding_window: bool
    recurrent_state_bytes: int
    """Per sequence, f32, for recurrent layers (0 otherwise)."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str
    architecture: str
    quantization: str
    parameter_count: int
    size_bytes: int
    """Tensor data only (what is loaded), summed over shards."""
    context_length: int
    n_layer: int
    n_embd: int
    n_head: int
    key_length: int
    value_length: int
    n_vocab: int
    sliding_window: int
    expert_count: int
    expert_used_count: int
    layers: tuple[Layer, ...]
    input_bytes: int
    """token_embd and friends: always on the CPU (llama.cpp's input layer)."""
    output_bytes: int
    """output and output_norm: the first to be offloaded."""
    tied_output: bool
    """No output.weight: llama.cpp reuses token_embd and copies it to the output device."""
    tensors: tuple[TensorInfo, ...]
    chat_template: str | None
    shards: int

    @property
    def is_recurrent(self) -> bool:
        return any(layer.recurrent_state_bytes for layer in self.layers)


def describe(headers: Sequence[GGUFHeader]) -> ModelInfo:
    """ModelInfo from one file's header, or from every shard of a split model."""
    if not headers:
        raise ValueError("describe() needs at least one header")
    first = _first_shard(headers)
    meta = first.metadata
    name = first.name
    arch = _str(meta, "general.architecture", name)
    tensors = tuple(t for h in headers for t in h.tensors)

    def key(suffix: str, default: Any = None) -> Any:
        return meta.get(f"{arch}.{suffix}", default)

    n_layer = _int(key("block_count"), "block_count", name)
    n_embd = _int(key("embedding_length"), "embedding_length", name)
    heads = _per_layer(key("attention.head_count", 0), n_layer, name, "head_count")
    heads_kv = _per_layer(key("attention.head_count_kv", heads), n_layer, name, "head_count_kv")
    n_head = max(heads) if heads else 0
    k_len = int(key("attention.key_length", n_embd // n_head if n_head else 0))
    v_len = int(key("attention.value_length", k_len))
    window = int(key("attention.sliding_window", 0) or 0)
    swa = _swa_layers(arch, key("attention.sliding_window_pattern"), window, n_layer)
    recurrent = [
        arch in RECURRENT_ARCHS or (arch in HYBRID_ARCHS and heads_kv[i] == 0)
        for i in range(n_layer)
    ]
    state = _recurrent_state_bytes(arch, meta, n_embd)

    per_layer_bytes = [0] * n_layer
    per_layer_experts = [0] * n_layer
    input_bytes = output_bytes = 0
    for t in tensors:
        layer = _layer_of(t.name)
        if layer is not None and layer < n_layer:
            per_layer_bytes[layer] += t.nbytes
            if "_exps" in t.name:
                per_layer_experts[layer] += t.nbytes
        elif t.name.startswith(("token_embd", "position_embd", "token_types")):
            input_bytes += t.nbytes
        else:
            output_bytes += t.nbytes
    names = {t.name for t in tensors}
    layers = tuple(
        Layer(
            index=i,
            weight_bytes=per_layer_bytes[i],
            expert_bytes=per_layer_experts[i],
            n_head_kv=heads_kv[i],
            kv_bytes_per_cell=0 if recurrent[i] else heads_kv[i] * (k_len + v_len) * 2,
            sliding_window=swa[i] and not recurrent[i],
            recurrent_state_bytes=state if recurrent[i] else 0,
        )
        for i in range(n_layer)
    )
    return ModelInfo(
        name=_str(meta, "general.name", name, default=display_name(name)),
        source=name,
        architecture=arch,
        quantization=quantization_label(meta.get("general.file_type"), tensors),
        parameter_count=sum(t.n_elements for t in tensors),
        size_bytes=sum(t.nbytes for t in tensors),
        context_length=int(key("context_length", 0) or 0),
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        key_length=k_len,
        value_length=v_len,
        n_vocab=_vocab_size(meta, tensors),
        sliding_window=window,
        expert_count=int(key("expert_count", 0) or 0),
        expert_used_count=int(key("expert_used_count", 0) or 0),
        layers=layers,
        input_bytes=input_bytes,
        output_bytes=output_bytes,
        tied_output="output.weight" not in names,
        tensors=tensors,
        chat_template=meta.get("tokenizer.chat_template")
        if isinstance(meta.get("tokenizer.chat_template"), str)
        else None,
        shards=len(headers),
    )


def quantization_label(file_type: object, tensors: Sequence[TensorInfo]) -> str:
    """`Q4_K_M` from general.file_type; else the type holding most bytes."""
    if isinstance(file_type, int):
        try:
            return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass
    by_type: dict[str, int] = {}
    for t in tensors:
        by_type[t.type.name] = by_type.get(t.type.name, 0) + t.nbytes
    return max(by_type, key=lambda k: by_type[k]) if by_type else "unknown"


def _first_shard(headers: Sequence[GGUFHeader]) -> GGUFHeader:
    if len(headers) == 1:
        return headers[0]
    by_no = {int(h.metadata.get("split.no", -1)): h for h in headers}
    count = headers[0].metadata.get("split.count")
    if count != len(headers) or sorted(by_no) != list(range(len(headers))):
        raise ModelFileError(
            headers[0].name,
            f"split model is incomplete: expected {count} shards, got shards {sorted(by_no)}",
        )
    return by_no[0]


def _layer_of(tensor_name: str) -> int | None:
    if not tensor_name.startswith("blk."):
        return None
    number = tensor_name.split(".", 2)[1]
    return int(number) if number.isdigit() else None


def _swa_layers(arch: str, pattern: object, window: int, n_layer: int) -> list[bool]:
    if isinstance(pattern, list) and len(pattern) == n_layer:
        return [bool(x) for x in pattern]
    if not window:
        return [False] * n_layer
    n = pattern if isinstance(pattern, int) and pattern > 0 else SWA_PATTERNS.get(arch, 0)
    if not n:
        return [False] * n_layer  # unknown pattern: assume full caches (over-estimates)
    return [i % n < n - 1 for i in range(n_layer)]


def _recurrent_state_bytes(arch: str, meta: Mapping[str, Any], n_embd: int) -> int:
    """llama.cpp's n_embd_r + n_embd_s for one layer and one sequence, in f32."""
    conv = int(meta.get(f"{arch}.ssm.conv_kernel", 0) or 0)
    inner = int(meta.get(f"{arch}.ssm.inner_size", 0) or 0)
    state = int(meta.get(f"{arch}.ssm.state_size", 0) or 0)
    groups = int(meta.get(f"{arch}.ssm.group_count", 0) or 0)
    if inner:
        r = max(conv - 1, 0) * (inner + 2 * groups * state)
        return 4 * (r + state * inner)
    head = int(meta.get(f"{arch}.wkv.head_size", 0) or 0)
    if head:
        shifts = int(meta.get(f"{arch}.token_shift_count", 2) or 2)
        return 4 * (shifts * n_embd + n_embd * head)
    return 0


def _vocab_size(meta: Mapping[str, Any], tensors: Sequence[TensorInfo]) -> int:
    tokens = meta.get("tokenizer.ggml.tokens")
    if isinstance(tokens, ArrayInfo):
        return tokens.length
    if isinstance(tokens, list):
        return len(tokens)
    embd = next((t for t in tensors if t.name == "token_embd.weight"), None)
    return embd.shape[1] if embd is not None and len(embd.shape) > 1 else 0


def _per_layer(value: object, n_layer: int, name: str, what: str) -> list[int]:
    if isinstance(value, list):
        if len(value) != n_layer or not all(isinstance(v, int) and v >= 0 for v in value):
            raise ModelFileError(name, f"{what} array does not match the {n_layer} layers")
        return list(value)
    return [_int(value, what, name, allow_zero=True)] * n_layer


def _int(value: object, what: str, name: str, allow_zero: bool = False) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        raise ModelFileError(name, f"missing or invalid {what} ({value!r})")
    if value > 1 << 24:
        raise ModelFileError(name, f"implausible {what} ({value})")
    return value


def _str(meta: Mapping[str, Any], key: str, name: str, default: str | None = None) -> str:
    value = meta.get(key, default)
    if not isinstance(value, str) or not value:
        raise ModelFileError(name, f"missing {key}")
    return value


def display_name(source: str) -> str:
    """A model's name from its path or URL: the file name without `.gguf` or a shard suffix."""
    tail = source.rstrip("/").rsplit("/", 1)[-1]
    match = SHARD_NAME.match(tail)
    return match.group("stem") if match else tail.removesuffix(".gguf")
