"""LoRA adapters chosen per request (llama-server's `lora`: adapter index and scale).

llama.cpp applies one set of adapters to the whole context, so one decode serves one
set. Requests of the same set are batched together; when several sets have requests
running, each set has the batch for `TURN_STEPS` steps in turn, the set whose oldest
request came first next. A slot's cached tokens were computed under one set and are
reused only by a request of the same set.
"""

from __future__ import annotations

from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Generate
from localllm.engine.slots import Slot
from localllm.errors import LocalLLMError

TURN_STEPS = 16
"""Steps a set of adapters keeps the batch while another set's requests wait."""

Lora = tuple[tuple[int, float], ...]


def lora_of(request: Generate, model: LlamaModel) -> Lora:
    """The adapters `request` runs with (the load's by default); LocalLLMError naming a
    bad index."""
    if request.lora is None:
        return model.default_lora
    count = len(model.adapters)
    for i, (index, _) in enumerate(request.lora):
        if not 0 <= index < count:
            raise LocalLLMError(
                f"lora.{i}.id: {index} is not an adapter of this model (it has {count}"
                f"{': ADAPTER lines of its Modelfile, from 0' if count else ''})"
            )
    return tuple(sorted((i, s) for i, s in request.lora if s != 0.0))


class LoraTurns:
    def __init__(self, model: LlamaModel) -> None:
        self.model = model
        self.steps = 0

    def pick(self, running: list[Slot]) -> list[Slot]:
        """The running requests of the set whose turn it is (applied to the context)."""
        sets = {s.job.lora for s in running if s.job is not None}
        current = self.model.lora
        if len(sets) <= 1:
            self.steps = 0
            wanted = next(iter(sets), current)
        elif current not in sets or self.steps >= TURN_STEPS:
            self.steps = 0

            def oldest(lora: Lora) -> int:
                return min(s.job.start_ns for s in running if s.job and s.job.lora == lora)

            wanted = min(sets - {current}, key=oldest)
        else:
            wanted = current
        self.steps += 1
        if not self.model.use_lora(wanted):
            raise LocalLLMError("llama.cpp could not apply the request's adapters")
        return [s for s in running if s.job is not None and s.job.lora == wanted]
