"""Per-tenant ticket policy, one YAML file per tenant in `TENANTS_DIR` (read at start-up):
the ticket number's prefix, SLA targets per priority, optional business hours and the words that
propose a priority. A tenant without a file gets `DEFAULT_POLICY` (no business hours).

    tenant_id: lucine-di-natale
    ticket_prefix: TCK
    business_hours:             # optional: without it, clocks count every second
      time_zone: Europe/Rome
      windows:
        - {days: [mon, tue, wed, thu, fri, sat, sun], start: "17:30", end: "22:30"}
    sla:                        # business time: "90s", "30m", "4h", "1h30m" or seconds
      urgent: {first_response: 30m, resolution: 4h}
      high:   {first_response: 1h, resolution: 8h}
      normal: {first_response: 2h, resolution: 16h}
      low:    {first_response: 5h, resolution: 40h}
    priority_words:             # optional: replaces the built-in lists (domain.py)
      urgent: [urgente, urgent]
      high: [reclamo, complaint]
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from contracts.common import TicketPriority
from servicekit.logs import get_logger
from tickets.domain import WEEKDAYS, BusinessHours, PriorityWords, SlaTargets, Window

log = get_logger(__name__)
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _seconds(value: Any) -> Any:
    """`"1h30m"`, `"90s"` or a number of seconds, as seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not value.strip() or match is None:
            raise ValueError(f"not a duration: {value!r} (write e.g. 90s, 30m, 4h, 1h30m)")
        hours, minutes, seconds = (int(part or 0) for part in match.groups())
        return hours * 3600 + minutes * 60 + seconds
    return value


Duration = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetsConfig(_Strict):
    first_response: Duration
    resolution: Duration


class WindowConfig(_Strict):
    days: list[str] = Field(min_length=1)
    start: time
    end: time

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        unknown = set(days) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown days {sorted(unknown)}; use {', '.join(WEEKDAYS)}")
        return days


class BusinessHoursConfig(_Strict):
    time_zone: str
    windows: list[WindowConfig] = Field(min_length=1)


class PriorityWordsConfig(_Strict):
    urgent: list[str] | None = None
    high: list[str] | None = None


DEFAULT_TARGETS: dict[TicketPriority, TargetsConfig] = {
    TicketPriority.URGENT: TargetsConfig(first_response=1800, resolution=4 * 3600),
    TicketPriority.HIGH: TargetsConfig(first_response=3600, resolution=8 * 3600),
    TicketPriority.NORMAL: TargetsConfig(first_response=2 * 3600, resolution=24 * 3600),
    TicketPriority.LOW: TargetsConfig(first_response=8 * 3600, resolution=72 * 3600),
}


class TenantConfig(_Strict):
    tenant_id: str = Field(min_length=1, max_length=64)
    ticket_prefix: str = Field(default="TCK", pattern=r"^[A-Z]{2,5}$")
    business_hours: BusinessHoursConfig | None = None
    sla: dict[TicketPriority, TargetsConfig] = Field(default_factory=lambda: dict(DEFAULT_TARGETS))
    priority_words: PriorityWordsConfig = PriorityWordsConfig()

    @field_validator("sla")
    @classmethod
    def _every_priority(cls, sla: dict[TicketPriority, TargetsConfig]) -> dict[TicketPriority, TargetsConfig]:
        missing = set(TicketPriority) - set(sla)
        if missing:
            raise ValueError(f"sla needs targets for every priority; missing {sorted(missing)}")
        return sla


@dataclass(frozen=True)
class TenantPolicy:
    """A tenant's config, ready for the rules of `tickets.domain`."""

    tenant_id: str
    ticket_prefix: str
    targets: dict[TicketPriority, SlaTargets]
    business_hours: BusinessHours | None
    words: PriorityWords = field(default_factory=PriorityWords)
    # The tenant's own time zone when its profile gives one (`tickets.profiles`), even without
    # business hours; else that of its business hours, else UTC.
    zone: ZoneInfo | None = None

    @property
    def time_zone(self) -> ZoneInfo:
        if self.zone is not None:
            return self.zone
        return self.business_hours.time_zone if self.business_hours else ZoneInfo("UTC")

    def year_of(self, instant: datetime) -> int:
        """The year a ticket opened at `instant` has in its number: the tenant's local year."""
        return instant.astimezone(self.time_zone).year

    @classmethod
    def of(cls, config: TenantConfig) -> TenantPolicy:
        hours = None
        if config.business_hours is not None:
            try:
                zone = ZoneInfo(config.business_hours.time_zone)
            except (ZoneInfoNotFoundError, ValueError) as error:
                raise ValueError(f"unknown time zone {config.business_hours.time_zone!r}") from error
            windows = tuple(
                Window(WEEKDAYS.index(day), w.start, w.end) for w in config.business_hours.windows for day in w.days
            )
            hours = BusinessHours(zone, windows)
        defaults = PriorityWords()
        words = PriorityWords(
            urgent=tuple(config.priority_words.urgent) if config.priority_words.urgent is not None else defaults.urgent,
            high=tuple(config.priority_words.high) if config.priority_words.high is not None else defaults.high,
        )
        return cls(
            tenant_id=config.tenant_id,
            ticket_prefix=config.ticket_prefix,
            targets={p: SlaTargets(t.first_response, t.resolution) for p, t in config.sla.items()},
            business_hours=hours,
            words=words,
        )


DEFAULT_POLICY = TenantPolicy.of(TenantConfig(tenant_id="default"))


@dataclass(frozen=True)
class TenantPolicies:
    by_tenant: dict[str, TenantPolicy]

    def of(self, tenant_id: str) -> TenantPolicy:
        policy = self.by_tenant.get(tenant_id)
        if policy is None:
            log.info("tenant has no ticket config; default policy", tenant_id=tenant_id)
            return DEFAULT_POLICY
        return policy


def read_tenant_file(path: Path) -> TenantPolicy:
    try:
        return TenantPolicy.of(TenantConfig.model_validate(yaml.safe_load(path.read_text())))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


@functools.cache
def load_policies(directory: Path) -> TenantPolicies:
    """Every `*.yaml` of `directory` (read once per directory; a bad file stops the start-up)."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]) if directory.is_dir() else []
    policies = [read_tenant_file(path) for path in files]
    return TenantPolicies({p.tenant_id: p for p in policies})
