"""A request's images in its slot: its prompt with them, and each image put into the
slot's cache when the prompt's decoding reaches it (`engine.vision` does the libmtmd
part). The batch (`engine.batch`) calls these; a prompt whose next image is still
being encoded waits while the other streams decode."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures

from localllm.engine.model import LlamaModel
from localllm.engine.profile import StepProfile
from localllm.engine.prompt import prompt_tokens
from localllm.engine.protocol import Event, Failed, Generate
from localllm.engine.slots import Slot
from localllm.engine.vision import ImagePrompt, Projector, Tokenized
from localllm.errors import LocalLLMError, describe


def prompt(
    model: LlamaModel, projector: Projector | None, request: Generate, n_ctx: int
) -> tuple[list[int], Tokenized | None]:
    """The tokens of a request (each image's tokens as its negative id, all counted
    against the slot's `n_ctx`) and its image chunks (None without images)."""
    if not request.images:
        return prompt_tokens(model, request, n_ctx), None
    if projector is None:
        raise LocalLLMError("this model does not take images: it has no vision projector")
    if request.suffix is not None:
        raise LocalLLMError("images cannot go with a suffix (fill in the middle)")
    tokenize = ImagePrompt(projector, request.images)
    try:
        tokens = prompt_tokens(model, request, n_ctx, tokenize)
        if tokens and tokens[-1] < 0:
            raise LocalLLMError("the prompt ends with an image: add text after it")
    except BaseException:
        if tokenize.last is not None:
            tokenize.last.close()
        raise
    assert tokenize.last is not None
    return tokens, tokenize.last


def feed(projector: Projector, slot: Slot, n_batch: int, profile: StepProfile | None) -> None:
    """Decode into `slot` each encoded image its prompt has reached (an image's own
    decode, `n_batch` tokens at a time); stops at one still encoding."""
    job = slot.job
    assert job is not None and job.vision is not None
    while job.pending and (part := job.vision.parts.get(len(slot.cached))) is not None:
        if part.embedding is None:
            projector.encode(part)
        assert part.embedding is not None
        if not part.embedding.done():
            return
        start, before = time.perf_counter_ns(), slot.pos
        after = projector.decode(part, before, slot.seq, n_batch)
        slot.cached += job.pending[: part.n_tokens]
        del job.pending[: part.n_tokens]
        slot.images.append((len(slot.cached), after - before - part.n_tokens))
        job.encoded_images += 1
        if profile is not None:
            profile.add("image", time.perf_counter_ns() - start)


def await_encoding(running: list[Slot], seconds: float = 0.05) -> None:
    """Wait (a little) for one of the images being encoded: the step had nothing else."""
    encoding = [
        part.embedding
        for s in running
        if s.job is not None and s.job.vision is not None
        for part in s.job.vision.parts.values()
        if part.embedding is not None and not part.embedding.done()
    ]
    if encoding:
        futures.wait(encoding, timeout=seconds, return_when=futures.FIRST_COMPLETED)


def feed_all(
    projector: Projector,
    running: list[Slot],
    n_batch: int,
    profile: StepProfile | None,
    drop: Callable[[Slot], None],
) -> list[Event]:
    """`feed` every prompt that is being taken in and has images; a prompt whose image
    fails ends (`drop` ends its job and empties its slot)."""
    events: list[Event] = []
    for slot in running:
        if slot.job is None or slot.job.vision is None or not slot.job.prefilling:
            continue
        try:
            feed(projector, slot, n_batch, profile)
        except Exception as exc:
            status = 400 if isinstance(exc, LocalLLMError) else 500
            events.append(Failed(slot.job.id, status, f"the image failed: {describe(exc)}"))
            drop(slot)
    return events
