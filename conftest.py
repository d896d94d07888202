"""Fixtures shared by every test tree: real Kafka, PostgreSQL and Redis (see servicekit.testing)."""

pytest_plugins = ["servicekit.testing"]
