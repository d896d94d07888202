"""Metrics of the tickets service, beside the platform's (`servicekit.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter

TICKETS_OPENED = Counter("tickets_opened_total", "Tickets opened.", ["source", "priority"])
SLA_WARNINGS = Counter("tickets_sla_warnings_total", "SLA clocks that passed 80% of their target.", ["clock"])
SLA_BREACHES = Counter("tickets_sla_breaches_total", "SLA clocks that passed their deadline.", ["clock"])
COMMANDS_REJECTED = Counter("tickets_commands_rejected_total", "Ticket commands refused.", ["code"])
