from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator

from servicekit.settings import ServiceSettings

# The knowledge bases shipped with the service (the demo tenant's), next to the package.
SHIPPED_KB = Path(__file__).resolve().parents[2] / "kb"


class Settings(ServiceSettings):
    service_name: str = "ai-responder"
    http_port: int = 8082
    # What `build_responder` loads when it is given no knowledge (tools such as the evaluation);
    # the running service answers from its store instead.
    kb_dir: Path = SHIPPED_KB
    # Any OpenAI-compatible endpoint; with no key the assistant answers by retrieval alone.
    llm_api_key: str | None = Field(default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "LLM_API_KEY"))
    llm_base_url: str | None = Field(default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "LLM_BASE_URL"))
    llm_model: str = Field(default="gpt-4o-mini", validation_alias=AliasChoices("OPENAI_MODEL", "LLM_MODEL"))
    llm_timeout_s: float = 8.0
    llm_max_retries: int = 1
    answer_cache_ttl_s: int = 3600
    # How often a replica looks for knowledge bases or assistant settings changed by another replica
    # or the CLI: one indexed SELECT of a row per tenant, so every replica answers with a change
    # within about a second of it.
    kb_refresh_s: float = 1.0
    # Bearer token of the admin endpoints; empty disables them.
    admin_token: str = ""
    history_messages: int = 6
    # Answers of one batch are written in one transaction; with an LLM each takes seconds, so
    # batches stay small enough not to hold a transaction (and the partition) for long. Without
    # one an answer takes a fraction of a millisecond, and batches may be as large as any service's.
    consumer_batch_size: int = 20

    @model_validator(mode="after")
    def _retrieval_batches(self) -> Settings:
        if "consumer_batch_size" not in self.model_fields_set and not self.llm_api_key:
            self.consumer_batch_size = ServiceSettings.model_fields["consumer_batch_size"].default
        return self

    def secret_fields(self) -> tuple[str, ...]:
        return (*super().secret_fields(), "admin_token")
