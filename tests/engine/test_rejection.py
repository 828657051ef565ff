"""The accept/reject rule (localllm/engine/rejection.py): a speculating sampled request
draws each token from the model's distribution, whatever was guessed."""

from __future__ import annotations

import pytest

from localllm.engine.rejection import accept_or_resample

IDS = [7, 3, 11, 5]
PROBS = [0.5, 0.3, 0.15, 0.05]
GRID = [(i + 0.5) / 400 for i in range(400)]
"""Evenly spread values of both uniforms: the frequencies are the exact integrals."""


def frequencies(guess: int | None) -> dict[int, float]:
    counts = dict.fromkeys(IDS, 0)
    for u in GRID:
        for v in GRID:
            counts[accept_or_resample(IDS, PROBS, guess, u, v)] += 1
    return {t: c / len(GRID) ** 2 for t, c in counts.items()}


@pytest.mark.parametrize("guess", [None, 7, 3, 5, 99])
def test_every_guess_leaves_the_distribution_as_it_was(guess: int | None) -> None:
    got = frequencies(guess)
    for token, p in zip(IDS, PROBS, strict=True):
        assert got[token] == pytest.approx(p, abs=0.005), (guess, token)


def test_a_guess_is_taken_as_often_as_the_model_would_pick_it() -> None:
    taken = sum(accept_or_resample(IDS, PROBS, 3, u, 0.0) == 3 for u in GRID) / len(GRID)
    assert taken == pytest.approx(0.3, abs=0.005)


def test_a_rejected_guess_is_never_drawn_again() -> None:
    assert all(accept_or_resample(IDS, PROBS, 7, 0.99, v) != 7 for v in GRID)


def test_a_guess_the_chain_cut_away_is_never_taken() -> None:
    assert all(accept_or_resample(IDS, PROBS, 99, u, 0.5) != 99 for u in GRID)
