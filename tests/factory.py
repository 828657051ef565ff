"""Build GGUF models for tests and benchmarks: no weights are ever downloaded.

Two kinds of file:

- `write_model(spec, path)`: a complete model with random weights that llama.cpp
  loads and runs (byte-level vocabulary, a chat template). Quantize it with
  `quantize()`, which calls llama.cpp's own quantizer.
- `write_header_only(spec, path, ftype)`: the real header and tensor table of
  a quantized model of any size, followed by a hole: a sparse file that
  occupies a few KiB on disk but has the full size, like a header fetched with
  range reads. llama.cpp accepts it for `no_alloc` trial loads.

Shapes: `llama` (dense or MoE), `gemma3` (sliding-window layers) and `mamba`
(recurrent). `LLAMA_1B` and `LLAMA_8B` follow Llama-3.2-1B and Llama-3.1-8B.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

Q = gguf.GGMLQuantizationType

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class ModelSpec:
    arch: str = "llama"
    n_vocab: int = 384
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_ctx_train: int = 4096
    head_dim: int | None = None
    n_expert: int = 0
    n_expert_used: int = 0
    sliding_window: int = 0
    tied_embeddings: bool = False
    d_inner: int = 0  # mamba
    d_state: int = 16
    d_conv: int = 4
    dt_rank: int = 8
    name: str = "test-model"
    repeat_token: bool = False
    """Give the last two tokens the same text: llama.cpp aborts the process (GGML_ASSERT)."""
    fim: bool = False
    """Fill-in-the-middle tokens (`<fim_prefix>` ...) named in the metadata, as coder models
    have them."""
    rank_labels: tuple[str, ...] = ()
    """A reranker (llama.cpp's pooling type rank) with a classifier head of these
    labels, as Qwen3-Reranker's GGUFs are (arch qwen3: the last token's scores)."""

    @property
    def hd(self) -> int:
        return self.head_dim or self.n_embd // max(self.n_head, 1)


TINY = ModelSpec()
TINY_MOE = ModelSpec(n_expert=4, n_expert_used=2, name="tiny-moe")
TINY_SWA = ModelSpec(arch="gemma3", n_layer=6, sliding_window=128, tied_embeddings=True,
                     head_dim=32, name="tiny-swa")  # fmt: skip
TINY_MAMBA = ModelSpec(arch="mamba", n_layer=2, d_inner=128, n_head=0, n_head_kv=0, n_ff=0,
                       name="tiny-mamba")  # fmt: skip
SLOW = ModelSpec(name="slow", n_embd=512, n_layer=8, n_head=8, n_head_kv=4, n_ff=1536,
                 n_vocab=1024, n_ctx_train=8192)  # fmt: skip
"""Slow enough (hundreds of tokens/s on a CPU) that a long answer takes seconds."""
LLAMA_1B = ModelSpec(n_vocab=128256, n_embd=2048, n_layer=16, n_head=32, n_head_kv=8,
                     n_ff=8192, n_ctx_train=131072, head_dim=64, tied_embeddings=True,
                     name="llama-1b-shaped")  # fmt: skip
LLAMA_8B = ModelSpec(n_vocab=128256, n_embd=4096, n_layer=32, n_head=32, n_head_kv=8,
                     n_ff=14336, n_ctx_train=131072, name="llama-8b-shaped")  # fmt: skip
MIXTRAL_8X7B = ModelSpec(n_vocab=32000, n_embd=4096, n_layer=32, n_head=32, n_head_kv=8,
                         n_ff=14336, n_expert=8, n_expert_used=2, n_ctx_train=32768,
                         name="mixtral-8x7b-shaped")  # fmt: skip
RERANKER = ModelSpec(arch="qwen3", n_embd=128, n_head=4, n_head_kv=2, n_ff=256, n_layer=2,
                     rank_labels=("yes", "no"), name="tiny-reranker")  # fmt: skip
"""A small reranker: scores of (query, document) pairs that llama.cpp computes."""
LLAMA_70B = ModelSpec(n_vocab=128256, n_embd=8192, n_layer=80, n_head=64, n_head_kv=8,
                      n_ff=28672, n_ctx_train=131072, name="llama-70b-shaped")  # fmt: skip


def tensor_shapes(spec: ModelSpec) -> list[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) of every tensor, in llama.cpp's naming; numpy order is
    the reverse of ggml's `ne`, so a weight is (n_out, n_in)."""
    e, hd = spec.n_embd, spec.hd
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (spec.n_vocab, e))]
    for i in range(spec.n_layer):
        b = f"blk.{i}."
        shapes.append((b + "attn_norm.weight", (e,)))
        if spec.arch == "mamba":
            d = spec.d_inner
            shapes += [
                (b + "ssm_in.weight", (2 * d, e)),
                (b + "ssm_conv1d.weight", (d, spec.d_conv)),
                (b + "ssm_conv1d.bias", (d,)),
                (b + "ssm_x.weight", (spec.dt_rank + 2 * spec.d_state, d)),
                (b + "ssm_dt.weight", (d, spec.dt_rank)),
                (b + "ssm_dt.bias", (d,)),
                (b + "ssm_a", (d, spec.d_state)),
                (b + "ssm_d", (d,)),
                (b + "ssm_out.weight", (e, d)),
            ]
            continue
        shapes += [
            (b + "attn_q.weight", (spec.n_head * hd, e)),
            (b + "attn_k.weight", (spec.n_head_kv * hd, e)),
            (b + "attn_v.weight", (spec.n_head_kv * hd, e)),
            (b + "attn_output.weight", (e, spec.n_head * hd)),
            (b + "ffn_norm.weight", (e,)),
        ]
        if spec.arch in ("gemma3", "qwen3"):
            shapes += [(b + "attn_q_norm.weight", (hd,)), (b + "attn_k_norm.weight", (hd,))]
        if spec.arch == "gemma3":
            shapes += [(b + "post_attention_norm.weight", (e,)), (b + "post_ffw_norm.weight", (e,))]
        if spec.n_expert:
            x = spec.n_expert
            shapes += [
                (b + "ffn_gate_inp.weight", (x, e)),
                (b + "ffn_gate_exps.weight", (x, spec.n_ff, e)),
                (b + "ffn_up_exps.weight", (x, spec.n_ff, e)),
                (b + "ffn_down_exps.weight", (x, e, spec.n_ff)),
            ]
        else:
            shapes += [
                (b + "ffn_gate.weight", (spec.n_ff, e)),
                (b + "ffn_up.weight", (spec.n_ff, e)),
                (b + "ffn_down.weight", (e, spec.n_ff)),
            ]
    shapes.append(("output_norm.weight", (e,)))
    if not spec.tied_embeddings:
        shapes.append(("output.weight", (spec.n_vocab, e)))
    if spec.rank_labels:
        shapes.append(("cls.output.weight", (len(spec.rank_labels), e)))
    return shapes


