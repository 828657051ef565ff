"""How much of the waiting prompts a step takes while other streams generate.

A step that decodes prompt tokens beside the running streams holds each of them for
as long as the step takes. A fixed chunk (the micro-batch, 512 tokens) is a few
milliseconds on a GPU but half a second on two CPU cores, and a 32k-token prompt
arriving then froze every other answer for its whole prefill. The prompt tokens of
such a step are sized instead so that it takes about `TARGET_S`: fewer when a mixed step
ran long, more while they run well short, between `MIN_TOKENS` and the batch. The
waiting prompts share that one budget (when each took its own, several long prompts held
the streams for all of them at once), but a prompt no longer than a chunk goes in whole,
whatever the others took, while the step stays within one micro-batch: prompts that
arrive together start together, as in llama-server. (With the budget shared by all, a
burst went in one or two prompts a step, each step just within `TARGET_S`: on an H100
the 8B at 64 and 128 streams lost a fifth and a third of its tokens/s, and its first
token came twice as late.) With nothing else generating, prompts take whole batches.
Before the first such step the size is a guess: what prompts alone went in at in that
time (`ChunkSize._first_guess`).

Where the streams' own step already takes longer than `TARGET_S` (a CPU: 75 ms for a
1B model on two cores), no chunk keeps to it, and small chunks only cost everyone: a
CPU's prompt token is dearer the fewer come together (1B, two cores: 19 ms each 16 at a
time beside a stream, 11 ms 102 at a time, 6 ms in whole micro-batches). There a step
that carries prompt tokens may take as long as `SLOW_STEPS` of the streams' own: a
burst of short prompts goes in at once, as in llama-server, and a long one in chunks
that still let the others move.

Where llama.cpp's flash attention runs on the CPU, a chunk is cut in whole tiles
(`CPU_TILE`), so the rule above never lands in the slow way of taking few rows.
"""

from __future__ import annotations

from collections import deque

from localllm.planner.settings import LoadSettings

TARGET_S = 0.04
"""What a step that carries a prompt chunk should take, at most (the running streams'
gap between two tokens), where the streams' own step is shorter."""
MIN_TOKENS = 16
SLOW_STEPS = 16
"""On a device too slow for `TARGET_S`: how many of the streams' own steps a step
carrying prompt tokens may take (they keep a sixteenth of their pace meanwhile)."""
PLAIN_STEPS = 8
"""The streams' own steps `ChunkSize.plain` looks back over."""
GROWTH = 1.25
"""How much more a step may take while they run short: only while a step that much
longer would still be within `TARGET_S` (growing from just under it overshot by a
quarter)."""


CPU_TILE = 64
"""llama.cpp's CPU flash attention takes a sequence's query rows 64 at a time
(`GGML_FA_TILE_Q`); a micro-batch holding fewer rows of a sequence goes row by row,
each row reading the whole cache. Deep in a long prompt that costs several times as
much a token: on a 2-core machine, the 50 MB test model 2,000 tokens deep, 16 prompt
tokens beside 2 streams took 121 ms and 63 took 499 ms, where 64 took 60."""


def tile(settings: LoadSettings, n_layer: int, gpu: bool) -> int:
    """The rows a prompt's share of a step comes in multiples of (1: any count): the
    CPU's tile where flash attention runs there for some layer (llama.cpp's count of
    offloaded layers includes the output layer)."""
    on_cpu = not gpu or settings.n_gpu_layers <= n_layer
    return CPU_TILE if settings.flash_attn and on_cpu else 1


