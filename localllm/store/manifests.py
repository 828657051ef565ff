"""Manifests: what a model name means, as JSON files that point at blobs.

`<models>/manifests/<namespace>/<model>/<tag>.json` (namespace `library` when
the name has none). A manifest holds the weights' blob, LoRA adapters, the
Modelfile's parameters, template, system prompt, messages and licenses, and
where the model came from. Written atomically: a crash leaves the old
manifest or the new one. `schema_version` lets later versions migrate.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from localllm.errors import LocalLLMError
from localllm.store.atomic import StoreError, atomic_write
from localllm.store.blobs import InPlace
from localllm.store.modelfile import Message, Modelfile
from localllm.store.names import ModelName, parse_name

SCHEMA_VERSION = 1
DEFAULT_NAMESPACE = "library"


class ModelNotFoundError(LocalLLMError):
    """No model of that name is in the store."""

    status = 404


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    quantization: str | None = None
    source: str | None = None
    """Where the bytes came from: a local path, a URL, `hf.co/OWNER/REPO/FILE`."""
    in_place: InPlace | None = None
    """Set when the blob is the user's own file, used where it lies (`create --in-place`)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layer:
        place = data.get("in_place")
        return cls(**{**data, "in_place": InPlace(**place) if place else None})


@dataclass(frozen=True)
class Manifest:
    name: str
    """The full `[namespace/]model:tag`."""
    model: Layer
    """The weights; for a split model, its first shard."""
    parts: tuple[Layer, ...] = ()
    """The other shards of a split model, in order."""
    adapters: tuple[Layer, ...] = ()
    projector: Layer | None = None
    """A vision model's multimodal projector (`mmproj`), carried from Ollama's store."""
    draft: Layer | None = None
    """The draft model's weights (Modelfile `DRAFT`): speculative decoding."""
    parameters: dict[str, Any] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    messages: tuple[Message, ...] = ()
    licenses: tuple[str, ...] = ()
    source: str | None = None
    created: float = 0.0
    schema_version: int = SCHEMA_VERSION

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Every blob the model uses: weights, shards, adapters, projector, draft."""
        extra = tuple(x for x in (self.projector, self.draft) if x is not None)
        return (self.model, *self.parts, *self.adapters, *extra)

    @property
    def digests(self) -> set[str]:
        return {layer.digest for layer in self.layers}

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def renamed(self, name: ModelName) -> Manifest:
        return replace(self, name=str(name), created=time.time())

    def to_modelfile(
        self, weights: Path, draft: Path | None = None, projector: Path | None = None
    ) -> Modelfile:
        """The Modelfile that recreates this model from its weights at `weights` (and its
        draft model's at `draft`, its vision projector's at `projector`)."""
        return Modelfile(
            from_=str(weights), parameters=dict(self.parameters), template=self.template,
            system=self.system, licenses=self.licenses, messages=self.messages,
            draft=str(draft) if draft is not None else None,
            projector=str(projector) if projector is not None else None,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, **_without_unset(asdict(self))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = int(data.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise StoreError(f"manifest schema {version} is newer than this localllm: upgrade it")
        data = {k: v for k, v in data.items() if k != "schema_version"}
        return cls(
            name=data["name"],
            model=Layer.from_dict(data["model"]),
            parts=tuple(Layer.from_dict(p) for p in data.get("parts", ())),
            adapters=tuple(Layer.from_dict(a) for a in data.get("adapters", ())),
            projector=Layer.from_dict(data["projector"]) if data.get("projector") else None,
            draft=Layer.from_dict(data["draft"]) if data.get("draft") else None,
            parameters=dict(data.get("parameters", {})),
            template=data.get("template"),
            system=data.get("system"),
            messages=tuple(Message(**m) for m in data.get("messages", ())),
            licenses=tuple(data.get("licenses", ())),
            source=data.get("source"),
            created=float(data.get("created", 0.0)),
        )


def _without_unset(value: Any) -> Any:
    """A layer's `in_place` only where set: other manifests read as before (and by
    earlier versions of localllm)."""
    if isinstance(value, dict):
        return {k: _without_unset(v) for k, v in value.items()
                if not (k == "in_place" and v is None)}  # fmt: skip
    if isinstance(value, list):
        return [_without_unset(v) for v in value]
    return value


class ManifestStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: ModelName) -> Path:
        return self.root / (name.namespace or DEFAULT_NAMESPACE) / name.model / f"{name.tag}.json"

    def write(self, manifest: Manifest) -> None:
        name = parse_name(manifest.name)
        atomic_write(self.path(name), json.dumps(manifest.to_dict(), indent=2).encode())

    def read(self, name: ModelName) -> Manifest:
        path = self.path(name)
        try:
            return Manifest.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise ModelNotFoundError(f"model {name.short!r} not found") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"the manifest of {name.short!r} is damaged ({exc}); remove it"
            ) from None

    def remove(self, name: ModelName) -> None:
        path = self.path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ModelNotFoundError(f"model {name.short!r} not found") from None
        for folder in (path.parent, path.parent.parent):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break

    def names(self) -> list[ModelName]:
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.glob("*/*/*.json")):
            namespace = path.parent.parent.name
            ns = "" if namespace == DEFAULT_NAMESPACE else f"{namespace}/"
            try:
                out.append(parse_name(f"{ns}{path.parent.name}:{path.stem}"))
            except LocalLLMError:
                continue  # not ours: a stray file cannot be a model
        return out