def _writer(spec: ModelSpec, path: Path, file_type: int, split: int = 0) -> gguf.GGUFWriter:
    w = gguf.GGUFWriter(str(path), spec.arch, split_max_tensors=split)
    a = spec.arch
    w.add_name(spec.name)
    w.add_file_type(file_type)
    w.add_context_length(spec.n_ctx_train)
    w.add_embedding_length(spec.n_embd)
    w.add_block_count(spec.n_layer)
    w.add_layer_norm_rms_eps(1e-5)
    if a == "mamba":
        w.add_feed_forward_length(0)
        w.add_head_count(0)
        w.add_ssm_conv_kernel(spec.d_conv)
        w.add_ssm_inner_size(spec.d_inner)
        w.add_ssm_state_size(spec.d_state)
        w.add_ssm_time_step_rank(spec.dt_rank)
    else:
        w.add_feed_forward_length(spec.n_ff)
        w.add_head_count(spec.n_head)
        w.add_head_count_kv(spec.n_head_kv)
        w.add_key_length(spec.hd)
        w.add_value_length(spec.hd)
        w.add_rope_dimension_count(spec.hd)
        w.add_rope_freq_base(10000.0)
    if spec.n_expert:
        w.add_expert_count(spec.n_expert)
        w.add_expert_used_count(spec.n_expert_used)
    if spec.sliding_window:
        w.add_sliding_window(spec.sliding_window)
    if spec.rank_labels:
        w.add_pooling_type(gguf.PoolingType.RANK)
        w.add_array(f"{a}.classifier.output_labels", list(spec.rank_labels))
    _add_vocab(w, spec.n_vocab, spec.repeat_token, spec.fim)
    return w


FIM_TOKENS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")


def _add_vocab(
    w: gguf.GGUFWriter, n_vocab: int, repeat_token: bool = False, fim: bool = False
) -> None:
    """`<unk> <s> </s>`, the 256 byte tokens, then unique filler up to n_vocab (the last
    three: FIM tokens, with `fim`)."""
    control = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    tokens = control + [f"<0x{i:02X}>" for i in range(256)]
    tokens += [f"▁t{i}" for i in range(n_vocab - len(tokens))]
    if repeat_token:
        tokens[-1] = tokens[-2]
    types = [2, 3, 3, 3, 3] + [6] * 256 + [1] * (n_vocab - 261)
    if fim:
        tokens[-3:], types[-3:] = FIM_TOKENS, [3, 3, 3]
        for key, i in zip(("pre", "suf", "mid"), range(n_vocab - 3, n_vocab), strict=True):
            w.add_uint32(f"tokenizer.ggml.fim_{key}_token_id", i)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(4)
    w.add_unk_token_id(0)
    w.add_chat_template(CHAT_TEMPLATE)


