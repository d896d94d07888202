"""Shared service plumbing: settings, logging, metrics, tracing, Kafka, outbox, idempotency, DLQ."""
