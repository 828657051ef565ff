"""The prompt chunk taken beside generating streams follows how long such steps take."""

from __future__ import annotations

from localllm.engine.chunking import (
    CPU_TILE,
    MIN_TOKENS,
    SLOW_STEPS,
    TARGET_S,
    ChunkSize,
    tile,
)
from localllm.planner.settings import LoadSettings


def test_a_long_step_shrinks_the_chunk_and_short_ones_grow_it_back() -> None:
    size = ChunkSize(512)
    assert size.tokens == 512
    size.update(512, 8 * TARGET_S)  # a CPU: 512 tokens held the streams 8 times too long
    assert size.tokens == 64
    size.update(64, TARGET_S / 2)
    assert size.tokens == 80  # a quarter more while they run short
    size.update(80, TARGET_S * 0.9)
    assert size.tokens == 80  # just under: a quarter more would run over
    for _ in range(50):
        size.update(size.tokens, TARGET_S / 10)
    assert size.tokens == 512  # never past the micro-batch


def test_bounds_and_steps_that_say_nothing() -> None:
    size = ChunkSize(512)
    size.update(512, 1000.0)
    assert size.tokens == MIN_TOKENS
    size.update(100, 0.0)
    assert size.tokens == MIN_TOKENS
    size.update(4, TARGET_S / 2)  # a prompt's last few tokens: no reason to grow
    assert size.tokens == MIN_TOKENS


def test_the_prompts_budget_leaves_the_streams_their_rows() -> None:
    size = ChunkSize(2048)
    assert size.share(0) == 2048
    assert size.share(32) == 2016  # 32 streams' rows and the prompts: one batch
    assert size.share(4000) == MIN_TOKENS  # more streams than a batch: prompts still move
    size.update(2048, 8 * TARGET_S)
    assert size.share(32) == 256  # the time rule, when it is the tighter
    assert ChunkSize(2048, 512).tokens == 512  # a first guess below the batch


def _settings(n_gpu_layers: int, flash_attn: bool = True) -> LoadSettings:
    return LoadSettings(n_gpu_layers=n_gpu_layers, n_ctx=4096, flash_attn=flash_attn)


def test_the_cpus_flash_attention_gets_whole_tiles() -> None:
    assert tile(_settings(0), 16, gpu=False) == CPU_TILE
    assert tile(_settings(99), 16, gpu=False) == CPU_TILE  # no GPU to offload to
    assert tile(_settings(12), 16, gpu=True) == CPU_TILE  # some layers stay on the CPU
    assert tile(_settings(17), 16, gpu=True) == 1  # every layer and the output layer
    assert tile(_settings(0, flash_attn=False), 16, gpu=False) == 1


def test_a_prompt_beside_streams_is_cut_in_tiles_and_one_token() -> None:
    size = ChunkSize(2048, 512, tile=CPU_TILE)
    assert size.take(300, 2000, 5000, beside=True) == 4 * CPU_TILE + 1  # the rest: tiles
    assert size.take(300, 2000, 200, beside=True) == 200  # the prompt's end: all of it
    assert size.take(300, 2000, 300, beside=True) == 300
    assert size.take(300, 2000, 320, beside=True) == 320  # no tail left to go row by row
    assert size.take(300, 300, 320, beside=True) == 4 * CPU_TILE + 1  # unless it cannot fit
    assert size.take(2048, 2048, 5000, beside=False) == 2048  # nothing generates: the batch
    assert size.take(40, 2000, 5000, beside=True) == 40  # no more than a tile: what fits
    assert ChunkSize(2048, tile=1).take(300, 2000, 5000, beside=True) == 300


def test_steps_of_tiles_are_kept_where_they_take_less_than_fewer_rows() -> None:
    deep = ChunkSize(2048, 512, tile=CPU_TILE)  # a small model deep in a long prompt
    deep.update(449, 0.26)
    assert deep.tokens == 69  # (the time rule alone)
    deep.update(65, 0.10)
    assert deep.tokens == 26  # fewer rows not tried yet: try them
    deep.update(26, 0.15)  # row by row: longer than the tile
    assert deep.share(2) == CPU_TILE + 1
    deep.update(65, 0.10)
    assert deep.share(2) == CPU_TILE + 1  # and it stays at one tile and one token
    big = ChunkSize(2048, 512, tile=CPU_TILE)  # a larger model: the weights cost most
    big.update(65, 0.8)
    big.update(16, 0.2)
    assert big.share(2) == MIN_TOKENS  # fewer rows stay


def test_a_device_too_slow_for_the_target_takes_chunks_of_several_of_its_steps() -> None:
    gpu = ChunkSize(2048, 512)
    gpu.update(0, TARGET_S / 2)  # the streams' own step keeps to the target
    assert gpu.target == TARGET_S
    size = ChunkSize(2048, 512)
    size.update(0, 0.075)  # a CPU: a 1B's step on two cores
    assert size.target == SLOW_STEPS * 0.075
    size.update(102, 1.06)  # a burst of three short prompts at once: within it
    assert size.tokens == 512
    size.update(512, 4 * size.target)  # a long prompt's micro-batch: too long
    assert size.tokens == 128
    size.update(0, 0.0)  # says nothing
    assert size.target == SLOW_STEPS * 0.075
    fast = ChunkSize(2048, 512)
    for _ in range(3):
        fast.update(0, 0.003)
    fast.update(0, 0.055)  # one step held up by something else: still a fast device
    assert fast.target == TARGET_S
    for _ in range(8):
        fast.update(0, 0.090)  # many streams more, each step slower: it follows
    assert fast.target == SLOW_STEPS * 0.090


def test_the_first_chunk_beside_streams_follows_the_pace_of_prompts_alone() -> None:
    size = ChunkSize(2048, 512)
    size.update(500, 0.5, beside=False)  # prompts alone: 1,000 tokens a second
    assert size.share(2) == 40  # no step of the streams alone yet: 40 ms of it
    size.update(0, 0.010)  # two streams' own step: 10 ms, 30 left of the 40
    assert size.share(2) == 30  # not the micro-batch
    size.update(30, TARGET_S)  # the first step beside them: from here on, the rule
    assert size.share(2) == 30
    size.update(400, 0.1, beside=False)  # a later pace alone changes it no more
    assert size.share(2) == 30
    assert ChunkSize(2048, 512).share(2) == 512  # no pace known: the micro-batch
    slow = ChunkSize(2048, 512)
    slow.update(34, 0.4, beside=False)  # a 1B on two cores: 85 tokens a second
    assert slow.share(1) == MIN_TOKENS  # (40 ms of it, while the device looks fast)
    slow.update(0, 0.075)  # it is not: a pace of short prompts says little there
    assert slow.share(1) == 512


def test_a_prompt_no_longer_than_a_chunk_goes_in_whole_whatever_the_others_took() -> None:
    size = ChunkSize(2048, 512)
    size.tokens = 64  # the time rule's chunk; the micro-batch is 512
    assert size.take(0, 2040, 40, beside=True) == 40  # the budget spent: a short one still
    assert size.take(0, 2040, 100, beside=True) == 0  # a longer one waits for a step
    assert size.take(30, 2040, 100, beside=True) == 30  # or takes what is left
    assert size.take(0, 30, 40, beside=True) == 0  # whole only where the batch holds it
    assert size.take(0, 1540, 40, beside=True) == 0  # and the micro-batch (508 rows in)
    assert size.take(2048, 2048, 1000, beside=False) == 1000  # nothing generating: all