def write_model(
    spec: ModelSpec,
    path: Path,
    dtype: type = np.float32,
    seed: int = 0,
    split: int = 0,
    scales: Mapping[str, float] | None = None,
    per_tensor: bool = False,
) -> Path:
    """A complete model with random weights (F32 or F16) that llama.cpp runs.
    `split`: at most this many tensors per file, as `NAME-0000i-of-0000n.gguf`
    (the first shard's path is returned). `scales`: the weights of the tensors whose
    name ends so are that many times larger. `per_tensor`: each tensor drawn from its
    own generator (seed and name), so models of other depths share the tensors they
    have in common (a draft model that agrees with its target to a known degree)."""
    rng = np.random.default_rng(seed)
    ftype = gguf.LlamaFileType.ALL_F32 if dtype is np.float32 else gguf.LlamaFileType.MOSTLY_F16
    w = _writer(spec, path, ftype, split)
    for name, shape in tensor_shapes(spec):
        if per_tensor:
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        if name.endswith("norm.weight") or name.endswith("ssm_d"):
            data = np.ones(shape, dtype=np.float32)
        elif name.endswith("ssm_a"):
            data = -np.exp(rng.standard_normal(shape, dtype=np.float32) * 0.1)
        else:
            scale = next((v for k, v in (scales or {}).items() if name.endswith(k)), 1.0)
            # (the first suffix that matches: name `attn_output.weight` before `output.weight`)
            data = rng.standard_normal(shape, dtype=np.float32) * (0.02 * scale)
        keep_f32 = len(shape) == 1 or name.endswith(("ssm_a", "ssm_conv1d.weight"))
        w.add_tensor(name, data if keep_f32 else data.astype(dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    shards = sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))
    return shards[0] if split and shards else path


def quantize(src: Path, dst: Path, ftype: int) -> Path:
    """Quantize with llama.cpp's own quantizer (`ftype`: a `LLAMA_FTYPE_*` value)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp failed to quantize {src} to type {ftype}")
    return dst


# --- header-only quantized files ----------------------------------------------------

# Approximations of llama.cpp's llama_tensor_get_type for the common file types:
# (base type, type for attn_v/ffn_down on "more bits" layers, output type).
MIXES: dict[str, tuple[Q, Q, Q]] = {
    "Q8_0": (Q.Q8_0, Q.Q8_0, Q.Q8_0),
    "Q6_K": (Q.Q6_K, Q.Q6_K, Q.Q6_K),
    "Q5_K_M": (Q.Q5_K, Q.Q6_K, Q.Q6_K),
    "Q4_K_M": (Q.Q4_K, Q.Q6_K, Q.Q6_K),
    "Q4_0": (Q.Q4_0, Q.Q4_0, Q.Q6_K),
    "IQ4_XS": (Q.IQ4_XS, Q.IQ4_XS, Q.Q6_K),
    "Q3_K_M": (Q.Q3_K, Q.Q5_K, Q.Q6_K),
    "Q2_K": (Q.Q2_K, Q.Q3_K, Q.Q6_K),
    "F16": (Q.F16, Q.F16, Q.F16),
}
FTYPE_IDS = {"Q8_0": 7, "Q6_K": 18, "Q5_K_M": 17, "Q4_K_M": 15, "Q4_0": 2, "IQ4_XS": 30,
             "Q3_K_M": 12, "Q2_K": 10, "F16": 1}  # fmt: skip


def _more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def mix_for(spec: ModelSpec, ftype: str) -> Callable[[str, tuple[int, ...]], Q]:
    base, more, output = MIXES[ftype]

    def pick(name: str, shape: tuple[int, ...]) -> Q:
        if len(shape) == 1 or name.endswith(("ssm_a", "ssm_conv1d.weight", "ssm_d")):
            return Q.F32
        if name == "output.weight" or (name == "token_embd.weight" and spec.tied_embeddings):
            return output
        block_size = gguf.GGML_QUANT_SIZES[base][0]
        if shape[-1] % block_size:
            return Q.F16
        if name.startswith("blk.") and name.endswith(("attn_v.weight", "ffn_down.weight")):
            layer = int(name.split(".")[1])
            return more if _more_bits(layer, spec.n_layer) else base
        return base

    return pick


def write_header_only(spec: ModelSpec, path: Path, ftype: str) -> Path:
    """The real header of `spec` quantized as `ftype`, then a hole to the full size."""
    pick = mix_for(spec, ftype)
    w = _writer(spec, path, FTYPE_IDS[ftype])
    total = 0
    for name, shape in tensor_shapes(spec):
        qtype = pick(name, shape)
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        n_elements = int(np.prod(shape))
        nbytes = n_elements // block * size
        w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
        total += -(-nbytes // w.data_alignment) * w.data_alignment
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    header = path.stat().st_size
    data_start = -(-header // w.data_alignment) * w.data_alignment
    os.truncate(path, data_start + total)
    return path


def write_lora(
    spec: ModelSpec, path: Path, rank: int = 4, seed: int = 0, strength: float = 0.0
) -> Path:
    """A LoRA adapter GGUF for `spec` (attention q/v of every layer), as llama.cpp's
    convert_lora_to_gguf writes them: general.type = adapter. `strength` 0: B is zero, as
    a fresh adapter's (no effect); else random B that scale, an adapter that changes the
    answers."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), spec.arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(rank))
    for i in range(spec.n_layer):
        for proj, rows in (("attn_q", spec.n_head * spec.hd), ("attn_v", spec.n_head_kv * spec.hd)):
            w.add_tensor(
                f"blk.{i}.{proj}.weight.lora_a",
                rng.standard_normal((rank, spec.n_embd), dtype=np.float32),
            )
            b = rng.standard_normal((rows, rank), dtype=np.float32) * strength
            w.add_tensor(f"blk.{i}.{proj}.weight.lora_b", b)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# --- multimodal projectors -----------------------------------------------------------


