"""From a stored model to the `Load` a worker runs: the planner at load time.

The server detects the machine once (the first time a model loads) and
keeps that budget; each load is planned against what the models already
loaded leave of it (`planner.budget.less`), and checked by a llama.cpp
trial load before the worker starts, so a model that will not fit is
refused with the planner's reasons instead of crashing a worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from localllm.engine.protocol import Adapter, Draft, Load
from localllm.errors import LocalLLMError
from localllm.planner.budget import Budget
from localllm.planner.plan import Fit, Option
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
    from localllm.engine.trial import TrialError, trial_load
    from localllm.planner.explain import explain
    from localllm.planner.memory import MemoryEstimate, estimate
    from localllm.planner.plan import Candidate, gpu_targets, plan
    from localllm.planner.rollback import with_full_swa
    from localllm.planner.settings import LoadSettings
    from localllm.planner.slots import with_slots

    if trial:  # a real load: the blobs are what the manifest says (sizes, files in place)
        store.check(manifest)
    paths = store.model_paths(manifest)
    info, _ = store.read_model(manifest)
    label = manifest.model.quantization or info.quantization
    candidate = Candidate(label=label, model=info, download_bytes=0)
    measure = None
    if trial and len(paths) == 1:

        def measure(c: Candidate, s: Any) -> Any:
            return trial_load(paths[0], s)

    def choose(room: Budget) -> Option:
        try:
            result = plan([candidate], room, n_ctx=n_ctx, measure=measure)
        except TrialError as exc:
            raise DoesNotFit(f"model {manifest.name!r} cannot be loaded: {exc}") from None
        if result.choice is None or result.choice.fit is Fit.NONE:
            reasons = " ".join(explain(result))
            beside = " beside its draft model" if room is not budget else ""
            raise DoesNotFit(
                f"model {manifest.name!r} does not fit in the memory left{beside}: {reasons}"
            )
        with_room = with_slots(result.choice, room, parallel)
        targets = gpu_targets(room)

        def memory(s: LoadSettings) -> MemoryEstimate:
            return estimate(info, s, targets, room.repack)

        return with_full_swa(with_room, info, room, memory)

    choice = choose(budget)
    if manifest.projector is not None:
        choice = _with_projector(manifest, store, budget, choice, choose)
    draft = None
    if manifest.draft is not None:
        choice, draft = _with_draft(manifest, store, budget, info.n_layer, choice, choose)
    settings = choice.settings
    if "num_gpu" in overrides:
        settings = replace(settings, n_gpu_layers=int(overrides["num_gpu"]))
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


def _with_projector(
    manifest: Manifest, store: Store, budget: Budget, choice: Option,
    choose: Callable[[Budget], Option],
) -> Option:  # fmt: skip
    """The model's plan with its vision projector's weights and compute buffer beside it
    (`planner.projector`): planned again in what the projector leaves when both do not
    fit, so an image never finds the memory gone."""
    from localllm.gguf.reader import read_header
    from localllm.gguf.source import FileSource
    from localllm.planner.budget import less
    from localllm.planner.draft import combined, fits_beside, without_runtime
    from localllm.planner.projector import ProjectorShape, projector_estimate

    assert manifest.projector is not None
    with FileSource(store.blobs.path(manifest.projector.digest)) as source:
        header = read_header(source)
    shape = ProjectorShape.from_header(header.metadata, {t.name: t.nbytes for t in header.tensors})
    memory = projector_estimate(shape, choice.settings, budget)
    if not fits_beside(choice.estimate, memory, budget):
        choice = choose(less(budget, [without_runtime(memory)]))
        memory = projector_estimate(shape, choice.settings, budget)
    return replace(choice, estimate=combined(choice.estimate, memory))


def _with_draft(
    manifest: Manifest,
    store: Store,
    budget: Budget,
    n_layer: int,
    choice: Option,
    choose: Callable[[Budget], Option],
) -> tuple[Option, Draft]:
    """The target's plan with its draft model beside it (`planner.draft`): planned
    again in what the draft leaves when both do not fit; the option's estimate counts
    both, so the server's budget does."""
    from localllm.gguf.info import describe
    from localllm.gguf.reader import read_header
    from localllm.gguf.source import FileSource
    from localllm.planner.budget import less
    from localllm.planner.draft import (
        combined,
        draft_estimate,
        draft_settings,
        fits_beside,
        without_runtime,
    )

    assert manifest.draft is not None
    path = store.blobs.path(manifest.draft.digest)
    with FileSource(path) as source:
        info = describe([read_header(source)])
    settings = draft_settings(info, choice.settings, n_layer)
    memory = draft_estimate(info, settings, budget)
    if not fits_beside(choice.estimate, memory, budget):
        choice = choose(less(budget, [without_runtime(memory)]))
        settings = draft_settings(info, choice.settings, n_layer)
        memory = draft_estimate(info, settings, budget)
    option = replace(choice, estimate=combined(choice.estimate, memory))
    return option, Draft(str(path), settings)


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
