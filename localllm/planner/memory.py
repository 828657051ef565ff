"""Predict what llama.cpp allocates on each device for a model and load settings.

The formulas follow llama.cpp 0c1e570 (llama-cpp-python 0.3.36) and were
fitted against its own `no_alloc` trial loads over many shapes
(`benchmarks/planner_accuracy.py` prints the comparison):

- Layers are offloaded from the last: with `n_gpu_layers = g`, layer `i` is on
  the GPU when `i >= n_layer + 1 - g`; the output layer counts as one and goes
  first. `token_embd` always stays on the CPU; a model without `output.weight`
  gets a copy of it on the output layer's device.
- On x86 with AVX2 (and ARM with dot-product), llama.cpp repacks the CPU's
  Q4_0, Q4_K, IQ4_NL and Q2_K matrices into an extra, same-size buffer; the
  originals stay mapped, so those weights count twice.
- KV cache: `pad(n_ctx, 256)` cells per full-attention layer; a sliding-window
  layer keeps `min(n_ctx, pad(window + n_ubatch, 256))` per sequence; a
  recurrent layer keeps a fixed state per sequence.
- Compute buffer (per ubatch token, 4-byte floats): the peak of the output
  phase `V + 2E`, the attention phase (`ctx(H+1) + 2E + 3Eq + 2Ekv` without
  flash attention, `ctx/2 + 3E + Eq + 4Ekv` with it) and the FFN phase
  (`mask + 3F + 4E`). Exact for dense models on the CPU.
- Several devices (GPUs, RPC workers) holding every layer: llama.cpp pipelines
  ubatches across them, and each device's compute buffer holds its own layers'
  phases plus the pipeline's copies of the graph inputs (`pipeline_bytes`,
  measured over RPC devices: `tests/remote/test_workers.py` pins it).
- GPU: a CUDA/ROCm context the driver keeps outside llama.cpp's buffers
  (measured with NVML on an H200, CUDA 13: 607 to 611 MiB beyond the
  reported buffers, at every size and split). With partial offload, an MoE's
  GPU compute buffer also holds room for the CPU-side expert weights that
  large batches use on the GPU (measured: +206 MiB for a Mixtral-shaped
  model; bounded here by its largest CPU-side expert tensor); a dense
  model's does not grow (measured: 258 MiB for an 8B, full or partial).
  `benchmarks/gpu/vram.py` makes these measurements;
  `tests/planner/test_gpu_recorded.py` pins the planner to them.

A `MeasuredBuffers` from a trial load replaces the KV and compute formulas
with llama.cpp's own numbers for that file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gguf import GGMLQuantizationType

from localllm.gguf.info import ModelInfo
from localllm.planner.settings import KV_TYPE_BYTES, LoadSettings, MeasuredBuffers

REPACKED_TYPES = frozenset(
    {GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_K, GGMLQuantizationType.IQ4_NL,
     GGMLQuantizationType.Q2_K}
)  # fmt: skip
# Driver context and library workspaces the GPU runtime holds outside llama.cpp's buffers.
GPU_RUNTIME_OVERHEAD = {"cuda": 608 << 20, "rocm": 512 << 20, "vulkan": 256 << 20,
                        "sycl": 512 << 20}  # fmt: skip
_CELL_PAD = 256
HOST_RUNTIME_OVERHEAD = 16 << 20
"""Graph metadata, the scheduler's copies and thread stacks: outside every buffer
(measured: a process grows up to ~10 MiB beyond its buffers and scratch)."""


@dataclass(frozen=True)
class DeviceUse:
    """Bytes llama.cpp will use on one device, by purpose."""

    device: str
    """`CPU`, or `GPU0`, `GPU1`... by the report's GPU index."""
    weights: int = 0
    repack: int = 0
    kv: int = 0
    recurrent: int = 0
    compute: int = 0
    output: int = 0
    work: int = 0
    """CPU scratch memory outside llama.cpp's reported buffers (see `cpu_work_bytes`)."""
    overhead: int = 0
    """Runtime memory outside llama.cpp's buffers: the CUDA context on a GPU, graph
    metadata and thread stacks on the host."""
    layers: int = 0

    @property
    def buffers(self) -> int:
        """What llama.cpp itself reports for this device."""
        return self.weights + self.repack + self.kv + self.recurrent + self.compute + self.output

    @property
    def total(self) -> int:
        return self.buffers + self.work + self.overhead


