"""Moving in from Ollama: its models, created again in this store without copying a
byte where the file system allows (a reflink, else a hard link, else a copy: the
store's own `BlobStore.import_file`), each blob verified against its digest.

Ollama's layout (its `server/manifest.go` and `types/model/name.go`):
`<models>/manifests/<registry>/<namespace>/<model>/<tag>` are JSON manifests whose
layers name blobs `<models>/blobs/sha256-<hex>` by media type
(`application/vnd.ollama.image.model`, `.template`, `.system`, `.params`,
`.messages`, `.license`, `.adapter`, `.projector`). A manifest that cannot be read,
or whose model is not one GGUF file, is reported and the others imported; Ollama's
folder is only read.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localllm.errors import LocalLLMError
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
    """How the weights arrived: reflink, hardlink, copy, or present (already stored)."""
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
        blob = blobs / str(layer["digest"]).replace(":", "-", 1)
        if kind in ("model", "adapter", "projector"):
            stored = _import_blob(blob, str(layer["digest"]), store, needs_gguf=kind == "model")
            imported = Layer(stored.digest, stored.size, None, f"ollama:{blob}")
            if kind == "model":
                weights, how = imported, stored.how
            elif kind == "adapter":
                values["adapters"].append(imported)
            else:
                projector = imported
        elif kind in ("template", "system", "license"):
            text = blob.read_text()
            if kind == "license":
                values["licenses"].append(text)
            else:
                values[kind] = text
        elif kind == "params":
            values["parameters"] = _parameters(json.loads(blob.read_text()), notes)
        elif kind == "messages":
            values["messages"] = tuple(
                Message(str(m["role"]), str(m.get("content", "")))
                for m in json.loads(blob.read_text())
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


def _import_blob(blob: Path, digest: str, store: Store, needs_gguf: bool) -> Any:
    if not blob.is_file():
        raise LocalLLMError(f"its blob {blob.name} is missing")
    if needs_gguf:
        from localllm.gguf.local import read_local

        read_local(blob)  # a clear error for anything that is not a GGUF
    return store.blobs.import_file(blob, expected=digest.replace(":", "-", 1))


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
