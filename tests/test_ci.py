"""`.ci/run` must run exactly the README's install and test commands."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(text: str) -> list[str]:
    """The command lines, less `.ci/run`'s guard that makes a failure inside the first
    line's && list end the run (`set -e` alone lets it pass)."""
    lines = [line.strip().removesuffix(" || exit 1") for line in text.splitlines()]
    return [line for line in lines if line.startswith((".venv/", "python3"))]


def test_ci_runs_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = readme.split("```sh")[1:3]  # the install block, then the test block
    readme_commands = [cmd for block in blocks for cmd in _commands(block.split("```")[0])]
    ci_commands = _commands((ROOT / ".ci" / "run").read_text())
    assert readme_commands == ci_commands
    assert len(ci_commands) == 2


def test_a_failed_chat_ends_the_run() -> None:
    """`set -e` ignores a failure inside an && list but for its last command: the install
    line, which is not the script's last, must end the run itself."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    install = next(line for line in lines if line.startswith("python3"))
    assert install.endswith(" || exit 1")
