"""Options: what a request asks of sampling and loading, in Ollama's option names (the
vocabulary every dialect maps onto), merged with the Modelfile's PARAMETERs and the
dialect's defaults, and checked by the Modelfile's own rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from localllm.engine.protocol import Sampling as EngineSampling
from localllm.inference.request import Sampling
from localllm.store.manifests import Manifest
from localllm.store.modelfile import PARAMETERS, parameter_value

NO_REPEAT_PENALTY = {"repeat_penalty": 1.0}
"""The defaults of the APIs that have no repeat penalty (OpenAI's and Anthropic's: their
penalties are presence and frequency, default 0): none applies unless the Modelfile
sets one, as in llama-server's OpenAI API."""

_ENGINE_SAMPLING = {f.name for f in fields(EngineSampling)}


def check_option(name: str, value: Any) -> None:
    """ValueError if `value` is out of the bounds a Modelfile's PARAMETER line has (a
    dialect's validation names the field)."""
    if value is not None and name in PARAMETERS:
        parameter_value(name, value)


def options(sampling: Sampling, manifest: Manifest) -> dict[str, Any]:
    merged = {**sampling.defaults, **manifest.parameters}
    merged.update({k: v for k, v in sampling.options.items() if v is not None})
    return merged


def engine_sampling(options: Mapping[str, Any], logprobs: int = -1) -> EngineSampling:
    values = {k: v for k, v in options.items() if k in _ENGINE_SAMPLING and v is not None}
    stop = values.get("stop")
    if isinstance(stop, str):
        values["stop"] = (stop,)
    elif stop is not None:
        values["stop"] = tuple(stop)
    if values.get("num_predict") == -2:
        values["num_predict"] = -1  # Ollama's "fill the context": stop when it is full
    values["logprobs"] = logprobs
    return EngineSampling(**values)
