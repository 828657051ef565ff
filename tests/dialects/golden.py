"""Golden files: what a test produced, compared with what it produced when a person
last read it. `LOCALLLM_GOLDEN=update pytest tests/dialects` writes them again; the
diff is then the review."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "golden"


def plain(value: Any) -> Any:
    """A request or event as JSON: dataclasses as dicts with their type, bytes by size
    and digest (a captured image is not repeated in the golden file)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"_type": type(value).__name__, **fields}
    if isinstance(value, bytes):
        return f"<{len(value)} bytes sha256:{hashlib.sha256(value).hexdigest()[:16]}>"
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def check(name: str, got: str) -> None:
    """`got` is the golden file `name`'s text (or becomes it, when updating)."""
    path = GOLDEN / name
    if os.environ.get("LOCALLLM_GOLDEN") == "update" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
        if os.environ.get("LOCALLLM_GOLDEN") != "update":
            raise AssertionError(f"{path} was missing and is written now: review it")
        return
    assert got == path.read_text(), f"{name} differs from its golden file"


def check_json(name: str, value: Any) -> None:
    check(name, json.dumps(plain(value), indent=1, ensure_ascii=False) + "\n")