@dataclass(frozen=True)
class ProjectorSpec:
    """A LLaVA-style vision projector (`clip.projector_type` mlp), as small as libmtmd
    loads: an image becomes `(image_size / patch_size) ** 2` tokens of the text model."""

    image_size: int = 32
    patch_size: int = 8
    n_embd: int = 32
    n_ff: int = 64
    n_layer: int = 1
    n_head: int = 2

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


TINY_PROJECTOR = ProjectorSpec()


def write_projector(spec: ProjectorSpec, path: Path, text: ModelSpec, seed: int = 0) -> Path:
    """An `mmproj` GGUF for the text model `text`, with the keys and tensors
    libmtmd's clip loader reads for projector type `mlp` (tools/mtmd/clip.cpp): a
    CLIP-style encoder (class and position embeddings, pre-norm, `n_layer` blocks),
    then two projection layers into the text model's embedding width."""
    rng = np.random.default_rng(seed)
    e, f, out = spec.n_embd, spec.n_ff, text.n_embd
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_type(gguf.GGUFType.MMPROJ)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", True)
    for key, value in (("image_size", spec.image_size), ("patch_size", spec.patch_size),
                       ("embedding_length", e), ("feed_forward_length", f),
                       ("block_count", spec.n_layer), ("projection_dim", out),
                       ("attention.head_count", spec.n_head)):  # fmt: skip
        w.add_uint32(f"clip.vision.{key}", value)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    def tensor(name: str, shape: tuple[int, ...], ones: bool = False) -> None:
        data = np.ones(shape, np.float32) if ones else rng.standard_normal(shape) * 0.02
        w.add_tensor(name, data.astype(np.float32 if len(shape) == 1 else np.float16))

    tensor("v.class_embd", (e,))
    tensor("v.patch_embd.weight", (e, 3, spec.patch_size, spec.patch_size))
    tensor("v.position_embd.weight", (spec.image_tokens + 1, e))
    tensor("v.pre_ln.weight", (e,), ones=True)
    tensor("v.pre_ln.bias", (e,))
    for i in range(spec.n_layer):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensor(f"v.blk.{i}.{name}.weight", (e, e))
            tensor(f"v.blk.{i}.{name}.bias", (e,))
        for name in ("ln1", "ln2"):
            tensor(f"v.blk.{i}.{name}.weight", (e,), ones=True)
            tensor(f"v.blk.{i}.{name}.bias", (e,))
        tensor(f"v.blk.{i}.ffn_up.weight", (f, e))
        tensor(f"v.blk.{i}.ffn_up.bias", (f,))
        tensor(f"v.blk.{i}.ffn_down.weight", (e, f))
        tensor(f"v.blk.{i}.ffn_down.bias", (e,))
    tensor("mm.0.weight", (out, e))
    tensor("mm.0.bias", (out,))
    tensor("mm.2.weight", (out, out))
    tensor("mm.2.bias", (out,))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
