"""The prompt chunk taken beside generating streams follows how long such steps take."""

from __future__ import annotations

from localllm.engine.chunking import MIN_TOKENS, TARGET_S, ChunkSize


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
    size.update(0, 1.0)
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
