"""Moving in from Ollama: its models, created again in this store without copying a
byte where the file system allows (a reflink, else a copy: the store's own
`BlobStore.import_file`). Nothing read is trusted: a layer's digest must have the
shape of one before it names a file, the file must lie inside Ollama's `blobs/`, and
every layer (text layers too) is hashed and compared with its digest before use; a
model with a bad layer is refused with its name and the layer, the others imported.

Ollama's layout (its `server/manifest.go` and `types/model/name.go`):
`<models>/manifests/<registry>/<namespace>/<model>/<tag>` are JSON manifests whose
layers name blobs `<models>/blobs/sha256-<hex>` by media type
(`application/vnd.ollama.image.model`, `.template`, `.system`, `.params`,
`.messages`, `.license`, `.adapter`, `.projector`). A manifest that cannot be read,
or whose model is not one GGUF file, is reported and the others imported; Ollama's
folder is only read.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localllm.errors import LocalLLMError
from localllm.store.blobs import digest_name
from localllm.store.manifests import Layer, Manifest, ModelNotFoundError
from localllm.store.modelfile import Message, parameter_value
from localllm.store.names import parse_name
from localllm.store.store import Store

MEDIA = "application/vnd.ollama.image."
DEFAULT_REGISTRY = "registry.ollama.ai"


@dataclass(frozen=True)
class Imported:
    name: str
    size: int
    how: str
    """How the weights arrived: reflink, copy, or present (already stored)."""
    notes: tuple[str, ...] = ()


@dataclass
class Report:
    imported: list[Imported] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One sentence per manifest that was not imported, saying why."""


def ollama_models_dir(
    env: Mapping[str, str] = os.environ, home: Path | None = None, platform: str = sys.platform
) -> Path:
    """Where Ollama keeps its models on this machine: `OLLAMA_MODELS`, else
    `~/.ollama/models`, else (Linux, Ollama's system service) `/usr/share/ollama/...`."""
    if env.get("OLLAMA_MODELS"):
        return Path(env["OLLAMA_MODELS"]).expanduser()
    user = (home or Path.home()) / ".ollama" / "models"
    service = Path("/usr/share/ollama/.ollama/models")
    if platform.startswith("linux") and not user.is_dir() and service.is_dir():
        return service
    return user


def manifests(root: Path) -> Iterator[tuple[str, Path]]:
    """(the localllm name, the manifest file) of every model in Ollama's folder."""
    base = root / "manifests"
    for path in sorted(p for p in base.glob("*/*/*/*") if p.is_file()):
        registry, namespace, model, tag = path.relative_to(base).parts
        if registry == DEFAULT_REGISTRY:
            yield (model if namespace == "library" else f"{namespace}/{model}") + f":{tag}", path
        else:  # hf.co/OWNER/REPO:TAG keeps its owner as the namespace
            yield f"{namespace}/{model}:{tag}", path


def import_ollama(
    root: Path, store: Store, on_model: Callable[[str], None] | None = None
) -> Report:
    """Import every model of Ollama's folder `root` into `store`."""
    from localllm.store.atomic import StoreError

    if not (root / "manifests").is_dir():
        raise LocalLLMError(f"{root} is not an Ollama models folder (it has no manifests/)")
    report = Report()
    for name, path in manifests(root):
        if on_model is not None:
            on_model(name)
        try:
            report.imported.append(_import_one(name, path, root / "blobs", store))
        except (LocalLLMError, StoreError, OSError, ValueError, KeyError, TypeError) as exc:
            report.problems.append(f"{name} ({path}): {exc}")
    return report


