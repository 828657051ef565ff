"""From a stored model to the `Load` a worker runs: the planner at load time.

The server detects the machine once (the first time a model loads) and
keeps that budget; each load is planned against what the models already
loaded leave of it (`planner.budget.less`), and checked by a llama.cpp
trial load before the worker starts, so a model that will not fit is
refused with the planner's reasons instead of crashing a worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from localllm.engine.protocol import Adapter, Draft, Load
from localllm.engine.trial import TrialError, trial_load
from localllm.errors import LocalLLMError
from localllm.gguf.info import ModelInfo, describe
from localllm.gguf.reader import read_header
from localllm.gguf.source import FileSource
from localllm.planner.budget import Budget
from localllm.planner.draft import draft_settings
from localllm.planner.entry import Beside, plan_model
from localllm.planner.explain import explain
from localllm.planner.memory import MemoryEstimate, estimate
from localllm.planner.plan import Candidate, Fit, Option, Plan, gpu_targets, plan
from localllm.planner.projector import ProjectorShape
from localllm.planner.rollback import with_full_swa
from localllm.planner.settings import LoadSettings, flash_attention
from localllm.planner.slots import with_slots
from localllm.store.blobs import check_digest
from localllm.store.manifests import Manifest
from localllm.store.store import Store


class DoesNotFit(LocalLLMError):
    """The model does not fit in what the loaded models leave free."""

    status = 500


@dataclass(frozen=True)
class Planned:
    load: Load
    option: Option


def plan_load(
    manifest: Manifest,
    store: Store,
    budget: Budget,
    n_ctx: int | None,
    overrides: dict[str, Any],
    parallel: int = 0,
    trial: bool = True,
) -> Planned:
    """The settings to load `manifest` with on `budget`; DoesNotFit if none fit.

    `overrides`: Ollama's load options the request set (num_gpu, num_thread, num_batch).
    `parallel`: slots for concurrent requests (0: as many as fit, see `planner.slots`).
    """
    if trial:  # a real load: the blobs are what the manifest says (sizes, files in place)
        store.check(manifest)
    paths = store.model_paths(manifest)
    info, _ = store.read_model(manifest)
    label = manifest.model.quantization or info.quantization
    # the Modelfile's, else the server's default (LOCALLLM_KV_CACHE_TYPE, in `overrides`)
    kv_type = manifest.parameters.get("kv_cache_type") or overrides.get("kv_cache_type")
    candidate = Candidate(label=label, model=info, download_bytes=0)
    measure = None
    if trial and len(paths) == 1:

        def measure(c: Candidate, s: Any) -> Any:
            return trial_load(paths[0], s)

    adapter_bytes = sum(a.size for a in manifest.adapters)

    def plan_at(room: Budget) -> Plan:
        """The model alone in `room`, with its slots and its sliding-window cache."""
        room = without_adapters(room, adapter_bytes)
        try:
            result = plan([candidate], room, n_ctx=n_ctx, measure=measure, kv_type=kv_type)
        except TrialError as exc:
            raise DoesNotFit(f"model {manifest.name!r} cannot be loaded: {exc}") from None
        if result.choice is None or result.choice.fit is Fit.NONE:
            return result
        with_room = with_slots(result.choice, room, parallel)
        targets = gpu_targets(room)

        def memory(s: LoadSettings) -> MemoryEstimate:
            return estimate(info, s, targets, room.repack)

        return replace(result, choice=with_full_swa(with_room, info, room, memory))

    draft_info = _draft_info(manifest, store)
    draft_named = ("its draft model", draft_info) if draft_info is not None else None
    beside = Beside(_projector(manifest, store), draft_named)
    result = plan_model(plan_at, budget, beside)
    choice = result.choice
    if choice is None or choice.fit is Fit.NONE:
        reasons = " ".join(explain(result))
        raise DoesNotFit(f"model {manifest.name!r} does not fit in the memory left: {reasons}")
    draft = None
    if manifest.draft is not None and draft_info is not None:
        path = str(store.blobs.path(manifest.draft.digest))
        draft = Draft(path, draft_settings(draft_info, choice.settings, info.n_layer))
    settings = choice.settings
    if "num_gpu" in overrides:  # attention on a GPU now: with flash attention there
        ngl = int(overrides["num_gpu"])
        fa = settings.flash_attn or flash_attention(ngl, settings.type_v)
        settings = replace(settings, n_gpu_layers=ngl, flash_attn=fa)
    if overrides.get("num_thread"):  # 0: the planner's choice, as in Ollama
        # More threads than CPUs only slow decoding down (ggml sizes its pool for 512).
        cpus = os.cpu_count() or 1
        settings = replace(settings, n_threads=max(1, min(int(overrides["num_thread"]), cpus)))
    if "num_batch" in overrides:
        # A step holds one token of every slot: the batch must take at least that many.
        n_batch = max(1, int(overrides["num_batch"]), settings.n_seq_max)
        settings = replace(settings, n_batch=n_batch, n_ubatch=min(settings.n_ubatch, n_batch))
    # Sampling in the graph pays where the output layer runs on a GPU: only token ids
    # then cross to the host, instead of a vocabulary of logits per stream per step.
    settings = replace(settings, backend_sampling=settings.n_gpu_layers > info.n_layer)
    adapters = tuple(Adapter(str(store.blobs.path(a.digest))) for a in manifest.adapters)
    if draft is not None:
        draft = replace(draft, settings=replace(draft.settings, n_threads=settings.n_threads))
    projector = manifest.projector and str(store.blobs.path(manifest.projector.digest))
    load = Load(tuple(str(p) for p in paths), settings, adapters, draft, projector or None)
    return Planned(load, choice)


def _projector(manifest: Manifest, store: Store) -> tuple[str, ProjectorShape] | None:
    """The shape of the model's vision projector, from its header."""
    if manifest.projector is None:
        return None
    with FileSource(store.blobs.path(manifest.projector.digest)) as source:
        header = read_header(source)
    tensors = {t.name: t.nbytes for t in header.tensors}
    return "its vision projector", ProjectorShape.from_header(header.metadata, tensors)


