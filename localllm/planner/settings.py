"""The load parameters the planner chooses and the engine applies to llama.cpp."""

from __future__ import annotations

from dataclasses import dataclass, field

# Bytes per element of the KV cache types llama.cpp offers (q types: block / 32 values).
KV_TYPE_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


@dataclass(frozen=True)
class LoadSettings:
    n_gpu_layers: int
    """llama.cpp's count: layers from the last one, the output layer counting as one."""
    n_ctx: int
    n_batch: int = 2048
    n_ubatch: int = 512
    n_seq_max: int = 1
    flash_attn: bool = True
    type_k: str = "f16"
    type_v: str = "f16"
    n_threads: int = 1
    devices: tuple[int, ...] = field(default=())
    """GPU indices to use (empty: all that llama.cpp sees)."""
    workers: tuple[str, ...] = ()
    """RPC workers (HOST:PORT, `localllm worker`) whose devices take part of the
    offloaded layers, ahead of the local GPUs (llama.cpp's order: fewer hops)."""
    tensor_split: tuple[float, ...] = ()
    """Each device's share of the offloaded layers, in that order: the workers' devices,
    then the local GPUs (empty: llama.cpp's split by free memory)."""
    numa: str = ""
    """llama.cpp's NUMA mode (`distribute`, `isolate`; "": none), from `planner.numa`."""
    cpus: tuple[int, ...] = ()
    """CPUs the worker is pinned to (`isolate`: one node's)."""
    backend_sampling: bool = False
    """Sample inside llama.cpp's graph, where the output layer runs (the GPU), so only
    token ids cross to the host; for requests whose sampler chain allows it."""
    fallback: int = 0
    """How carefully llama.cpp loads, after a worker crashed loading (`workers.fallback`):
    0 its defaults; 1 no extra buffer types (no weight repacking: the AMX repack that
    segfaults on some CPUs); 2 that, and the file read instead of memory-mapped."""
    swa_full: bool = False
    """A full-size cache for sliding-window layers (llama.cpp's `swa_full`): costs the
    memory of a full cache, and lets the engine cut a sequence back (rejected guesses,
    a chat's reused prefix), which a window-sized cache cannot (`planner.rollback`)."""

    @property
    def n_ctx_seq(self) -> int:
        """The context one request sees: `n_ctx` is split among the `n_seq_max` slots."""
        return self.n_ctx // max(self.n_seq_max, 1)


def flash_attention(n_gpu_layers: int, type_v: str) -> bool:
    """Whether llama.cpp should compute attention with flash attention: wherever a GPU
    holds some layer's attention (less memory, faster there) and wherever the V cache is
    quantized (llama.cpp needs it then), but not where all of it runs on the CPU. There
    llama.cpp's flash attention goes over the whole cache one query row at a time:
    decoding a 1B Q4_K_M 2,048 tokens deep on 2 Xeon cores took 6.6 tokens/s with it and
    13.7 without (4,096 deep: 3.9 and 11.0; 128 deep: alike), for prefill a fifth faster
    than without (`benchmarks/results/flash-attention-cpu.md`). `n_gpu_layers` counts the
    output layer, as llama.cpp's does."""
    return n_gpu_layers > 1 or type_v != "f16"


@dataclass(frozen=True)
class MeasuredBuffers:
    """What llama.cpp reported for one load of one file (a `no_alloc` trial or a real load).

    Sizes are bytes per buffer name as llama.cpp prints it (`CPU`, `CUDA0`,
    `CPU_Mapped`, `CPU_REPACK`...). In a trial load the model buffers are 0:
    weights come from the tensor table instead.
    """

    kv_total: int
    kv_layers_by_device: dict[str, int]
    """How many KV layers live on each device (the per-layer `dev =` lines)."""
    recurrent_total: int
    compute: dict[str, int]
    output: dict[str, int]
    model: dict[str, int]
    kv_buffers: dict[str, int]
    offloaded: tuple[int, int] | None
    """(layers offloaded, layers in total) from `offloaded N/M layers to GPU`."""
    settings: LoadSettings | None = None
    """The settings of the load that reported these sizes."""
