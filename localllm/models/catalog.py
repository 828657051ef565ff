"""Model management that reads: the stored models, one model's card, the running
models, and how each would fit this machine.

No HTTP here. The facts are plain JSON-ready dicts in the shape Ollama's `/api/tags`,
`/api/show` and `/api/ps` made the common one (the CLI and the TUI read them too);
a dialect adds what its wire needs around them. Header reads are cached by digest;
callers run these in a thread (they read files).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localllm.planner.budget import Budget
from localllm.planner.placement import HERE, HOST_DEVICE
from localllm.planner.plan import Fit
from localllm.store.manifests import Manifest
from localllm.store.modelfile import PARAMETERS
from localllm.store.resolve import stored
from localllm.store.store import Store
from localllm.store.templates import check_template
from localllm.workers.fallback import LEVELS
from localllm.workers.loading import DoesNotFit, plan_load
from localllm.workers.scheduler import Scheduler


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


class Catalog:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self._details: dict[str, dict[str, Any]] = {}
        self._fits: dict[str, dict[str, Any]] = {}

    def info(self, manifest: Manifest) -> tuple[Any, Mapping[str, Any]]:
        info, header = self.store.read_model(manifest)
        return info, header.metadata

    def details(self, manifest: Manifest) -> dict[str, Any]:
        """Ollama's `details`, cached by weights digest (a header read per model)."""
        return {k: v for k, v in self._facts(manifest).items() if not k.startswith("_")}

    def _facts(self, manifest: Manifest) -> dict[str, Any]:
        """`details`, and (under `_` keys) the trained context and the capabilities."""
        key = f"{manifest.model.digest}:{manifest.template}:{manifest.projector is not None}"
        if key not in self._details:
            from localllm.units import format_count

            info, metadata = self.info(manifest)
            template = manifest.template or info.chat_template or ""
            capabilities = capabilities_of(info.architecture, metadata, template)
            if manifest.projector is not None:
                capabilities.append("vision")
            self._details[key] = {
                "parent_model": "",
                "format": "gguf",
                "family": info.architecture,
                "families": [info.architecture],
                "parameter_size": format_count(info.parameter_count),
                "quantization_level": manifest.model.quantization or info.quantization,
                "_context": info.context_length,
                "_capabilities": capabilities,
            }
        return self._details[key]

    def summary(self, manifest: Manifest) -> dict[str, Any]:
        """What an API's model list says of a model: name, created, its context window
        (`context_length`, and `max_context_length`: the most it takes), capabilities."""
        context, trained = self.context_length(manifest)
        capabilities = self.capabilities(manifest)
        return {"name": manifest.name, "created": manifest.created, "context_length": context,
                "max_context_length": trained, "capabilities": capabilities}  # fmt: skip

    def capabilities(self, manifest: Manifest) -> list[str]:
        return list(self._facts(manifest)["_capabilities"])

    def context_length(self, manifest: Manifest) -> tuple[int, int]:
        """(the context a request gets: the Modelfile's `num_ctx`, else the model's
        trained context; the trained context, the most it can take)."""
        trained = int(self._facts(manifest)["_context"])
        num_ctx = manifest.parameters.get("num_ctx")
        return (int(num_ctx) if isinstance(num_ctx, int | str) else trained), trained

    def entry(self, manifest: Manifest) -> dict[str, Any]:
        return {
            "name": manifest.name,
            "model": manifest.name,
            "modified_at": iso(manifest.created),
            "size": manifest.size,
            "digest": manifest.model.digest.removeprefix("sha256-"),
            "details": self.details(manifest),
            "capabilities": self.capabilities(manifest),  # as /api/show has them
        }

    def folder(self) -> Path:
        """The models folder this server serves (the CLI checks it is the one it uses)."""
        return self.store.root.resolve()

    def workers(self) -> list[dict[str, Any]]:
        """The RPC workers, their models and health (probed: run it in a thread)."""
        return self.scheduler.worker_health()

    def manifest(self, name: str) -> Manifest:
        """The stored model `name` means (a 404 naming similar ones if none)."""
        return stored(name, self.store)

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
                    # beyond Ollama's shape: the KV cache cells in use, as the last answer ended
                    "kv_used": runner.kv_used,
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
                    # beyond Ollama's shape: how carefully it loaded (after a crash)
                    "fallback": LEVELS[settings.fallback] if settings else "",
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

    def show(
        self,
        manifest: Manifest,
        verbose: bool,
        system: str | None = None,
        template: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The model's card; `system`, `template` and `options` (Ollama's older show
        fields) show it as it would run with them, checked as a Modelfile's lines are."""
        options = {k: v for k, v in (options or {}).items() if k in PARAMETERS}
        if system is not None or template or options:
            manifest = replace(
                manifest,
                system=system if system is not None else manifest.system,
                template=check_template(template) if template else manifest.template,
                parameters={**manifest.parameters, **options},
            )
        info, metadata = self.info(manifest)
        template = manifest.template or info.chat_template or ""
        model_info = {
            k: (v if verbose or not isinstance(v, list | tuple) else None)
            for k, v in metadata.items()
            if not k.startswith("tokenizer.") or verbose
        }
        model_info["general.parameter_count"] = info.parameter_count
        capabilities = capabilities_of(info.architecture, metadata, template)
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


def capabilities_of(architecture: str, metadata: Mapping[str, Any], template: str) -> list[str]:
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
