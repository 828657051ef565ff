"""Ids of responses and tool calls: random, 24 hex digits after the dialect's prefix
(`chatcmpl-`, `msg_`, `resp_`, `call_`, `toolu_`...), as the hosted APIs write them."""

from __future__ import annotations

import uuid


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"
