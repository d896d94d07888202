"""Metrics of the conversation service, beside the platform's (`servicekit.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter

AI_REPLIES_DROPPED = Counter(
    "conversation_ai_replies_dropped_total",
    "AI replies not stored because the conversation had left the assistant when they arrived"
    " (queued, with an operator, ticketed or closed): the reply was still in flight at takeover.",
    ["status"],
)
