"""The settings base every service extends: one `Settings` class per service, env vars only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, computed_field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev-secret-change-me"}


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    service_name: str
    environment: Literal["local", "test", "production"] = "local"
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = 8000

    kafka_bootstrap_servers: str = "127.0.0.1:59092"
    # Namespaces every topic (e.g. one test run's stack); empty in a normal deployment.
    kafka_topic_prefix: str = ""
    # The consumer group of this service's consumers; replicas share it. Defaults to the name.
    kafka_group_id: str = ""
    # Records applied in one transaction at most. Smaller when a handler waits on something slow.
    consumer_batch_size: int = 200
    # Milliseconds the broker holds a consumer's fetch (`servicekit.kafka.RecordStream`): what
    # arrives meanwhile makes one fetch and one batch, so fewer Kafka requests and transactions,
    # for at most this much latency per hop (0: the broker answers as soon as a record comes).
    consumer_batch_linger_ms: float = Field(default=0.0, ge=0, le=1000)
    # Processed event ids are kept a day longer than Kafka keeps records (7 days by default).
    processed_events_retention_days: int = 8
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 55432
    postgres_user: str = "support"
    postgres_password: str = "support"  # noqa: S105 -- the local default; refused in production
    postgres_db: str = ""
    redis_url: str = "redis://127.0.0.1:56379/0"

    # Tracing (servicekit.tracing), off unless an exporter is named: `otlp` (OTLP over HTTP to
    # the endpoint, e.g. an OpenTelemetry Collector, Jaeger or Tempo) or `console` (JSON lines
    # to stdout, or appended to `tracing_console_file`).
    otel_traces_exporter: Literal["none", "otlp", "console"] = "none"
    otel_exporter_otlp_endpoint: str = "http://127.0.0.1:4318"
    # The share of turns traced, decided where a turn starts (parent-based): 1.0 traces them all.
    tracing_sample_ratio: float = 1.0
    tracing_console_file: str = ""
    # Seconds between two samples of the gauges read from the service's tables and from Kafka
    # (outbox backlog, timers, consumer lag), per replica.
    metrics_sample_seconds: float = 15.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def database_url(self) -> str:
        database = self.postgres_db or self.service_name.replace("-", "_")
        return (
            f"postgresql+asyncpg://{self.postgres_user}:{self.postgres_password}"
            f"@{self.postgres_host}:{self.postgres_port}/{database}"
        )

    @property
    def group_id(self) -> str:
        return self.kafka_group_id or self.service_name

    def secret_fields(self) -> tuple[str, ...]:
        """Names of fields that must not keep a placeholder value in production."""
        return ("postgres_password",)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment == "production":
            for name in self.secret_fields():
                if str(getattr(self, name)).lower() in PLACEHOLDER_SECRETS | {"support"}:
                    raise ValueError(f"{name.upper()} must be set to a real secret in production")
        return self
