"""Start-up stays light: `--help` and `hw --json` must not load heavy libraries."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("llama_cpp", "textual", "numpy", "huggingface_hub", "gguf", "fastapi", "starlette",
         "uvicorn", "aiohttp", "httpx")  # fmt: skip

_PROBE = """
import json, sys
from localllm.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
sys.stdout.flush()
print("\\n" + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _loaded(argv: list[str]) -> list[str]:
    code = _PROBE.format(argv=argv, heavy=(*HEAVY, "rich"))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.slow
def test_help_imports_nothing_heavy() -> None:
    assert _loaded(["--help"]) == []


@pytest.mark.slow
def test_hw_json_imports_nothing_heavy() -> None:
    assert _loaded(["hw", "--json"]) == []


@pytest.mark.slow
def test_importing_localllm_creates_no_directories(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = "import localllm, localllm.cli, localllm.hardware, localllm.paths"
    subprocess.run(
        [sys.executable, "-c", code],
        env={"LOCALLLM_HOME": str(home), "PATH": ""},
        check=True,
        timeout=60,
    )
    assert not home.exists()


def test_help_lists_only_working_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from localllm.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in (
        "hw",
        "plan",
        "pull",
        "list",
        "show",
        "rm",
        "cp",
        "create",
        "serve",
        "ps",
        "stop",
        "bench",
        "run",
    ):
        assert re.search(rf"^\s+{command}\s", out, re.MULTILINE)


def test_no_command_without_a_terminal_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    from localllm.cli import main

    assert main([]) == 0
    assert "usage: localllm" in capsys.readouterr().out
