"""Speculative decoding by prompt lookup: several tokens verified per pass.

Decode is bound by reading the weights, so checking a few guessed tokens in the
same pass costs little more than one. The guesses come from the text itself
(llama.cpp's "lookup" decoding): the last 1 to 3 tokens are looked up earlier in
the prompt and the answer so far, and what followed them there is proposed. The
engine decodes the request's next token with the guesses after it, keeps the
longest prefix the model itself picks, and removes the rest from the cache. Only
greedy draws without penalties speculate, so the answer is the one the model
gives token by token. The draft length follows the acceptance rate, and a
request whose guesses keep failing stops guessing for a while.
"""

from __future__ import annotations

from collections.abc import Sequence

from localllm.engine.protocol import Generate

N_MAX = 3
"""The longest n-gram looked up (the longest match wins)."""
K_START, K_MAX = 4, 12
PAUSE_STEPS, PAUSE_MAX = 32, 1024
"""Steps without guessing after the acceptance rate fell below `MIN_RATE`: doubled at
each pause in a row, since a step that guesses costs more than its tokens where the
graph changes shape with it (a GPU re-captures its CUDA graph)."""
MIN_RATE = 0.25


def speculates(request: Generate) -> bool:
    """Whether a request's answer can be guessed ahead without changing it: a greedy
    draw with no penalties (their history would see rejected guesses), grammar or
    logprobs."""
    s = request.sampling
    return (
        s.prompt_lookup
        and s.temperature <= 0
        and s.repeat_penalty == 1.0
        and s.presence_penalty == 0.0
        and s.frequency_penalty == 0.0
        and request.grammar is None
        and s.logprobs < 0
    )


class PromptLookup:
    """One request's drafter: an index of the n-grams of its prompt and answer."""

    def __init__(self, prompt: Sequence[int]) -> None:
        self.tokens: list[int] = []
        self._index: dict[tuple[int, ...], int] = {}
        """n-gram -> where what followed its latest occurrence starts (the n-grams that
        end at the last token are not in yet: they are what is looked up)."""
        self.k = K_START
        self.drafted = 0
        self.accepted = 0
        self._rate = 0.5
        self._paused = 0
        self._pauses = 0
        """Pauses in a row, without a fully agreed guess between them."""
        for token in prompt:
            self.push(token)

    def push(self, token: int) -> None:
        """The next token of the text (a prompt token, or one the model chose)."""
        p = len(self.tokens)
        for n in range(1, min(N_MAX, p) + 1):
            self._index[tuple(self.tokens[p - n : p])] = p
        self.tokens.append(token)

    def draft(self, room: int) -> list[int]:
        """Up to `room` guessed tokens to follow the text (none if nothing matches)."""
        if self._paused:
            self._paused -= 1
            return []
        k = min(self.k, room)
        p = len(self.tokens)
        for n in range(min(N_MAX, p), 0, -1):
            end = self._index.get(tuple(self.tokens[p - n :]))
            if end is not None:
                return self.tokens[end : end + k]
        return []

    def update(self, drafted: int, accepted: int) -> None:
        """How the last guesses fared: the next draft length follows."""
        self.drafted += drafted
        self.accepted += accepted
        self.k = min(self.k * 2, K_MAX) if accepted == drafted else max(1, accepted + 1)
        if accepted == drafted:
            self._pauses = 0
        self._rate = 0.7 * self._rate + 0.3 * (accepted / drafted)
        if self._rate < MIN_RATE:
            self._paused = min(PAUSE_STEPS << self._pauses, PAUSE_MAX)
            self._pauses += 1
            self._rate, self.k = 0.5, K_START
