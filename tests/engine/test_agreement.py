"""The rule by which greedy answers of different paths agree (tests/engine/agreement.py):
the same text, or the same up to a tie of the reference."""

from __future__ import annotations

import pytest

from localllm.engine.protocol import TokenLogprob
from tests.engine.agreement import agreed


def _token(text: str, margin: float, other: str = "zz") -> TokenLogprob:
    raw = tuple(text.encode())
    return TokenLogprob(
        text, -1.0, raw, ((text, -1.0, raw), (other, -1.0 - margin, tuple(other.encode())))
    )


REFERENCE = [_token("a", 2.0), _token(" b", 1.5), _token(" c", 5e-6), _token(" d", 3.0)]


def test_the_same_text_agrees_in_full() -> None:
    assert agreed(REFERENCE, "a b c d") == 7
    assert agreed(REFERENCE, "a b c") == 5  # stopped early


def test_parting_at_a_tie_is_allowed_and_elsewhere_is_not() -> None:
    assert agreed(REFERENCE, "a b zz q") == 4  # " c" won by 5e-6 nats: either is right
    with pytest.raises(AssertionError, match=r"chose by 1\.5 nats: not a tie"):
        agreed(REFERENCE, "a q")
    with pytest.raises(AssertionError, match="the answer goes on"):
        agreed(REFERENCE, "a b c d e")
