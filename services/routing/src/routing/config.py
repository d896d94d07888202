from __future__ import annotations

from pydantic import Field

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "routing"
    http_port: int = 8083
    # Seconds an operator has to accept an offer before it goes to the next operator.
    offer_timeout_seconds: int = 30
    # Seconds without a heartbeat (the gateway repeats the presence every ~15 s while the
    # operator's socket is open) before the operator is offline.
    presence_timeout_seconds: int = 45
    # Offers an operator may let expire in a row before being set to away.
    missed_offers_before_away: int = 2
    # Average seconds an operator spends on a conversation, for the queue's estimated wait.
    average_handling_seconds: int = 240
    # Events applied per consumer transaction, at most. A batch holds its tenants' lock until it
    # commits, and its offers are published only then: a small batch keeps an HTTP take's wait
    # and an offer's delay short, while one drain per batch still serves all its events.
    consumer_batch_size: int = 50
    # Routing reads the whole of `conversation.events.v1` for the few events it handles (a
    # handoff, a status change): without a linger the broker would answer its fetch at every
    # record, and skipping two or three records a turn cost routing 2.5 ms and Kafka about as much
    # per turn. With it a fetch brings what came in 50 ms, and a handoff's offer is up to that
    # much later (an operator's take does not go through this consumer).
    consumer_batch_linger_ms: float = Field(default=50.0, ge=0, le=1000)
    # HTTP takes decided at once, at most; the others wait their turn in the process, holding no
    # database connection. Takes waiting on a lock each held one, and once they held the whole
    # pool the consumer, whose batches make the offers, waited for a connection behind them.
    concurrent_takes: int = 4
