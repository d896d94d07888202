"""Metrics of the analytics service, beside the platform's (`servicekit.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter

CONVERSATIONS_SUMMARISED = Counter(
    "analytics_conversations_summarised_total",
    "Conversation rows brought up to date, by how: 'extended' (the batch's new facts folded into the"
    " stored fold) or 'rebuilt' (summarised again from all of its facts: a fact older than one"
    " already folded in, or a row without a fold).",
    ["how"],
)
