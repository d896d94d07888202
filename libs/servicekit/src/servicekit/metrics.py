"""Prometheus metrics every service exposes, defined once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HANDLER_SECONDS = Histogram(
    "event_handler_seconds",
    "Time spent handling one consumed event.",
    ["topic", "group", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_DEDUPLICATED = Counter(
    "events_deduplicated_total", "Redelivered events skipped as already processed.", ["group"]
)
DLQ_MESSAGES = Counter("dlq_messages_total", "Messages sent to a dead-letter topic.", ["topic", "group"])
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows waiting to be relayed to Kafka.")
OUTBOX_RELAYED = Counter("outbox_relayed_total", "Outbox rows published to Kafka.")
CONSUMER_LAG = Gauge(
    "consumer_lag", "Records between a consumer's position and the partition end.", ["topic", "partition", "group"]
)
CONSUMER_BATCH_SIZE = Histogram(
    "consumer_batch_size",
    "Events applied in one consumer transaction: larger batches share one commit and their queries.",
    ["group"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
