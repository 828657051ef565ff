"""Comparing greedy answers that took different paths through llama.cpp (one token a
pass, a batch of guesses, other streams beside them) on any CPU.

llama.cpp does not promise bit-identical logits between a batch and a single token
(other kernels, other rounding; which ones depends on the CPU), and a random test
model's top two logits are sometimes nearly tied (one pair within 1e-6 of a nat in 300
tokens of the sliding-window model). Where the two are that close, either answer is
right. So an answer agrees with a reference when it is the same text, or the same up
to a token the reference chose by less than `TIE` over the runner-up (its logprobs
say so), after which the two may go their own ways. A wrong cache (a rejected guess
kept, a cut in the wrong place) diverges where the choice was clear, and fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from localllm.engine.protocol import TokenLogprob

TIE = 1e-4
"""Nats between the chosen token and the runner-up below which either may win: far above
what other kernels' rounding moves a logit, far below a typical choice's margin."""


def agreed(reference: Sequence[TokenLogprob], text: str, tie: float = TIE) -> int:
    """How many characters of the reference answer `text` repeats before it goes its
    own way; an AssertionError when it does so where the reference's choice was clear.
    (Compared as text, as the engine streams it: a character may take several byte
    tokens, so the tokens that may have decided it are the last few before it.)"""
    whole = _text(reference)
    same = next((i for i, (a, b) in enumerate(zip(whole, text, strict=False)) if a != b), None)
    if same is None:
        assert len(text) <= len(whole), f"the answer goes on: {text[len(whole) :]!r}"
        return len(text)
    at = next(i for i in range(len(reference) + 1) if len(_text(reference[: i + 1])) > same)
    near = reference[max(0, at - 3) : at + 1]
    margin = min(_margin(t) for t in near)
    assert margin < tie, (
        f"the answers part at character {same} (token {at}), where the reference chose by "
        f"{margin:.3g} nats: not a tie\nreference: {whole[: same + 20]!r}\n"
        f"answer:    {text[: same + 20]!r}"
    )
    return same


def _text(tokens: Sequence[TokenLogprob]) -> str:
    return bytes(b for t in tokens for b in t.bytes).decode(errors="replace")


def _margin(token: TokenLogprob) -> float:
    others = [logprob for _, logprob, raw in token.top if raw != token.bytes]
    return token.logprob - max(others) if others else float("inf")
