"""Model management that changes the store: pull, create, copy, delete and blob uploads.

No HTTP here: a dialect decodes its body into a `CreateRequest` (or a name), runs the
job in a thread and writes each `Progress` in its own shape. The request's model
names and uploaded files are checked here, where the store is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from localllm.errors import APIError, LocalLLMError
from localllm.gguf.reader import read_header
from localllm.gguf.source import FileSource
from localllm.planner.explain import explain
from localllm.planner.machine import planner_for_this_machine
from localllm.store.access import FileAccess
from localllm.store.blobs import BlobStore, BlobWriter, digest_name
from localllm.store.create import create
from localllm.store.egress import Egress
from localllm.store.manifests import Manifest
from localllm.store.modelfile import ROLES, Message, Modelfile, parameter_value, parse_modelfile
from localllm.store.names import parse_name
from localllm.store.pull import PullEvent
from localllm.store.resolve import pull, stored
from localllm.store.store import Store
from localllm.workers.scheduler import Scheduler


@dataclass(frozen=True)
class Progress:
    """One step of a pull or create: what it is doing, and for a download its file
    and bytes; for a planned pull, the planner's first reasons."""

    status: str
    file: str | None = None
    total: int | None = None
    completed: int | None = None
    plan: tuple[str, ...] = ()


Emit = Callable[[Progress], None]


@dataclass(frozen=True)
class CreateRequest:
    """A model to create: from a Modelfile's text, or from a model (or uploaded files)
    with the Modelfile's other lines as fields (Ollama's `/api/create`)."""

    name: str
    from_: str | None = None
    modelfile: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    """File name -> the digest of an uploaded blob."""
    adapters: Mapping[str, str] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    licenses: tuple[str, ...] = ()
    parameters: Mapping[str, object] = field(default_factory=dict)
    messages: tuple[tuple[str, str], ...] = ()
    """(role, content) of each MESSAGE."""
    quantize: str | None = None


class Changes:
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

    def pull(self, text: str, emit: Emit) -> None:
        def on_event(event: PullEvent) -> None:
            if event.status == "downloading" and event.progress is not None and event.file:
                emit(
                    Progress(
                        f"pulling {Path(event.file).name}",
                        event.file,
                        event.progress.total,
                        event.progress.done,
                    )
                )
            elif event.status == "planned" and event.plan is not None:
                emit(Progress("planned", plan=tuple(explain(event.plan)[:3])))
            elif event.status != "success":  # said once, at the very end
                emit(Progress(event.status))

        if not text:
            raise APIError(400, "model is required")
        emit(Progress("pulling manifest"))
        pull(
            text,
            self.store,
            planner_for_this_machine(),
            on_event,
            endpoint=self.hub_endpoint,
            files=self.files,
            egress=self.egress,
        )
        emit(Progress("writing manifest"))

    def create_job(self, request: CreateRequest) -> Callable[[Emit], None]:
        """The job that creates the model, once the request is checked (an APIError here
        is answered before any progress)."""
        name = parse_name(request.name)
        modelfile = self._modelfile(request)

        def job(emit: Emit) -> None:
            emit(Progress("reading model metadata"))
            create(
                name,
                modelfile,
                self.store,
                Path.cwd(),
                planner_for_this_machine(),
                files=self.files,
            )
            emit(Progress("writing manifest"))

        return job

    def copy(self, source: str, destination: str) -> None:
        manifest = stored(source, self.store)
        self.store.copy(parse_name(manifest.name), parse_name(destination))

    def delete(self, manifest: Manifest) -> None:
        """Remove the model, unloaded once its requests in flight have ended."""
        self.scheduler.unload_when_idle(manifest.name)
        self.store.remove(parse_name(manifest.name))

    def has_blob(self, digest: str) -> bool:
        return self.store.blobs.has(digest_name(digest))

    def receive_blob(self, digest: str) -> BlobWriter:
        """A writer for an uploaded blob: hashed as it arrives, named only once it
        matches `digest` (DigestMismatch, a 400, otherwise)."""
        return self.store.blobs.receive(digest_name(digest))

    def _modelfile(self, request: CreateRequest) -> Modelfile:
        if request.quantize:
            raise APIError(
                400, "quantize is not supported by create; pull the quantization instead"
            )
        uploaded, projector, adapters = self._uploaded(request)
        if uploaded and (request.from_ or request.modelfile):
            raise APIError(400, "files: send either files or from (or a modelfile), not both")
        from_ = request.from_ or uploaded
        if request.modelfile:
            modelfile = parse_modelfile(request.modelfile, source="modelfile")
        elif from_:
            parameters: dict[str, object] = {}
            for key, value in request.parameters.items():
                try:
                    parameters[key] = parameter_value(key, value)
                except ValueError as exc:
                    raise APIError(400, f"parameters.{key}: {exc}") from None
            for i, (role, _) in enumerate(request.messages):
                if role not in ROLES:  # the Modelfile's MESSAGE rule
                    raise APIError(400, f"messages[{i}].role: must be one of {', '.join(ROLES)}")
            modelfile = Modelfile(
                from_=from_,
                parameters=parameters,
                template=request.template,
                system=request.system,
                licenses=request.licenses,
                messages=tuple(Message(role, text) for role, text in request.messages),
            )
        else:
            raise APIError(
                400, "create needs `from` (a model, a GGUF path or a Hub reference) or `files`"
            )
        if adapters:
            modelfile = replace(modelfile, adapters=modelfile.adapters + adapters)
        if projector:
            modelfile = replace(modelfile, projector=projector)
        return modelfile

    def _uploaded(self, request: CreateRequest) -> tuple[str | None, str | None, tuple[str, ...]]:
        """(the uploaded GGUF to create from, its vision projector, the uploaded adapters):
        the blobs that `files` and `adapters` name, which must all have been uploaded. A
        GGUF of architecture `clip` among the files is the projector, as in Ollama."""
        models: list[str] = []
        projectors: list[str] = []
        for name, digest in request.files.items():
            path = _blob_path(self.store.blobs, digest, f"files.{name}")
            if not name.lower().endswith(".gguf"):
                raise APIError(
                    400,
                    f"files.{name}: only GGUF files make a model here "
                    "(convert safetensors to GGUF first)",
                )
            (projectors if _is_clip(path) else models).append(path)
        if len(models) > 1 or len(projectors) > 1:
            raise APIError(
                400,
                f"files: one GGUF model file (and one projector) is supported, "
                f"not {len(models)} (merge a split model first)",
            )
        if projectors and not models:
            raise APIError(400, "files: a vision projector needs its model's GGUF beside it")
        adapters = tuple(
            _blob_path(self.store.blobs, digest, f"adapters.{name}")
            for name, digest in request.adapters.items()
        )
        return (models[0] if models else None), (projectors[0] if projectors else None), adapters


def _blob_path(blobs: BlobStore, digest: str, where: str) -> str:
    name = digest_name(digest, where)
    if not blobs.has(name):
        raise APIError(
            400, f"{where}: blob {digest} has not been uploaded (POST /api/blobs/{digest} first)"
        )
    return str(blobs.path(name))


def _is_clip(path: str) -> bool:
    """Whether the GGUF at `path` is a vision projector (architecture `clip`)."""
    try:
        with FileSource(Path(path)) as f:
            return read_header(f).metadata.get("general.architecture") == "clip"
    except (OSError, LocalLLMError):
        return False  # not a GGUF that reads: create says what is wrong with it
