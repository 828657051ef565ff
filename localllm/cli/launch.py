"""`localllm launch APP`: run a coding agent or app on a local model.

Each app is pointed at this server through its own settings (environment variables
or command-line overrides, nothing written into the user's files), with the model's
context window stated so the app compacts before the model overflows, and with what
keeps the prompt's prefix stable so the KV cache is reused from one turn to the next
(Claude Code's attribution header off). `--config` prints the settings instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

HELP = "run Claude Code, Codex, opencode or Continue's CLI on a local model"


@dataclass(frozen=True)
class Setup:
    """How one app is pointed at the server."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    config: str = ""
    """A configuration file's text, for an app configured only by its file."""
    config_path: str = ""


@dataclass(frozen=True)
class App:
    name: str
    executable: str
    min_context: int
    """Below this, little room is left beside the app's own prompt (its system prompt and
    tools: 4,000 to 5,000 tokens for Claude Code and Codex) for the conversation."""
    install: str


APPS = {
    "claude": App("Claude Code", "claude", 16_384, "npm install -g @anthropic-ai/claude-code"),
    "codex": App("Codex", "codex", 16_384, "npm install -g @openai/codex"),
    "opencode": App("opencode", "opencode", 8_192, "npm install -g opencode-ai"),
    "continue": App("Continue (its CLI, cn)", "cn", 8_192, "npm install -g @continuedev/cli"),
}


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "launch",
        help=HELP,
        description=__doc__,
        usage="localllm launch APP --model MODEL [--config] [-- ARGS OF THE APP]",
    )
    parser.add_argument("app", choices=sorted(APPS), help="the app to run")
    _options(parser)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", help="the local model it uses (required)")
    parser.add_argument("--config", action="store_true", help="print the settings; run nothing")


def _parsed(args: argparse.Namespace) -> tuple[str, bool, list[str]]:
    """(model, config only, the app's own arguments: those after `--`)."""
    rest: list[str] = list(args.rest)
    own, passed = (rest[: rest.index("--")], rest[rest.index("--") + 1 :]) if "--" in rest else (
        rest, [])  # fmt: skip
    parser = argparse.ArgumentParser(prog=f"localllm launch {args.app}")
    _options(parser)
    more = parser.parse_args(own)
    model = more.model or args.model
    if not model:
        parser.error("--model is required")
    return model, bool(more.config or args.config), passed


def setup(
    app: str, url: str, model: str, context: int, key: str | None, config_file: str = ""
) -> Setup:
    """The settings that point `app` at the server at `url`, on `model` whose context
    window is `context` tokens; `config_file`: where an app configured by a file (Continue)
    gets its own (in localllm's data folder, never the app's)."""
    token = key or "localllm"
    if app == "claude":
        env = {
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_AUTH_TOKEN": token,
            "ANTHROPIC_API_KEY": "",
            "ANTHROPIC_MODEL": model,
            "ANTHROPIC_SMALL_FAST_MODEL": model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
            # The window it compacts by, and answers that leave room for the prompt
            # (it reserves its whole output budget, 32,000 tokens by default).
            "CLAUDE_CODE_MAX_CONTEXT_TOKENS": str(context),
            "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(min(32_000, context // 4)),
            # A header that changes with each version and session, at the very start of
            # the prompt: without it the cached prefix is reused from turn to turn.
            "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        return Setup(["claude", "--model", model], env)
    if app == "codex":
        overrides = {
            "model_provider": "localllm",
            "model_providers.localllm.name": "localllm",
            "model_providers.localllm.base_url": json.dumps(f"{url}/v1"),
            "model_providers.localllm.wire_api": "responses",
            "model_providers.localllm.env_key": "LOCALLLM_API_KEY",
            "model": json.dumps(model),
            "model_context_window": str(context),
        }
        command = ["codex"] + [a for k, v in overrides.items() for a in ("-c", f"{k}={v}")]
        return Setup(command, {"LOCALLLM_API_KEY": token})
    if app == "opencode":
        config = {
            "$schema": "https://opencode.ai/config.json",
            "provider": {"localllm": {
                "npm": "@ai-sdk/openai-compatible", "name": "localllm",
                "options": {"baseURL": f"{url}/v1", "apiKey": token},
                "models": {model: {"name": model, "limit": {"context": context,
                                                             "output": min(8192, context // 4)}}},
            }},
            "model": f"localllm/{model}",
        }  # fmt: skip
        return Setup(["opencode"], {"OPENCODE_CONFIG_CONTENT": json.dumps(config)})
    text = (
        "name: localllm\nversion: 1.0.0\nschema: v1\nmodels:\n"
        f"  - name: {model} (localllm)\n"
        "    provider: openai\n"
        f"    model: {model}\n"
        f"    apiBase: {url}/v1\n"
        f"    apiKey: {token}\n"
        f"    defaultCompletionOptions:\n      contextLength: {context}\n"
        "    roles: [chat, edit, apply, autocomplete]\n"
    )
    return Setup(["cn", "--config", config_file], config=text, config_path=config_file)


def run(args: argparse.Namespace) -> int:
    from localllm.client import Client
    from localllm.paths import resolve_paths
    from localllm.server.daemon import ensure_running
    from localllm.server.settings import settings_from_env

    app = APPS[args.app]
    model, config_only, passed = _parsed(args)
    settings, paths = settings_from_env(), resolve_paths()
    if not config_only and ensure_running(settings, paths):
        print(f"localllm: started the server at {settings.url}", file=sys.stderr)
    info = Client(settings.url, settings.api_key).model(model)
    name, context = str(info["id"]), int(info.get("context_length") or 0)
    if context and context < app.min_context:
        print(f"localllm: warning: {name} has a context of {context:,} tokens; {app.name} "
              f"works best with {app.min_context:,} or more, as its own prompt takes thousands "
              "(set PARAMETER num_ctx, or pick a model with a longer context)",
              file=sys.stderr)  # fmt: skip
    config_file = paths.data_dir / "launch" / f"{args.app}.yaml"
    plan = setup(args.app, settings.url, name, context, settings.api_key, str(config_file))
    if config_only:
        _print(plan)
        return 0
    if plan.config:
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(plan.config)
    found = shutil.which(app.executable)
    if found is None:
        print(f"localllm: {app.executable} is not installed ({app.install}); the settings "
              "it would get:", file=sys.stderr)  # fmt: skip
        _print(plan)
        return 1
    os.execvpe(found, [found, *plan.command[1:], *passed], {**os.environ, **plan.env})


def _print(plan: Setup) -> None:
    for key, value in plan.env.items():
        print(f"export {key}={shlex.quote(value)}")
    if plan.config:
        print(f"# {plan.config_path}:")
        print(plan.config, end="")
    if plan.command:
        print(shlex.join(plan.command))
