"""The curated catalogue: `modelfiles/<family>/<tag>.Modelfile`, in Ollama's syntax.

Each tag's Modelfile names its Hugging Face GGUF repository in FROM and holds
the model's default parameters, system prompt and license. A family's default
tag is a Modelfile too (`latest.Modelfile` with `FROM llama3.2:3b`), so the
catalogue needs no second format. A tag may end in a quantization:
`llama3.2:3b-q8_0` is the `3b` entry's Q8_0 file.

The folder ships inside the wheel (`localllm/modelfiles`); in a source
checkout it is read from the repository's top-level `modelfiles/`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from localllm.gguf.remote import QUANT_IN_NAME
from localllm.store.mirror import Mirror, mirror_of
from localllm.store.modelfile import Modelfile, parse_modelfile
from localllm.store.names import DEFAULT_TAG, ModelName, parse_name

MAX_FROM_DEPTH = 4


def catalogue_dir() -> Path:
    packaged = Path(__file__).resolve().parents[1] / "modelfiles"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "modelfiles"


@dataclass(frozen=True)
class Resolved:
    """A catalogue name resolved to its repository, quantization and defaults."""

    name: ModelName
    repo: str
    quant: str | None
    modelfile: Modelfile
    description: str
    mirror: Mirror | None = None
    """Its copy on the Python package index (`store.mirror`), for when the Hub is out
    of reach."""


@dataclass
class Catalogue:
    root: Path = field(default_factory=catalogue_dir)

    def names(self) -> list[ModelName]:
        if not self.root.is_dir():
            return []
        return sorted(
            parse_name(f"{p.parent.name}:{p.stem}") for p in self.root.glob("*/*.Modelfile")
        )

    def path(self, name: ModelName) -> Path:
        return self.root / name.model / f"{name.tag}.Modelfile"

    def resolve(self, name: ModelName) -> Resolved | None:
        """The entry for `name` (following FROM chains), or None if it is not in the catalogue."""
        quant = None
        if not self.path(name).is_file():
            base, _, suffix = name.tag.rpartition("-")
            match = QUANT_IN_NAME.fullmatch(suffix) or QUANT_IN_NAME.fullmatch(name.tag)
            if not match:
                return None
            quant = match.group(1).upper()
            name = ModelName(name.model, base or DEFAULT_TAG, name.namespace)
            if not self.path(name).is_file():
                return None
        return self._follow(name, quant, depth=0)

    def _follow(self, name: ModelName, quant: str | None, depth: int) -> Resolved | None:
        path = self.path(name)
        text = path.read_text()
        modelfile = parse_modelfile(text, source=str(path))
        target = modelfile.from_
        description = next(
            (line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), ""
        )
        if target.startswith("hf.co/"):
            repo, _, pinned = target.removeprefix("hf.co/").partition(":")
            return Resolved(name, repo, quant or (pinned or None), modelfile, description,
                            mirror_of(text))  # fmt: skip
        if depth >= MAX_FROM_DEPTH:
            raise ValueError(f"{path}: FROM chain longer than {MAX_FROM_DEPTH}")
        inner = self._follow(parse_name(target), quant, depth + 1)
        if inner is None:
            return None
        merged = Modelfile(
            from_=inner.modelfile.from_,
            parameters={**inner.modelfile.parameters, **modelfile.parameters},
            template=modelfile.template or inner.modelfile.template,
            system=modelfile.system or inner.modelfile.system,
            adapters=inner.modelfile.adapters + modelfile.adapters,
            licenses=modelfile.licenses or inner.modelfile.licenses,
            messages=modelfile.messages or inner.modelfile.messages,
            draft=modelfile.draft or inner.modelfile.draft,
        )
        return Resolved(name, inner.repo, inner.quant, merged, description or inner.description,
                        inner.mirror)  # fmt: skip

    def suggest(self, text: str, limit: int = 3) -> list[str]:
        known = [n.short for n in self.names()]
        return difflib.get_close_matches(text.lower(), known, n=limit, cutoff=0.5)
