"""The model-management routes' work: list, show, running models, pull and create.

Store operations run in threads (they read headers, hash and download); pull
and create stream their progress as Ollama's `{status, digest, total,
completed}` lines.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.responses import Response

from localllm.planner.budget import Budget
from localllm.planner.placement import HERE, HOST_DEVICE
from localllm.planner.plan import Fit
from localllm.server.errors import APIError
from localllm.server.progress import Emit, run_job
from localllm.server.schemas import CreateBody
from localllm.store.access import FileAccess
from localllm.store.blobs import BlobStore, digest_name
from localllm.store.egress import Egress
from localllm.store.manifests import Manifest
from localllm.store.store import Store
from localllm.workers.loading import DoesNotFit, plan_load, read_model
from localllm.workers.scheduler import Scheduler


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


class Catalog:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        hub_endpoint: str | None = None,
        allow_files: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.hub_endpoint = hub_endpoint
        self.files = FileAccess((store.blobs.root, *(Path(f) for f in allow_files)))
        """What a request may name on this machine: uploaded blobs, allowed folders."""
        self.egress = Egress.for_endpoint(hub_endpoint)
        self._details: dict[str, dict[str, Any]] = {}
        self._fits: dict[str, dict[str, Any]] = {}

    # --- reading ----------------------------------------------------------------------

    def info(self, manifest: Manifest) -> tuple[Any, Mapping[str, Any]]:
        info, header = read_model(manifest, self.store)
        return info, header.metadata

    def details(self, manifest: Manifest) -> dict[str, Any]:
        """Ollama's `details`, cached by weights digest (a header read per model)."""
        digest = manifest.model.digest
        if digest not in self._details:
            from localllm.units import format_count

            info, _ = self.info(manifest)
            self._details[digest] = {
                "parent_model": "",
                "format": "gguf",
                "family": info.architecture,
                "families": [info.architecture],
                "parameter_size": format_count(info.parameter_count),
                "quantization_level": manifest.model.quantization or info.quantization,
            }
        return self._details[digest]

    def entry(self, manifest: Manifest) -> dict[str, Any]:
        return {
            "name": manifest.name,
            "model": manifest.name,
            "modified_at": iso(manifest.created),
            "size": manifest.size,
            "digest": manifest.model.digest.removeprefix("sha256-"),
            "details": self.details(manifest),
        }

    def manifests(self) -> list[Manifest]:
        """The stored models, the most recent first (the order `/api/tags` lists)."""
        return sorted(self.store.list(), key=lambda m: -m.created)

    def entries(self) -> list[dict[str, Any]]:
        return [self.entry(m) for m in self.manifests()]

    def running(self) -> list[dict[str, Any]]:
        out = []
        for slot in self.scheduler.slots.values():
            runner = slot.runner
            settings = runner.loaded.settings if runner.loaded else None
            expires = runner.expires_at
            out.append(
                {
                    **self.entry(slot.manifest),
                    "size": slot.estimate.total,
                    "size_vram": sum(
                        p.bytes
                        for p in slot.placement
                        if p.host == HERE and p.device != HOST_DEVICE
                    ),
                    "placement": [asdict(p) for p in slot.placement],
                    "expires_at": iso(expires) if expires else iso(time.time() + 10 * 365 * 86400),
                    "context_length": settings.n_ctx_seq if settings else 0,
                    "parallel": settings.n_seq_max if settings else 0,
                    "threads": settings.n_threads if settings else 0,
                    "gpu_layers": settings.n_gpu_layers if settings else 0,
                    "pid": runner.pid,
                    "busy": self.scheduler.in_flight(slot.manifest.name),
                    # beyond Ollama's shape: requests waiting to reload it with other settings
                    "reloading": self.scheduler.reloading.get(slot.manifest.name, 0),
                    # beyond Ollama's shape: the copies on other GPUs (LOCALLLM_REPLICAS)
                    "copies": [
                        {
                            "pid": c.runner.pid,
                            "busy": c.runner.in_flight,
                            "placement": [asdict(p) for p in c.placement],
                        }
                        for c in self.scheduler.copies.get(slot.manifest.name, [])
                    ],
                    "tip": self.scheduler.replica_tip(slot.manifest.name),
                    # beyond Ollama's shape: speculative decoding's figures so far
                    "speculation": {
                        "drafter": "draft model" if slot.manifest.draft else "prompt lookup",
                        **runner.speculation.to_dict(),
                    },
                }
            )
        return out

    def _draft_path(self, manifest: Manifest) -> Path | None:
        return self.store.blobs.path(manifest.draft.digest) if manifest.draft else None

    def _projector_path(self, manifest: Manifest) -> Path | None:
        layer = manifest.projector
        return self.store.blobs.path(layer.digest) if layer else None

    def show(self, manifest: Manifest, verbose: bool) -> dict[str, Any]:
        info, metadata = self.info(manifest)
        template = manifest.template or info.chat_template or ""
        model_info = {
            k: (v if verbose or not isinstance(v, list | tuple) else None)
            for k, v in metadata.items()
            if not k.startswith("tokenizer.") or verbose
        }
        model_info["general.parameter_count"] = info.parameter_count
        capabilities = _capabilities(info.architecture, metadata, template)
        if manifest.projector is not None:
            capabilities.append("vision")
        weights = self.store.blobs.path(manifest.model.digest)
        parameters = "\n".join(
            f"{k} {v}"
            for k, vs in manifest.parameters.items()
            for v in (vs if isinstance(vs, list) else [vs])
        )
        return {
            "name": manifest.name,  # beyond Ollama's shape: what the typed name resolved to
            "modelfile": manifest.to_modelfile(
                weights, self._draft_path(manifest), self._projector_path(manifest)
            ).to_text(),
            "parameters": parameters,
            "template": template,
            "system": manifest.system or "",
            "license": "\n".join(manifest.licenses),
            "details": self.details(manifest),
            "model_info": _jsonable(model_info),
            "capabilities": capabilities,
            "modified_at": iso(manifest.created),
        }

    def fit(self, manifest: Manifest, budget: Budget) -> dict[str, Any]:
        """How `manifest` would load on the whole machine: the planner's fit badge.

        Planned without a trial load (header arithmetic only) and cached by digest, so
        the models screen can ask for every model each time it opens.
        """
        n_ctx = manifest.parameters.get("num_ctx")
        key = f"{manifest.model.digest}:{n_ctx}"
        if key not in self._fits:
            try:
                ctx = int(n_ctx) if isinstance(n_ctx, int | str) else None
                option = plan_load(manifest, self.store, budget, ctx, {}, 1, trial=False).option
            except DoesNotFit:
                self._fits[key] = {"fit": Fit.NONE.value, "gpu_layers": 0, "layers": 0}
            else:
                self._fits[key] = {
                    "fit": option.fit.value,
                    "gpu_layers": option.settings.n_gpu_layers,
                    "layers": option.candidate.model.n_layer + 1,
                    "context_length": option.settings.n_ctx,
                    "memory": option.estimate.total,
                    "tokens_per_s": option.tokens_per_s,
                }
        return {"name": manifest.name, **self._fits[key]}

    # --- writing ----------------------------------------------------------------------

    async def pull(self, text: str, stream: bool) -> Response:
        def job(emit: Emit) -> None:
            from localllm.planner.machine import planner_for_this_machine
            from localllm.store.pull import PullEvent
            from localllm.store.resolve import pull

            def on_event(event: PullEvent) -> None:
                if event.status == "downloading" and event.progress is not None and event.file:
                    emit(
                        {
                            "status": f"pulling {Path(event.file).name}",
                            "digest": event.file,
                            "total": event.progress.total,
                            "completed": event.progress.done,
                        }
                    )
                elif event.status == "planned" and event.plan is not None:
                    from localllm.planner.explain import explain

                    # Beyond Ollama's shape: the planner's reasons, for `localllm run`.
                    emit({"status": "planned", "plan": explain(event.plan)[:3]})
                elif event.status != "success":  # said once, at the very end
                    emit({"status": event.status})

            emit({"status": "pulling manifest"})
            pull(text, self.store, planner_for_this_machine(), on_event, endpoint=self.hub_endpoint,
                 files=self.files, egress=self.egress)  # fmt: skip
            emit({"status": "writing manifest"})

        return await run_job(job, stream)

    def _uploaded(self, body: CreateBody) -> tuple[str | None, str | None, tuple[str, ...]]:
        """(the uploaded GGUF to create from, its vision projector, the uploaded adapters):
        the blobs that `files` and `adapters` name, which must all have been uploaded. A
        GGUF of architecture `clip` among the files is the projector, as in Ollama."""
        models: list[str] = []
        projectors: list[str] = []
        for name, digest in (body.files or {}).items():
            path = _blob_path(self.store.blobs, digest, f"files.{name}")
            if not name.lower().endswith(".gguf"):
                raise APIError(400, f"files.{name}: only GGUF files make a model here "
                               "(convert safetensors to GGUF first)")  # fmt: skip
            (projectors if _is_clip(path) else models).append(path)
        if len(models) > 1 or len(projectors) > 1:
            raise APIError(400, f"files: one GGUF model file (and one projector) is supported, "
                           f"not {len(models)} (merge a split model first)")  # fmt: skip
        if projectors and not models:
            raise APIError(400, "files: a vision projector needs its model's GGUF beside it")
        adapters = tuple(
            _blob_path(self.store.blobs, digest, f"adapters.{name}")
            for name, digest in (body.adapters or {}).items()
        )
        return (models[0] if models else None), (projectors[0] if projectors else None), adapters

    async def create(self, body: CreateBody) -> Response:
        from localllm.store.modelfile import (
            ROLES,
            Message,
            Modelfile,
            parameter_value,
            parse_modelfile,
        )
        from localllm.store.names import parse_name

        name = parse_name(body.model or body.name or "")
        if body.quantize:
            raise APIError(
                400, "quantize is not supported by create; pull the quantization instead"
            )
        uploaded, projector, adapters = self._uploaded(body)
        if uploaded and (body.from_ or body.modelfile):
            raise APIError(400, "files: send either files or from (or a modelfile), not both")
        from_ = body.from_ or uploaded
        if body.modelfile:
            modelfile = parse_modelfile(body.modelfile, source="modelfile")
        elif from_:
            parameters: dict[str, object] = {}
            for key, value in (body.parameters or {}).items():
                try:
                    parameters[key] = parameter_value(key, value)
                except ValueError as exc:
                    raise APIError(400, f"parameters.{key}: {exc}") from None
            for i, m in enumerate(body.messages or ()):
                if m.role not in ROLES:  # the Modelfile's MESSAGE rule
                    raise APIError(400, f"messages[{i}].role: must be one of {', '.join(ROLES)}")
            licenses = [body.license] if isinstance(body.license, str) else list(body.license or [])
            modelfile = Modelfile(
                from_=from_,
                parameters=parameters,
                template=body.template,
                system=body.system,
                licenses=tuple(licenses),
                messages=tuple(Message(m.role, m.content or "") for m in body.messages or ()),
            )
        else:
            raise APIError(
                400, "create needs `from` (a model, a GGUF path or a Hub reference) or `files`"
            )
        if adapters:
            modelfile = replace(modelfile, adapters=modelfile.adapters + adapters)
        if projector:
            modelfile = replace(modelfile, projector=projector)

        def job(emit: Emit) -> None:
            from localllm.planner.machine import planner_for_this_machine
            from localllm.store.create import create

            emit({"status": "reading model metadata"})
            create(name, modelfile, self.store, Path.cwd(), planner_for_this_machine(),
                   files=self.files)  # fmt: skip
            emit({"status": "writing manifest"})

        return await run_job(job, body.stream)


