from __future__ import annotations

from pydantic import Field

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "analytics"
    http_port: int = 8086
    # Analytics is off every path a customer or an operator waits on, so its consumer waits this
    # long after a fetch that brought records: what arrives meanwhile is one batch. Below
    # saturation each event was otherwise a transaction of its own, and analytics was a sixth of
    # the system's CPU per handoff; facts reach the store and the topic up to this much later.
    consumer_batch_linger_ms: float = Field(default=250.0, ge=0, le=1000)
    # A batch holds all that one lingering fetch brings (about 350 events at 500 turns/s). Cut at
    # 200, a fetch's records were split between batches partition by partition, so a customer's
    # message often came a batch after the AI reply to it, and a fact older than those folded in
    # makes the conversation summarised again from all of its facts (a fifth of the conversations).
    consumer_batch_size: int = Field(default=2000, ge=1)
    # Hours a conversation must stay quiet (or be closed) before the AI's last answer counts as
    # resolving it: a customer writing again within them reopens it.
    ai_resolution_window_hours: float = Field(default=24, gt=0)
    # An AI reply below this confidence is a question the knowledge base could not answer, even
    # when the assistant offered no person (the ai-responder's default answer threshold).
    kb_gap_confidence: float = Field(default=0.45, ge=0, le=1)
    # Unanswered questions at least this similar (rapidfuzz token-set ratio, 0-100) are grouped.
    kb_gap_similarity: float = Field(default=75, ge=0, le=100)
    # Example questions shown per group.
    kb_gap_examples: int = Field(default=3, ge=1, le=20)