class ChunkSize:
    def __init__(self, largest: int, start: int | None = None, tile: int = 1) -> None:
        """`largest`: the batch; `start`: the first guess (the micro-batch: one step of
        2,048 prompt tokens would take seconds on a CPU before the rule shrank it);
        `tile`: see `take`."""
        self.tile = max(1, tile)
        self.largest = max(largest, MIN_TOKENS)
        self.tokens = self.micro = max(MIN_TOKENS, min(start or largest, self.largest))
        self._last: dict[bool, float] = {}
        """By whether it came in tiles: how long the last such step took."""
        self._plain: deque[float] = deque(maxlen=PLAIN_STEPS)
        """How long the last steps of generating streams alone took."""
        self._pace = 0.0
        """Prompt tokens a second in the fastest step of prompts alone (a CPU's grows
        with the tokens a step takes: 66 a second 13 at a time, 107 at 136, on the 1B)."""

    @property
    def plain(self) -> float:
        """What a step of the streams alone takes: the shortest of the last few (one held
        up by something else, the reader tokenizing a long prompt beside it, must not
        make the device look slow)."""
        return min(self._plain, default=0.0)

    @property
    def slow(self) -> bool:
        """Whether the device is too slow for `TARGET_S`: the streams' own step exceeds it."""
        return self.plain > TARGET_S

    @property
    def target(self) -> float:
        """What a step carrying prompt tokens beside streams may take (`SLOW_STEPS`)."""
        return SLOW_STEPS * self.plain if self.slow else TARGET_S

    def share(self, rows: int) -> int:
        """Prompt tokens a step may take, all prompts together, beside `rows` rows of
        generating streams (and their guesses) in the batch."""
        return max(MIN_TOKENS, min(self.tokens, self.largest - rows))

    def take(self, budget: int, free: int, pending: int, beside: bool) -> int:
        """How much of a prompt with `pending` tokens to go a step takes, with `budget`
        prompt tokens left to it and `free` rows in the batch. Beside generating streams
        and given more than a tile: whole tiles and one token, or all of it where what
        would be left is less than a tile (taken alone later, row by row). llama.cpp puts
        one token of the prompt's sequence in the streams' micro-batch when its sequence
        number follows theirs, and the rest in one of its own: that rest is then whole
        tiles, else one token more. (Streams guess nothing in such a step: with guesses
        their rows in that micro-batch, and the prompt's, are as many as the fewest.)
        A prompt no longer than a chunk goes in whole, `budget` spent or not, while the
        step's rows stay within the micro-batch (`micro`)."""
        rows = self.largest - free  # the streams' and the prompts' taken so far
        if beside and pending <= min(self.tokens, free, max(budget, self.micro - rows)):
            return pending
        room = min(budget, free)
        if room <= 0:
            return 0
        if not beside or room >= pending or room <= self.tile or self.tile == 1:
            return min(room, pending)
        cut = self._cut(room)
        return pending if pending - cut <= self.tile and pending <= free else cut

    def _cut(self, tokens: int) -> int:
        return tokens if tokens <= self.tile else (tokens - 1) // self.tile * self.tile + 1

    def update(self, taken: int, seconds: float, beside: bool = True) -> None:
        """A step of generating streams took `seconds` with `taken` prompt tokens (0: the
        streams alone); `beside` False: a step of prompts alone."""
        if seconds <= 0:
            return
        if beside and taken > 0:
            self._resize(taken, seconds)
            return
        if beside:
            self._plain.append(seconds)
        else:
            self._pace = max(self._pace, taken / seconds)  # a batch's pace is its best
        if not self._last and self._pace:  # no step beside streams yet: a first guess
            self.tokens = self._first_guess()

    def _resize(self, taken: int, seconds: float) -> None:
        """A step beside the streams took `seconds` with `taken` prompt tokens."""
        self._last[taken > self.tile] = seconds
        target = self.target
        if seconds > target:
            self.tokens = max(MIN_TOKENS, int(taken * target / seconds))
        elif taken >= self._cut(self.tokens) and seconds * GROWTH <= target:  # short
            self.tokens = min(self.largest, max(self.tokens + 1, int(self.tokens * GROWTH)))
        if self.tokens <= self.tile < self.largest and self._tiles_pay():  # (tile 1: never)
            self.tokens = self.tile + 1

    def _first_guess(self) -> int:
        """What the pace of prompts alone does in the time a step beside the streams has
        left over theirs, up to `micro` (the micro-batch: before any pace was known, it took
        300 ms beside two streams of the 50 MB model on two cores, against 40 ms aimed
        at). Not on a device too slow for `TARGET_S`: there the pace known is that of a
        few short prompts, far below a larger batch's (the 1B on two cores: 97 tokens a
        second 30 at a time, 170 in whole micro-batches), and it cut a burst of short
        prompts in two steps."""
        if self.slow:
            return self.micro
        spare = max(self.target - self.plain, self.target / 2)
        return min(self.micro, max(MIN_TOKENS, int(self._pace * spare)))

    def _tiles_pay(self) -> bool:
        """Whether a step of one tile took less than the last step of fewer rows: deep in
        a long prompt, where the CPU's row-by-row attention costs most (the 50 MB model
        above); for a larger model near the prompt's start the weights cost most, and a
        step of 16 rows stays the shorter."""
        tiled, rows = self._last.get(True), self._last.get(False)
        return tiled is not None and rows is not None and tiled < rows