def _blob_path(blobs: BlobStore, digest: str, where: str) -> str:
    name = digest_name(digest, where)
    if not blobs.has(name):
        raise APIError(
            400, f"{where}: blob {digest} has not been uploaded (POST /api/blobs/{digest} first)"
        )
    return str(blobs.path(name))


def _is_clip(path: str) -> bool:
    """Whether the GGUF at `path` is a vision projector (architecture `clip`)."""
    from localllm.errors import LocalLLMError
    from localllm.gguf.reader import read_header
    from localllm.gguf.source import FileSource

    try:
        with FileSource(Path(path)) as f:
            return read_header(f).metadata.get("general.architecture") == "clip"
    except (OSError, LocalLLMError):
        return False  # not a GGUF that reads: create says what is wrong with it


def _capabilities(architecture: str, metadata: Mapping[str, Any], template: str) -> list[str]:
    """What `/api/show` says the model does, as Ollama's clients read it: `completion`
    unless it is an embedding model (it has a pooling type), `embedding` since
    `/api/embed` serves every model, `tools` when its template renders tools (Jinja's
    `tools`, Go's `.Tools`), `thinking` when it thinks (`localllm.formats.thinks`),
    `insert` when a `suffix` can be filled in: a Go template with `.Suffix`, or the
    model's fill-in-the-middle tokens."""
    from localllm.formats import thinks

    capabilities = [] if f"{architecture}.pooling_type" in metadata else ["completion"]
    capabilities.append("embedding")
    if "tools" in template.lower():
        capabilities.append("tools")
    if thinks(template):
        capabilities.append("thinking")
    if ".Suffix" in template or any(all(k in metadata for k in keys) for keys in _FIM_KEYS):
        capabilities.append("insert")
    return capabilities


_FIM_KEYS = tuple(
    tuple(f"tokenizer.ggml.{name}_token_id" for name in names)
    for names in (("fim_pre", "fim_suf", "fim_mid"), ("prefix", "suffix", "middle"))
)
"""The fill-in-the-middle token ids as GGUF files name them (newer, then older)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
