"""Speculative decoding: several tokens verified per pass of the model.

Decode is bound by reading the weights, so checking a few guessed tokens in the
same pass costs little more than one. The engine decodes a request's next token
with the guesses after it, keeps the longest prefix the model itself picks, and
removes the rest from the cache. Guesses come from a drafter: prompt lookup here
(llama.cpp's "lookup" decoding: the last 1 to 3 tokens are looked up earlier in
the prompt and the answer so far, and what followed them there is proposed), or a
small draft model of the same vocabulary (`engine.draft`). A greedy answer is the
one the model gives token by token; a sampled one is drawn by the accept/reject
rule (`engine.rejection`), so it keeps the model's distribution.

`Pace` sets how many tokens a request guesses: the draft length follows the
acceptance rate (on a GPU a draft model's is steady instead, `STEADY_LENGTH`), and a
request whose guesses keep failing stops guessing for a while, so speculation that does
not pay costs next to nothing. A new request starts from how the engine's earlier
guesses fared (`Odds`), not from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence

from localllm.engine.protocol import Generate

N_MAX = 3
"""The longest n-gram looked up (the longest match wins)."""
K_START, K_MAX = 4, 16
"""Guessed tokens per pass at first, and at most (llama-server's `--draft-max` 16)."""
PAUSE_STEPS, PAUSE_MAX = 32, 1024
"""Steps without guessing after the acceptance rate fell below `MIN_RATE`: doubled at
each pause in a row, since a step that guesses costs more than its tokens where the
graph changes shape with it (a GPU re-captures its CUDA graph)."""
MIN_RATE = 0.25

SPECULATE_UP_TO = 2
"""Streams generating at once up to which they guess ahead (the engine's batch):
beyond, the batch is busy enough that guesses no longer come for free."""
DRAFT_UP_TO = 4
"""The same with a draft model, whose guesses agree more often. (On a GPU, 8 drafting
streams measured 1.29x, 1.19x and 0.92x of no draft in three runs, the stranger 0.97x and
0.93x: each guessed token is a draft decode the host waits for, 3.3 of an 11.5 ms step,
so the gain at 8 is not sure enough to be worth a loss.)"""
STEADY_LENGTH = 4
"""On a GPU, what a drafting stream guesses every step (its `draft_max` where set),
those the draft is unsure of filled in (`guesses.pad`): llama.cpp's CUDA backend
replays a captured graph only while the batch keeps its shape (two steps alike to
capture it, any change and it launches kernel by kernel again), and a length that
followed the acceptance made every verifying step decode in 2.5 times a plain step's
time, where llama-server's fixed three guesses kept its graph."""
GUESSES_PER_STEP = K_MAX
"""Guesses verified in one step, shared out among the streams that guess: verifying
them costs compute, which several streams already use."""
DRAFT_GUESSES_PER_STEP = 2 * K_MAX
"""The same with a draft model: its guesses agree more often, so longer ones pay (on
a 2-core CPU, 4 streams guessing 8 each beat 4 each: 20 rows cost it more per row
than 48, where llama.cpp's tiled matrix products take over)."""


def speculates(request: Generate) -> bool:
    """Whether a request's tokens can be verified ahead without changing what it draws:
    anything but a grammar (its state would have to follow each guess) and logprobs.
    Penalties are fine: a chain sees only the tokens it accepted, in order."""
    return request.grammar is None and request.sampling.logprobs < 0


def k_max(request: Generate, can_cut: bool, drafting: bool) -> int:
    """The most tokens `request` guesses per pass; 0 when it does not speculate: a
    cache that cannot be cut back, a grammar or logprobs, asked not to, or sampled
    with only prompt lookup to guess (a lookup's guesses rarely survive a draw).
    `drafting`: the worker has a draft model."""
    s = request.sampling
    if not can_cut or not speculates(request) or s.draft_max == 0 or request.images:
        return 0
    if not drafting and (not s.prompt_lookup or s.temperature > 0):
        return 0
    return K_MAX if s.draft_max < 0 else min(s.draft_max, K_MAX)


class Odds:
    """How one engine's guesses of a kind fared lately, across requests.

    A request used to start at even odds: where guesses never agree (text unlike
    its prompt), each 100-token answer spent four steps on failing guesses before it
    paused, and on a GPU each such step and the one after it change the graph's shape
    (a CUDA graph captured again), 0.2 ms a token at one stream on an H200's 1B. From
    the engine's odds, such a request pauses after its first failed guess; a request
    whose guesses agree resets them."""

    def __init__(self) -> None:
        self.rate = 0.5
        """Agreed share of the guesses, a moving average over requests."""
        self.pauses = 0
        """Pauses in a row (`Pace`), across requests, without a fully agreed guess."""


class Pace:
    """How many tokens one request guesses next, from how its guesses fared (and,
    at first, the engine's: `odds`); `steady`: always `k_max` (`STEADY_LENGTH`), the
    fares deciding only when it pauses."""

    def __init__(self, k_max: int = K_MAX, odds: Odds | None = None, steady: bool = False) -> None:
        self.k_max = max(1, k_max)
        self.steady = steady
        self.k = self.k_max if steady else min(K_START, self.k_max)
        self.drafted = 0
        self.accepted = 0
        self._odds = odds or Odds()
        self._rate = self._odds.rate
        self._paused = 0
        self._pauses = self._odds.pauses
        """Pauses in a row, without a fully agreed guess between them."""

    def length(self, room: int) -> int:
        """Tokens to guess now (0 while paused), at most `room`."""
        if self._paused:
            self._paused -= 1
            return 0
        return max(0, min(self.k, room))

    @property
    def resting(self) -> bool:
        """Paused beyond the next step: a step decoded ahead (`engine.ahead`), which asks
        for no guesses, may stand for one of its steps (`rest`)."""
        return self._paused > 1

    def rest(self) -> None:
        """One step of the pause passed without asking (`resting` was true)."""
        self._paused -= 1

    def update(self, drafted: int, accepted: int) -> None:
        """How the last guesses fared: the next draft length follows."""
        if drafted <= 0:
            return
        self.drafted += drafted
        self.accepted += accepted
        full = accepted == drafted
        if not self.steady:
            self.k = min(self.k * 2, self.k_max) if full else max(1, accepted + 1)
        if full:
            self._pauses = 0
        odds, share = self._odds, accepted / drafted
        self._rate, odds.rate = _averaged(self._rate, share), _averaged(odds.rate, share)
        if self._rate < MIN_RATE:
            self._paused = min(PAUSE_STEPS << self._pauses, PAUSE_MAX)
            self._pauses += 1
            self._rate = max(odds.rate, MIN_RATE)
            self.k = self.k_max if self.steady else min(K_START, self.k_max)
        odds.pauses = self._pauses


def _averaged(rate: float, share: float) -> float:
    """A rate of agreed guesses moved towards the last guesses' `share`."""
    return 0.7 * rate + 0.3 * share


INDEX_PER_DRAFT = 2048
"""Positions of a long prompt indexed per draft at most: all 32k of one at once took 58
ms of Python on the step loop (every stream held), 2,048 take about 4."""


class PromptLookup:
    """One request's n-gram drafter: an index of the n-grams of its prompt and answer.

    The index catches up with the text only when a draft is asked for: a busy batch
    does not guess (`Engine._drafts`), and its streams then pay one list append per
    token instead of indexing every n-gram of every answer. New tokens go in first,
    then the prompt backwards from its end, `INDEX_PER_DRAFT` positions a draft: a long
    prompt's nearest text is found at once and the rest within a few steps, without
    one step that holds every stream for the whole prompt."""

    def __init__(self, prompt: Sequence[int], k_max: int = K_MAX, odds: Odds | None = None) -> None:
        self.tokens: list[int] = list(prompt)
        self._index: dict[tuple[int, ...], int] = {}
        """n-gram -> where what followed its latest occurrence starts (the n-grams that
        end at the last token are not in yet: they are what is looked up)."""
        self._low = self._high = len(self.tokens)
        """Positions in [_low, _high) have their preceding n-grams in `_index`."""
        self.pace = Pace(k_max, odds)

    @property
    def k(self) -> int:
        return self.pace.k

    def push(self, token: int) -> None:
        """The next token of the text (a prompt token, or one the model chose)."""
        self.tokens.append(token)

    def _catch_up(self, budget: int = INDEX_PER_DRAFT) -> None:
        tokens, index = self.tokens, self._index
        for p in range(self._high, len(tokens)):  # newer than anything indexed: they win
            for n in range(1, min(N_MAX, p) + 1):
                index[tuple(tokens[p - n : p])] = p
        self._high = len(tokens)
        stop = max(1, self._low - budget)
        for p in range(self._low - 1, stop - 1, -1):  # older: a later occurrence stays
            for n in range(1, min(N_MAX, p) + 1):
                index.setdefault(tuple(tokens[p - n : p]), p)
        self._low = min(self._low, stop)

    def draft(self, room: int) -> list[int]:
        """Up to `room` guessed tokens to follow the text (none if nothing matches)."""
        k = self.pace.length(room)
        if k == 0:
            return []
        self._catch_up()
        p = len(self.tokens)
        for n in range(min(N_MAX, p), 0, -1):
            end = self._index.get(tuple(self.tokens[p - n :]))
            if end is not None:
                return self.tokens[end : end + k]
        return []

    def update(self, drafted: int, accepted: int) -> None:
        self.pace.update(drafted, accepted)


class Payoff:
    """Whether guessing pays for the whole batch, from the steps' own times.

    A pass that verifies guesses costs more than a plain one: on a GPU with spare
    compute, little; on a CPU already busy with several streams, more than the
    guesses bring. So the engine times its decode steps, tokens out per second with
    and without guessing, for each number of generating streams, and guesses only
    while that measures faster. Now and then it tries the other way, so a change
    (longer contexts, a busier machine, a request whose guesses start to agree) is
    seen: after `explore_every` steps at first, twice as long after each look that
    changed nothing (up to `EXPLORE_MAX`), since a look at the losing way costs; at
    once `EXPLORE_MAX` after a look that found it far behind (below `FAR_BEHIND` of
    the other way's rate): such a look costs the most (a draft model as slow as the
    model itself first reads the whole text so far) and is the least likely to turn.
    The first `SETTLE` steps after the way or the streams change are not counted:
    they pay for the change, not for the way (a GPU launches the first step of a new
    shape kernel by kernel and captures its graph in the second; on two CPU cores the
    first plain steps after a prompt took 9.9 and 5.4 ms against 2.9, and counted,
    kept a stream guessing at 0.9x of plain for whole answers). So a look lasts
    `SETTLE` steps and one more.
    What a request produces never depends on it: only how many passes it takes.
    """

    EXPLORE_MAX = 1024
    FAR_BEHIND = 0.8
    SETTLE = 2

    def __init__(self, explore_every: int = 16, weight: float = 0.3) -> None:
        self.explore_every = explore_every
        self.weight = weight
        self._rate: dict[tuple[int, bool], float] = {}
        self._steps = 0
        self._interval: dict[int, int] = {}
        self._next: dict[int, int] = {}
        self._looking: dict[int, bool] = {}
        """Streams -> the way that was better when a look at the other one began."""
        self._way: tuple[int, bool] | None = None
        """The last step's streams and way (None after a step of neither way)."""
        self._alike = 0
        """Steps in a row with that streams and way: the first `SETTLE` do not count."""

    def _better(self, streams: int) -> bool | None:
        on, off = self._rate.get((streams, True)), self._rate.get((streams, False))
        return None if on is None or off is None else on >= off

    def _far_behind(self, streams: int) -> bool:
        on, off = self._rate[(streams, True)], self._rate[(streams, False)]
        return min(on, off) < self.FAR_BEHIND * max(on, off)

    def guess(self, streams: int) -> bool:
        """Whether a step of `streams` generating requests guesses."""
        self._steps += 1
        better = self._better(streams)
        if better is None:  # measure each way once: plain first, then guessing
            return (streams, False) in self._rate
        if streams in self._looking:  # a look goes on until a step of it counts
            return not self._looking[streams]
        if self._steps >= self._next.setdefault(streams, self._steps + self.explore_every):
            self._looking[streams] = better
            return not better
        return better

    def interrupt(self) -> None:
        """A step that says nothing of either way ran (prompt tokens in it): the next
        one changes shape again, and settles as after a change of way."""
        self._way = None

    def record(self, streams: int, guessed: bool, tokens: int, seconds: float) -> None:
        """A step of `streams` generating requests gave `tokens` in `seconds`."""
        key = (streams, guessed)
        self._alike = self._alike + 1 if key == self._way else 1
        self._way = key
        if seconds <= 0 or self._alike <= self.SETTLE:
            return
        rate = tokens / seconds
        old = self._rate.get(key)
        self._rate[key] = rate if old is None else old + self.weight * (rate - old)
        was = self._looking.pop(streams, None)
        if was is not None:
            same = self._better(streams) == was
            interval = self._interval.get(streams, self.explore_every)
            interval = min(interval * 2, self.EXPLORE_MAX) if same else self.explore_every
            if same and self._far_behind(streams):
                interval = self.EXPLORE_MAX
            self._interval[streams] = interval
            self._next[streams] = self._steps + interval


class AlwaysGuess(Payoff):
    """Guess at every step (tests that pin how speculation behaves, not whether it pays)."""

    def guess(self, streams: int) -> bool:
        return True


class Guessing:
    """How one engine's requests guess: with a draft model or by prompt lookup, on a GPU
    or not; and how their guesses fared lately (`Odds`)."""

    def __init__(self, drafting: bool, gpu: bool) -> None:
        self.drafting = drafting
        self.gpu = gpu
        self.odds = Odds()

    @property
    def up_to(self) -> int:
        """Streams generating at once up to which they guess."""
        return DRAFT_UP_TO if self.drafting else SPECULATE_UP_TO


def pace_for(
    request: Generate, tokens: Sequence[int], k_max: int, guessing: Guessing
) -> tuple[Pace, PromptLookup | None]:
    """A speculating request's pace, and its prompt lookup where no draft model guesses.
    A drafting stream on a GPU guesses `STEADY_LENGTH` (its `draft_max` where set)."""
    if not guessing.drafting:
        lookup = PromptLookup(tokens, k_max, guessing.odds)
        return lookup.pace, lookup
    if guessing.gpu:
        k = k_max if request.sampling.draft_max > 0 else min(k_max, STEADY_LENGTH)
        return Pace(k, guessing.odds, steady=True), None
    return Pace(k_max, guessing.odds), None