@dataclass(frozen=True)
class MemoryEstimate:
    host: DeviceUse
    gpus: tuple[DeviceUse, ...] = field(default=())
    gpu_layers: int = 0
    n_layer: int = 0

    @property
    def total(self) -> int:
        return self.host.total + sum(g.total for g in self.gpus)


@dataclass(frozen=True)
class GpuTarget:
    """A GPU the layers may go to: its report index, backend and share of the layers."""

    index: int
    backend: str
    share: float = 1.0


def kv_cells(model: ModelInfo, layer_swa: bool, settings: LoadSettings) -> int:
    n_ctx = _pad(settings.n_ctx)
    if not layer_swa or not model.sliding_window or settings.swa_full:
        return n_ctx
    per_seq = max(n_ctx // max(settings.n_seq_max, 1), 1)
    window = _pad(model.sliding_window + settings.n_ubatch)
    return min(per_seq, window) * max(settings.n_seq_max, 1)


def kv_bytes(model: ModelInfo, settings: LoadSettings) -> list[int]:
    """KV cache bytes of each layer (0 for recurrent layers)."""
    k_bytes, v_bytes = KV_TYPE_BYTES[settings.type_k], KV_TYPE_BYTES[settings.type_v]
    out = []
    for layer in model.layers:
        if not layer.kv_bytes_per_cell:
            out.append(0)
            continue
        per_cell = layer.n_head_kv * (model.key_length * k_bytes + model.value_length * v_bytes)
        out.append(int(kv_cells(model, layer.sliding_window, settings) * per_cell))
    return out


def compute_bytes(model: ModelInfo, settings: LoadSettings) -> int:
    """The peak compute buffer of one full graph (see the module docstring)."""
    return max(compute_phases(model, settings))


def compute_phases(model: ModelInfo, settings: LoadSettings) -> tuple[int, int, int]:
    """The compute buffer's need in each phase of the graph: (output layer, attention,
    FFN). A device holding only some layers needs only their phases."""
    ub = settings.n_ubatch
    n_kv = _pad(settings.n_ctx) // max(settings.n_seq_max, 1)
    e, v = model.n_embd, model.n_vocab
    eq = model.n_head * model.key_length
    ekv = max((layer.n_head_kv for layer in model.layers), default=0) * model.key_length
    ff = _ffn_width(model)
    if settings.flash_attn:
        mask = n_kv / 2
        attention = mask + 3 * e + eq + 4 * ekv
    else:
        mask = n_kv
        attention = n_kv * (model.n_head + 1) + 2 * e + 3 * eq + 2 * ekv
    if not _attends(model):
        attention, mask = 0, 0  # purely recurrent: no attention, no mask
    ffn = mask + 3 * ff + 4 * e
    output = v + 2 * e
    return int(ub * 4 * output), int(ub * 4 * attention), int(ub * 4 * ffn)


def pipeline_bytes(model: ModelInfo, settings: LoadSettings, blocks: bool) -> tuple[int, int]:
    """What llama.cpp's pipeline parallelism adds (several GPU or RPC devices, every
    layer offloaded): the scheduler keeps 4 copies of each graph input, so that the
    next ubatch can start while devices still compute. (On a device, on the host.)

    Fitted to the buffers llama.cpp reports over 2 RPC devices: a device with blocks
    gains 3 copies of the attention mask and of 2 hidden states (1 with flash
    attention), one with only the output layer 3 hidden states; the host holds 4 of
    the mask (f16 with flash attention) and 6 hidden states (2)."""
    hidden = model.n_embd * settings.n_ubatch * 4
    n_kv = _pad(settings.n_ctx) // max(settings.n_seq_max, 1)
    masks = (1 + int(model.sliding_window > 0)) if _attends(model) else 0
    mask = masks * n_kv * settings.n_ubatch * (2 if settings.flash_attn else 4)
    states = 1 if settings.flash_attn else 2
    device = 3 * (mask + states * hidden) if blocks else 3 * hidden
    return device, 4 * mask + (2 if settings.flash_attn else 6) * hidden


def _attends(model: ModelInfo) -> bool:
    return any(layer.kv_bytes_per_cell for layer in model.layers)


def cpu_work_bytes(model: ModelInfo, settings: LoadSettings) -> int:
    """The CPU backend's scratch buffer, which llama.cpp does not report as a buffer.

    It holds activations converted to the weights' type for each matrix
    product; without flash attention the largest is the softmaxed KQ
    (`n_kv x n_ubatch x n_head` floats) converted to f16 for the V product.
    Measured here: +64 MiB for a 16-head model at 4096 tokens, as predicted.
    """
    ub = settings.n_ubatch
    activations = ub * max(_ffn_width(model), model.n_embd) * 2
    if settings.flash_attn or not _attends(model):
        return activations
    n_kv = _pad(settings.n_ctx) // max(settings.n_seq_max, 1)
    return max(activations, n_kv * ub * model.n_head * 2)


def estimate(
    model: ModelInfo,
    settings: LoadSettings,
    gpus: Sequence[GpuTarget] = (),
    repack: bool = True,
    measured: MeasuredBuffers | None = None,
) -> MemoryEstimate:
    """Bytes per device for loading `model` with `settings` across `gpus`.

    `repack`: the llama.cpp build repacks CPU weights (x86 AVX2 / ARM dotprod).
    `measured`: a trial load of this file with the same context settings; its
    KV and compute sizes replace the formulas.
    """
    n_layer = model.n_layer
    ngl = max(0, min(settings.n_gpu_layers, n_layer + 1)) if gpus else 0
    first_gpu_layer = n_layer + 1 - ngl
    device_of = _assign_layers(first_gpu_layer, n_layer, gpus)

    kv = kv_bytes(model, settings)
    kv_scale, compute_scale = _calibration(model, measured)
    kv = [int(k * kv_scale) for k in kv]
    seqs = max(settings.n_seq_max, 1)
    weights: dict[str, int] = {}
    repacked: dict[str, int] = {}
    kv_on: dict[str, int] = {}
    state_on: dict[str, int] = {}
    layers_on: dict[str, int] = {}
    for layer in model.layers:
        dev = device_of(layer.index)
        weights[dev] = weights.get(dev, 0) + layer.weight_bytes
        kv_on[dev] = kv_on.get(dev, 0) + kv[layer.index]
        state_on[dev] = state_on.get(dev, 0) + layer.recurrent_state_bytes * seqs
        layers_on[dev] = layers_on.get(dev, 0) + 1
    output_dev = device_of(n_layer)
    weights["CPU"] = weights.get("CPU", 0) + model.input_bytes
    weights[output_dev] = weights.get(output_dev, 0) + model.output_bytes
    if model.tied_output and output_dev != "CPU":
        weights[output_dev] += model.input_bytes
    if repack:
        for t in model.tensors:
            if (
                t.type in REPACKED_TYPES
                and len(t.shape) >= 2
                and not t.name.startswith("token_embd")
                and _tensor_device(t.name, device_of, n_layer) == "CPU"
            ):
                # The copy comes on top: the original stays mapped (it was read through
                # the mapping to build the copy, and llama.cpp maps the whole range).
                repacked["CPU"] = repacked.get("CPU", 0) + t.nbytes

    phases = compute_phases(model, settings)
    full_compute = int(max(phases) * compute_scale)
    partial = 0 < ngl < n_layer + 1
    # Several devices with every layer: llama.cpp pipelines ubatches across them.
    pipeline = len(gpus) > 1 and ngl == n_layer + 1
    # Fully offloaded, the CPU keeps only a small buffer for the input embeddings.
    small = 3 * model.n_embd * settings.n_ubatch * 4
    if pipeline:
        small += pipeline_bytes(model, settings, blocks=True)[1]
    host_compute = full_compute if (ngl == 0 or partial) else small
    output = model.n_vocab * 4 * seqs
    if measured is not None and measured.output:
        output = sum(measured.output.values())
    host = DeviceUse(
        device="CPU",
        weights=weights.get("CPU", 0),
        repack=repacked.get("CPU", 0),
        kv=kv_on.get("CPU", 0),
        recurrent=state_on.get("CPU", 0),
        compute=host_compute,
        output=output,
        work=cpu_work_bytes(model, settings) if (ngl == 0 or partial) else 0,
        overhead=HOST_RUNTIME_OVERHEAD,
        layers=layers_on.get("CPU", 0),
    )
    largest_cpu_experts = max(
        (t.nbytes for t in model.tensors if _tensor_device(t.name, device_of, n_layer) == "CPU"
         and "_exps." in t.name),
        default=0,
    )  # fmt: skip
    gpu_uses = []
    for target in gpus:
        name = f"GPU{target.index}"
        if name not in weights and name not in layers_on:
            continue
        gpu_uses.append(
            DeviceUse(
                device=name,
                weights=weights.get(name, 0),
                kv=kv_on.get(name, 0),
                recurrent=state_on.get(name, 0),
                compute=_device_compute(
                    model,
                    settings,
                    phases,
                    compute_scale,
                    pipeline,
                    blocks=layers_on.get(name, 0) > 0,
                    output=output_dev == name,
                )
                if not partial
                else full_compute + largest_cpu_experts,
                overhead=GPU_RUNTIME_OVERHEAD.get(target.backend, 0),
                layers=layers_on.get(name, 0),
            )
        )
    return MemoryEstimate(host=host, gpus=tuple(gpu_uses), gpu_layers=ngl, n_layer=n_layer)


def _device_compute(
    model: ModelInfo,
    settings: LoadSettings,
    phases: tuple[int, int, int],
    scale: float,
    pipeline: bool,
    blocks: bool,
    output: bool,
) -> int:
    """A fully offloaded device's compute buffer: the phases of the layers it holds
    (its blocks' attention and FFN, the output layer's), and the pipeline's copies."""
    out, attention, ffn = phases
    need = max((out,) * output + (attention, ffn) * blocks, default=0)
    extra = pipeline_bytes(model, settings, blocks)[0] if pipeline else 0
    return int(need * scale) + extra


def _calibration(model: ModelInfo, measured: MeasuredBuffers | None) -> tuple[float, float]:
    """How far llama.cpp's own numbers are from the formulas, as ratios that carry
    over to other settings (another KV type, context or layer split)."""
    if measured is None or measured.settings is None:
        return 1.0, 1.0
    kv = sum(kv_bytes(model, measured.settings))
    compute = compute_bytes(model, measured.settings)
    kv_scale = measured.kv_total / kv if kv and measured.kv_total else 1.0
    peak = max(measured.compute.values(), default=0)
    return kv_scale, (peak / compute if compute and peak else 1.0)


def _assign_layers(first_gpu_layer: int, n_layer: int, gpus: Sequence[GpuTarget]) -> _DeviceOf:
    """llama.cpp's layer split: offloaded layers in contiguous blocks by share."""
    if not gpus:
        return _DeviceOf(first_gpu_layer, n_layer, (), ())
    total = sum(max(g.share, 0.0) for g in gpus) or 1.0
    bounds, acc = [], 0.0
    for g in gpus:
        acc += max(g.share, 0.0) / total
        bounds.append(acc)
    return _DeviceOf(first_gpu_layer, n_layer, tuple(bounds), tuple(f"GPU{g.index}" for g in gpus))


@dataclass(frozen=True)
class _DeviceOf:
    first_gpu_layer: int
    n_layer: int
    bounds: tuple[float, ...]
    names: tuple[str, ...]

    def __call__(self, layer: int) -> str:
        if not self.names or layer < self.first_gpu_layer:
            return "CPU"
        count = self.n_layer + 1 - self.first_gpu_layer
        position = (layer - self.first_gpu_layer) / count
        for bound, name in zip(self.bounds, self.names, strict=True):
            if position < bound:
                return name
        return self.names[-1]


def _tensor_device(name: str, device_of: _DeviceOf, n_layer: int) -> str:
    if name.startswith("blk."):
        number = name.split(".", 2)[1]
        return device_of(int(number)) if number.isdigit() else "CPU"
    if name.startswith(("token_embd", "position_embd", "token_types")):
        return "CPU"
    return device_of(n_layer)


def _ffn_width(model: ModelInfo) -> int:
    """Intermediate floats per token in the FFN: F for dense, F x used experts for MoE."""
    widths = []
    for t in model.tensors:
        if t.name.endswith(("ffn_up.weight", "ffn_gate.weight")) and len(t.shape) >= 2:
            widths.append(t.shape[1])
        elif t.name.endswith(("ffn_up_exps.weight", "ffn_gate_exps.weight")) and len(t.shape) >= 3:
            widths.append(t.shape[1] * max(model.expert_used_count, 1) + t.shape[2])
        elif t.name.endswith("ssm_in.weight") and len(t.shape) >= 2:
            widths.append(t.shape[1])
    return max(widths, default=4 * model.n_embd)


def _pad(n: int) -> int:
    return -(-n // _CELL_PAD) * _CELL_PAD
