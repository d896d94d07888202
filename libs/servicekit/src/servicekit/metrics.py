"""Prometheus metrics every service exposes, defined once.

Every label takes values from a closed set (contract event types, route templates, topics and
their partitions, consumer groups, status codes), never an id or a raw path, so the number of
series stays bounded whatever the traffic. Gauges read from a service's own tables (outbox,
timers) are sampled every `ServiceSettings.metrics_sample_seconds` by `Runtime`, not per scrape.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUEST_SECONDS = Histogram(
    "http_request_seconds",
    "Time to answer one HTTP request, by route template (not the raw path), method and status.",
    ["method", "route", "status"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HANDLER_SECONDS = Histogram(
    "event_handler_seconds",
    "Time spent handling one consumed event (its share of the batch transaction it was applied in).",
    ["group", "event_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_DEDUPLICATED = Counter(
    "events_deduplicated_total", "Redelivered events skipped as already processed.", ["group"]
)
DLQ_MESSAGES = Counter("dlq_messages_total", "Messages sent to a dead-letter topic.", ["topic", "group"])
OUTBOX_BACKLOG = Gauge(
    "outbox_backlog", "Outbox rows waiting to be relayed to Kafka (parked rows not included; counted up to 100,000)."
)
OUTBOX_PARKED_ROWS = Gauge(
    "outbox_parked_rows", "Outbox rows Kafka refused for good, parked in the table now (`python -m servicekit.outbox`)."
)
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
EVENTS_SKIPPED = Counter(
    "events_skipped_total",
    "Records a consumer group passed by without applying them: an event type it does not know"
    " (from a newer producer), or a dead letter replayed for another group.",
    ["topic", "group", "reason"],
)
CONSUMER_PAUSED = Gauge(
    "consumer_paused",
    "1 while a consumer has stopped fetching because its own database or broker is failing.",
    ["group"],
)
RETRIES_STORED = Counter(
    "consumer_retries_stored_total",
    "Records stored for another try because their handler's outside call failed.",
    ["group"],
)
OUTBOX_PARKED = Counter(
    "outbox_parked_total", "Outbox rows Kafka refused for good, parked in the table instead of retried.", ["topic"]
)
TIMERS_FIRED = Counter("timers_fired_total", "Durable timers that fell due and moved to the outbox.")
TIMERS_PENDING = Gauge("timers_pending", "Durable timers scheduled and not fired yet (counted up to 100,000).")
TIMERS_OVERDUE = Gauge(
    "timers_overdue", "Durable timers due for more than a few seconds and not fired yet: no firer is keeping up."
)
CONSUMER_REBALANCES = Counter(
    "consumer_rebalances_total", "Times partitions were taken away from a consumer by a group rebalance.", ["group"]
)
