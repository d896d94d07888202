"""Fixtures shared by every test tree: real Kafka, PostgreSQL and Redis (see devkit.testing)."""

pytest_plugins = ["devkit.testing"]
