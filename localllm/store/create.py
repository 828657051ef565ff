"""`create`: a new model from a Modelfile, over existing weights.

FROM may name a model in the store, a local GGUF (imported, never moved), or
anything `pull` accepts (a catalogue name, an hf.co reference), which is
pulled first. PARAMETER, SYSTEM, TEMPLATE, MESSAGE and LICENSE override the
base model's; ADAPTER adds a LoRA adapter GGUF; a second FROM names the model's
vision projector (`mmproj` GGUF, checked against it); DRAFT names a draft model
(`drafts.py`). TEMPLATE is an Ollama Go template
or a Jinja chat template, checked and kept as written (`templates.py`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from localllm.errors import LocalLLMError
from localllm.gguf.reader import read_header
from localllm.gguf.source import FileSource
from localllm.store.manifests import Layer, Manifest, ModelNotFoundError
from localllm.store.modelfile import Modelfile
from localllm.store.names import ModelName, ModelNameError, parse_name
from localllm.store.pull import Choose, import_local_layers, pull
from localllm.store.store import Store
from localllm.store.templates import check_template


class CreateError(LocalLLMError):
    """A Modelfile that names something that cannot be used."""


def create(
    name: ModelName, modelfile: Modelfile, store: Store, base_dir: Path, choose: Choose
) -> Manifest:
    base = find_model("FROM", modelfile.from_, store, base_dir, choose)
    template = modelfile.template
    if template is not None:
        template = check_template(template)
    adapters = tuple(_adapter(Path(a), store, base_dir) for a in modelfile.adapters)
    projector = base.projector
    if modelfile.projector is not None:
        projector = _projector(modelfile.projector, base, store, base_dir)
    draft = base.draft
    if modelfile.draft is not None:
        from localllm.store.drafts import draft_layer

        draft = draft_layer(modelfile.draft, base, store, base_dir, choose)
    manifest = replace(
        base,
        name=str(name),
        parameters={**base.parameters, **modelfile.parameters},
        template=template if template is not None else base.template,
        system=modelfile.system if modelfile.system is not None else base.system,
        messages=modelfile.messages or base.messages,
        licenses=modelfile.licenses or base.licenses,
        adapters=base.adapters + adapters,
        draft=draft,
        projector=projector,
        created=time.time(),
    )
    store.put(manifest)
    return manifest


def find_model(
    keyword: str,
    source: str,
    store: Store,
    base_dir: Path,
    choose: Choose,
    pull_options: Mapping[str, Any] | None = None,
) -> Manifest:
    """The model a Modelfile line (`keyword`: FROM, DRAFT) names: a local GGUF (imported),
    a model in the store, else whatever `pull` makes of it (with `pull_options`)."""
    path = (base_dir / source).expanduser() if not Path(source).is_absolute() else Path(source)
    if source.lower().endswith(".gguf") or _is_file(path):
        if not _is_file(path):
            raise CreateError(f"{keyword} {source}: no such file ({path})")
        layers = import_local_layers(path, store)
        return Manifest(name="", model=layers[0], parts=tuple(layers[1:]), source=str(path))
    try:
        return store.get(parse_name(source))
    except (ModelNotFoundError, ModelNameError):
        pass  # not stored (a damaged manifest is an error of its own): pull it
    return pull(source, store, choose, **(pull_options or {}))


def _adapter(path: Path, store: Store, base_dir: Path) -> Layer:
    full = path if path.is_absolute() else base_dir / path
    with FileSource(full) as f:
        header = read_header(f)
    if header.metadata.get("general.type") != "adapter":
        raise CreateError(
            f"ADAPTER {path}: not a LoRA adapter GGUF (general.type is not 'adapter')"
        )
    blob = store.blobs.import_file(full)
    return Layer(blob.digest, blob.size, "adapter", str(full.resolve()))


def _projector(source: str, base: Manifest, store: Store, base_dir: Path) -> Layer:
    """A second FROM: the model's vision projector GGUF, checked against the model (its
    type one llama.cpp reads images with, its embeddings as wide as the model's)."""
    from localllm.gguf.info import describe
    from localllm.store.projectors import check_projector, precision

    path = Path(source).expanduser()
    full = path if path.is_absolute() else base_dir / path
    if not _is_file(full):
        raise CreateError(
            f"FROM {source}: a second FROM names the model's vision projector "
            f"(an mmproj GGUF file); no such file ({full})"
        )
    with FileSource(full) as f:
        header = read_header(f)
    with FileSource(store.blobs.path(base.model.digest)) as f:
        n_embd = describe([read_header(f)]).n_embd
    shapes = {t.name: t.shape for t in header.tensors}
    try:
        check_projector(header.metadata, shapes, n_embd, f"FROM {source}")
    except ValueError as exc:
        raise CreateError(str(exc)) from None
    blob = store.blobs.import_file(full)
    return Layer(blob.digest, blob.size, precision(full.name), str(full.resolve()))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # not a possible path: too long, a NUL byte
        return False