def _import_one(name: str, path: Path, blobs: Path, store: Store) -> Imported:
    model_name = parse_name(name)
    data = json.loads(path.read_text())
    layers = data["layers"]
    kinds = [str(layer["mediaType"]).removeprefix(MEDIA) for layer in layers]
    if kinds.count("model") != 1:
        raise LocalLLMError(
            f"{kinds.count('model')} model layers (a model split into tensors, which "
            "Ollama's newer engine stores, is not a GGUF file localllm can run)"
        )
    notes: list[str] = []
    values: dict[str, Any] = {"adapters": [], "licenses": []}
    weights: Layer | None = None
    projector: Layer | None = None
    how = "present"
    for layer, kind in zip(layers, kinds, strict=True):
        blob = _blob(blobs, layer.get("digest"), kind)
        if kind in ("model", "adapter", "projector"):
            stored = _import_blob(blob, kind, store, needs_gguf=kind == "model")
            imported = Layer(stored.digest, stored.size, None, f"ollama:{blob}")
            if kind == "model":
                weights, how = imported, stored.how
            elif kind == "adapter":
                values["adapters"].append(imported)
            else:
                projector = imported
        elif kind in ("template", "system", "license"):
            text = _read_text(blob, kind)
            if kind == "license":
                values["licenses"].append(text)
            else:
                values[kind] = text
        elif kind == "params":
            values["parameters"] = _parameters(_read_json(blob, kind), notes)
        elif kind == "messages":
            values["messages"] = tuple(
                Message(str(m["role"]), str(m.get("content", ""))) for m in _read_json(blob, kind)
            )
        else:
            notes.append(f"a layer of type {kind!r} was left out (localllm does not use it)")
    assert weights is not None
    template = values.get("template")
    if template:
        from localllm.store.templates import check_template

        template = check_template(template)
    manifest = Manifest(
        name=str(model_name), model=weights, adapters=tuple(values["adapters"]),
        projector=projector, parameters=values.get("parameters", {}), template=template,
        system=values.get("system"), messages=values.get("messages", ()),
        licenses=tuple(values["licenses"]), source=f"ollama:{path}", created=time.time(),
    )  # fmt: skip
    _check_free(store, manifest)
    store.put(manifest)
    return Imported(model_name.short, manifest.size, how, tuple(notes))


TEXT_LIMIT = 16 << 20
"""The most a template, system, license, params or messages layer may hold."""


def _blob(blobs: Path, digest: object, kind: str) -> Path:
    """The blob file a layer's digest names, trusted only once the digest has the shape
    of one and the file lies inside Ollama's `blobs/` (no symbolic link out of it)."""
    path = blobs / digest_name(digest, f"its {kind} layer's digest")
    real = Path(os.path.realpath(path))
    if real.parent != Path(os.path.realpath(blobs)):
        raise LocalLLMError(f"its {kind} layer's blob {path.name} lies outside {blobs}")
    if not real.is_file():
        raise LocalLLMError(f"its {kind} layer's blob {path.name} is missing")
    return real


def _import_blob(blob: Path, kind: str, store: Store, needs_gguf: bool) -> Any:
    if needs_gguf:
        from localllm.gguf.local import read_local

        read_local(blob)  # a clear error for anything that is not a GGUF
    from localllm.store.blobs import DigestMismatch

    try:
        return store.blobs.import_file(blob, expected=blob.name)
    except DigestMismatch:
        raise LocalLLMError(
            f"its {kind} layer's blob {blob.name} does not match its digest"
        ) from None


def _read_text(blob: Path, kind: str) -> str:
    """A text layer's content, hashed and compared with its name before it is used."""
    with blob.open("rb") as f:
        data = f.read(TEXT_LIMIT + 1)
    if len(data) > TEXT_LIMIT:
        raise LocalLLMError(f"its {kind} layer is over {TEXT_LIMIT >> 20} MiB")
    if "sha256-" + hashlib.sha256(data).hexdigest() != blob.name:
        raise LocalLLMError(f"its {kind} layer's blob {blob.name} does not match its digest")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise LocalLLMError(f"its {kind} layer is not UTF-8 text") from None


def _read_json(blob: Path, kind: str) -> Any:
    try:
        return json.loads(_read_text(blob, kind))
    except json.JSONDecodeError:
        raise LocalLLMError(f"its {kind} layer is not JSON") from None


def _parameters(params: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """Ollama's params layer, each value checked by the Modelfile's own rules."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        try:
            out[key] = parameter_value(key, value)
        except ValueError as exc:
            notes.append(f"parameter {key} left out: {exc}")
    return out


def _check_free(store: Store, manifest: Manifest) -> None:
    """A model of the same name may be replaced only by the same weights."""
    try:
        existing = store.get(parse_name(manifest.name))
    except ModelNotFoundError:
        return
    if existing.digests != manifest.digests:
        raise LocalLLMError(
            f"the store already has a different {manifest.name!r}; remove or rename it first"
        )
