"""Speculating sampled requests (localllm/engine/rejection.py): each token is drawn from
the model's distribution, a guess taken exactly when the draw is the guess, so the
guess is taken as often as the standard accept/reject rule takes it."""

from __future__ import annotations

import pytest

from localllm.engine.rejection import inverse_cdf

IDS = [7, 3, 11, 5]
PROBS = [0.5, 0.3, 0.15, 0.05]
GRID = [(i + 0.5) / 1000 for i in range(1000)]
"""Evenly spread uniforms: the frequencies are the exact integrals."""


def test_the_draws_follow_the_distribution() -> None:
    drawn = [inverse_cdf(IDS, PROBS, v) for v in GRID]
    for token, p in zip(IDS, PROBS, strict=True):
        assert drawn.count(token) / len(GRID) == pytest.approx(p, abs=0.002)


@pytest.mark.parametrize(("guess", "p"), [(7, 0.5), (3, 0.3), (5, 0.05), (99, 0.0)])
def test_a_guess_is_taken_as_often_as_the_standard_rule_takes_it(guess: int, p: float) -> None:
    """The rule takes a point-mass guess with probability p(guess); rejected, the token
    follows p without the guess: here, the draws that are not the guess."""
    drawn = [inverse_cdf(IDS, PROBS, v) for v in GRID]
    assert sum(t == guess for t in drawn) / len(GRID) == pytest.approx(p, abs=0.002)
    others = [t for t in drawn if t != guess]
    rest = 1 - p
    for token, q in zip(IDS, PROBS, strict=True):
        if token != guess:
            assert others.count(token) / len(others) == pytest.approx(q / rest, abs=0.005)


def test_rounding_never_falls_off_the_end() -> None:
    assert inverse_cdf(IDS, [0.5, 0.3, 0.15, 0.0499999], 0.99999999) == 5
