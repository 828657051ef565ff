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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from localllm.gguf.reader import read_header
from localllm.gguf.source import FileSource
from localllm.store.access import ANY_FILE, FileAccess
from localllm.store.manifests import Layer, Manifest
from localllm.store.modelfile import Modelfile
from localllm.store.names import ModelName
from localllm.store.pull import Choose, PullEvent
from localllm.store.resolve import CreateError, draft_layer, find_model, is_file
from localllm.store.store import Store
from localllm.store.templates import check_template


def create(
    name: ModelName,
    modelfile: Modelfile,
    store: Store,
    base_dir: Path,
    choose: Choose,
    files: FileAccess = ANY_FILE,
    in_place: bool = False,
    on_event: Callable[[PullEvent], None] | None = None,
) -> Manifest:
    """`files`: which local files the Modelfile may name (the server's API: only
    uploaded blobs and allowed folders). `in_place`: a local GGUF named by FROM is used
    where it lies, not copied (`InPlace`)."""
    options: dict[str, Any] = {"files": files}
    base = find_model("FROM", modelfile.from_, store, base_dir, choose, options, in_place,
                      on_event)  # fmt: skip
    template = modelfile.template
    if template is not None:
        template = check_template(template)
    adapters = tuple(_adapter(a, store, base_dir, files) for a in modelfile.adapters)
    projector = base.projector
    if modelfile.projector is not None:
        projector = _projector(modelfile.projector, base, store, base_dir, files)
    draft = base.draft
    if modelfile.draft is not None:
        draft = draft_layer(modelfile.draft, base, store, base_dir, choose, options)
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


def _named_file(source: str, base_dir: Path, files: FileAccess, where: str) -> Path:
    path = Path(source).expanduser()
    return files.check(path if path.is_absolute() else base_dir / path, f"{where} {source}")


def _adapter(source: str, store: Store, base_dir: Path, files: FileAccess) -> Layer:
    full = _named_file(source, base_dir, files, "ADAPTER")
    with FileSource(full) as f:
        header = read_header(f)
    if header.metadata.get("general.type") != "adapter":
        raise CreateError(
            f"ADAPTER {source}: not a LoRA adapter GGUF (general.type is not 'adapter')"
        )
    blob = store.blobs.import_file(full)
    return Layer(blob.digest, blob.size, "adapter", str(full.resolve()))


def _projector(
    source: str, base: Manifest, store: Store, base_dir: Path, files: FileAccess
) -> Layer:
    """A second FROM: the model's vision projector GGUF, checked against the model (its
    type one llama.cpp reads images with, its embeddings as wide as the model's)."""
    from localllm.gguf.info import describe
    from localllm.store.projectors import check_projector, precision

    full = _named_file(source, base_dir, files, "FROM")
    if not is_file(full):
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
