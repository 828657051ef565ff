"""A synthetic Ollama models folder (its layout: `manifests/<registry>/<namespace>/
<model>/<tag>` JSON naming blobs `blobs/sha256-<hex>` by media type), for the import
tests."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

MEDIA = "application/vnd.ollama.image."
TEMPLATE = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Prompt }}"


class OllamaFolder:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)

    def blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / digest.replace(":", "-")
        if not path.exists():
            path.write_bytes(data)
        return digest

    def file_blob(self, source: Path) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
        path = self.root / "blobs" / digest.replace(":", "-")
        if not path.exists():
            shutil.copyfile(source, path)
        return digest, path.stat().st_size

    def manifest(
        self, name: str, layers: list[tuple[str, str, int]], registry: str = "registry.ollama.ai"
    ) -> Path:
        """`name`: `namespace/model:tag`; `layers`: (kind, digest, size)."""
        repo, tag = name.split(":")
        path = self.root / "manifests" / registry / repo / tag
        path.parent.mkdir(parents=True, exist_ok=True)
        body: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": self.blob(b"{}"), "size": 2},
            "layers": [{"mediaType": MEDIA + kind, "digest": digest, "size": size}
                       for kind, digest, size in layers],
        }  # fmt: skip
        path.write_text(json.dumps(body))
        return path

    def text(self, kind: str, value: Any) -> tuple[str, str, int]:
        data = (value if isinstance(value, str) else json.dumps(value)).encode()
        return kind, self.blob(data), len(data)