def _draft_info(manifest: Manifest, store: Store) -> ModelInfo | None:
    if manifest.draft is None:
        return None
    with FileSource(store.blobs.path(manifest.draft.digest)) as source:
        return describe([read_header(source)])


def on_workers(planned: Planned, budget: Budget) -> Planned:
    """The planned load with the workers whose devices took layers, and the split the
    plan assumed (each device's usable memory, in `budget`'s order)."""
    settings = planned.load.settings
    if settings.n_gpu_layers <= 0:
        return planned  # nothing offloaded: the workers stay free
    devices = [g for g in budget.gpus if g.usable > 0]
    workers = tuple(dict.fromkeys(g.endpoint for g in devices if g.endpoint))
    split = tuple(float(g.usable) for g in devices)
    settings = replace(settings, workers=workers, tensor_split=split)
    return replace(planned, load=replace(planned.load, settings=settings))


def machine_budget() -> Budget:
    """This machine's budget, detected (quickly: no bandwidth measurement)."""
    from localllm.planner.machine import this_machine

    return this_machine(quick=True).budget


def with_prompt_cache(load: Load, manifest: Manifest, where: Path | None, size: int) -> Load:
    """`load` with the folder of the model's saved prefixes (`engine.prompt_cache`) under
    `where`, by its digest, KV cache type and V layout (transposed without flash
    attention): a saved state loads only where all are the same; `size`: the most all of
    them may take (0: none kept)."""
    if where is None or size <= 0:
        return load
    digest = check_digest(manifest.model.digest).removeprefix("sha256-")[:16]
    s = load.settings
    folder = where / f"{digest}-{s.type_k}-{s.type_v}{'' if s.flash_attn else '-vt'}"
    return replace(load, prompt_cache=str(folder), prompt_cache_bytes=size)


def without_adapters(room: Budget, nbytes: int) -> Budget:
    """`room` less the LoRA adapters' weights, where llama.cpp puts them: beside the
    base model's weights, on its GPU (the roomiest) or else in RAM."""
    if nbytes <= 0:
        return room
    gpus = [g for g in room.gpus if g.usable > 0 and not g.unified]
    if not gpus:
        return replace(room, ram_usable=max(room.ram_usable - nbytes, 0))
    top = max(gpus, key=lambda g: g.usable)
    less_one = (replace(g, usable=max(g.usable - nbytes, 0)) if g is top else g for g in room.gpus)
    return replace(room, gpus=tuple(less_one))


def sampling_in_graph(load: Load, on: bool) -> Load:
    """`load` with sampling in llama.cpp's graph turned `on` or off, for the model and
    its draft model alike (`LOCALLLM_BACKEND_SAMPLING`)."""
    draft = load.draft
    if draft is not None:
        draft = replace(draft, settings=replace(draft.settings, backend_sampling=on))
    return replace(load, settings=replace(load.settings, backend_sampling=on), draft=draft)
