"""How a reference becomes a model in the store: one answer for `pull`, `create`'s FROM
and DRAFT lines, and the draft a catalogue entry names.

- `pull`: the weights (`store.pull.pull_weights`), then the catalogue entry's draft
  model, then success;
- `find_model`: what a Modelfile line names: a local GGUF (imported, or used in place),
  a model in the store, else whatever `pull` makes of it;
- `stored` / `stored_name_for`: the stored model a name means (a name, or an hf.co
  reference as it was pulled);
- `draft_layer`: the draft model a DRAFT line or a catalogue entry names, checked
  against its target (`store.drafts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from localllm.errors import LocalLLMError
from localllm.store.access import ANY_FILE, FileAccess
from localllm.store.catalogue import Catalogue
from localllm.store.drafts import checked
from localllm.store.egress import Egress
from localllm.store.manifests import Layer, Manifest, ModelNotFoundError
from localllm.store.modelfile import Modelfile
from localllm.store.names import ModelName, ModelNameError, parse_name
from localllm.store.pull import (
    Choose,
    PullEvent,
    defaults_for,
    import_local_layers,
    pull_weights,
    store_name,
)
from localllm.store.refs import HubRef, RefError, parse_ref
from localllm.store.store import Store


class CreateError(LocalLLMError):
    """A Modelfile that names something that cannot be used."""


def stored_name_for(text: str, store: Store) -> ModelName | None:
    """The stored name of a model pulled as `hf.co/OWNER/REPO[:QUANT]` (None for other text).
    Without a quantization, the one quantization of that repository in the store."""
    if not text.startswith(("hf.co/", "hf://", "huggingface.co/", "https://huggingface.co/")):
        return None
    ref = parse_ref(text)
    if not isinstance(ref, HubRef):
        return None
    if ref.quant:
        return store_name(text, ref, ref.quant)
    owner, repo = ref.repo.lower().split("/", 1)
    matches = [n for n in store.manifests.names() if (n.namespace, n.model) == (owner, repo)]
    if len(matches) > 1:
        tags = ", ".join(n.tag for n in matches)
        raise RefError(f"{text}: several quantizations are stored ({tags}); add :QUANT")
    return matches[0] if matches else store_name(text, ref, None)


def stored(text: str, store: Store) -> Manifest:
    """The manifest of the stored model `text` names; ModelNotFoundError (404) if none."""
    return store.get(stored_name_for(text, store) or parse_name(text))


def pull(
    text: str,
    store: Store,
    choose: Choose,
    on_event: Callable[[PullEvent], None] | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    catalogue: Catalogue | None = None,
    files: FileAccess = ANY_FILE,
    egress: Egress | None = None,
) -> Manifest:
    """Pull `text` into `store` (`store.pull.pull_weights`, same arguments), with the
    draft model its catalogue entry names."""
    catalogue = catalogue or Catalogue()
    events = on_event or _ignore
    manifest = pull_weights(text, store, choose, events, endpoint, token, catalogue, files, egress)
    manifest = _with_draft(manifest, defaults_for(text, catalogue), store, choose, events,
                           endpoint, token, catalogue, files, egress)  # fmt: skip
    events(PullEvent("success"))
    return manifest


def find_model(
    keyword: str,
    source: str,
    store: Store,
    base_dir: Path,
    choose: Choose,
    pull_options: Mapping[str, Any] | None = None,
    in_place: bool = False,
    on_event: Callable[[PullEvent], None] | None = None,
) -> Manifest:
    """The model a Modelfile line (`keyword`: FROM, DRAFT) names: a local GGUF (imported),
    a model in the store, else whatever `pull` makes of it (with `pull_options`, whose
    `files` says which local files may be read)."""
    files: FileAccess = (pull_options or {}).get("files", ANY_FILE)
    path = local_path(source, base_dir, files, keyword)
    if path is not None:
        if not is_file(path):
            raise CreateError(f"{keyword} {source}: no such file ({path})")
        layers = import_local_layers(path, store, on_event, in_place)
        return Manifest(name="", model=layers[0], parts=tuple(layers[1:]), source=str(path))
    try:
        return store.get(parse_name(source))
    except (ModelNotFoundError, ModelNameError):
        pass  # not stored (a damaged manifest is an error of its own): pull it
    return pull(source, store, choose, **(pull_options or {}))


def local_path(source: str, base_dir: Path, files: FileAccess, where: str) -> Path | None:
    """The local file a Modelfile line names, if it names one; checked against `files`
    before the disk is looked at (a server tells no existing path from a missing one)."""
    path = Path(source).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if files.folders is not None:
        looks_local = source.lower().endswith(".gguf") or source.startswith(("/", "~", "."))
        return files.check(path, f"{where} {source}") if looks_local else None
    return path if source.lower().endswith(".gguf") or is_file(path) else None


def draft_layer(
    source: str,
    target: Manifest,
    store: Store,
    base_dir: Path,
    choose: Choose,
    pull_options: Mapping[str, Any] | None = None,
) -> Layer:
    """The draft named by `source`, in the store (pulled with `pull_options` when it is
    not there yet), checked against `target`'s weights."""
    return checked(source, target, find_model("DRAFT", source, store, base_dir, choose,
                                              pull_options), store)  # fmt: skip


def _with_draft(
    manifest: Manifest,
    defaults: Modelfile | None,
    store: Store,
    choose: Choose,
    on_event: Callable[[PullEvent], None],
    endpoint: str | None,
    token: str | None,
    catalogue: Catalogue,
    files: FileAccess,
    egress: Egress | None,
) -> Manifest:
    """A catalogue entry's draft model (`DRAFT`), pulled too and recorded in the
    manifest. The model works without it: a draft that cannot be pulled or does not
    match is said in an event, and the model is kept as it is."""
    if defaults is None or defaults.draft is None or manifest.draft is not None:
        return manifest
    on_event(PullEvent(f"pulling the draft model {defaults.draft}"))
    try:
        options = {"endpoint": endpoint, "token": token, "catalogue": catalogue,
                   "files": files, "egress": egress}  # fmt: skip
        layer = draft_layer(defaults.draft, manifest, store, Path.cwd(), choose, options)
    except LocalLLMError as exc:
        on_event(PullEvent(f"without a draft model: {exc}"))
        return manifest
    manifest = replace(manifest, draft=layer)
    store.put(manifest)
    return manifest


def _ignore(event: PullEvent) -> None:
    pass


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # not a possible path: too long, a NUL byte
        return False
