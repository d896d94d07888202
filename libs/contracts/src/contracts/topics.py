"""Topic names (`<domain>.<kind>.v<major>`) and their partition counts, defined once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    description: str

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"


CONVERSATION_COMMANDS = Topic("conversation.commands.v1", 6, "Commands from the widget to the conversation service.")
CONVERSATION_EVENTS = Topic("conversation.events.v1", 6, "Everything that happens in a conversation.")
AI_REPLIES = Topic("ai.replies.v1", 6, "Replies drafted by the AI responder.")
ROUTING_EVENTS = Topic("routing.events.v1", 6, "Assignments, queue changes, operator presence.")
ROUTING_COMMANDS = Topic(
    "routing.commands.v1", 6, "Routing's own commands, delivered by its durable timers (offer timeouts)."
)
OPERATOR_COMMANDS = Topic("operator.commands.v1", 6, "Commands from the operator dashboard.")
TICKETS_COMMANDS = Topic("tickets.commands.v1", 3, "Requests to open or change tickets.")
TICKETS_EVENTS = Topic("tickets.events.v1", 3, "Ticket lifecycle and SLA breaches.")
NOTIFICATIONS_EVENTS = Topic("notifications.events.v1", 3, "Results of email and WhatsApp/SMS deliveries.")
ANALYTICS_FACTS = Topic("analytics.facts.v1", 3, "The public, documented analytics topic.")
TENANT_EVENTS = Topic(
    "tenant.events.v1", 3, "Tenant administration: profile snapshots, account emails to send (from the gateway)."
)

ALL_TOPICS: tuple[Topic, ...] = (
    CONVERSATION_COMMANDS,
    CONVERSATION_EVENTS,
    AI_REPLIES,
    ROUTING_EVENTS,
    ROUTING_COMMANDS,
    OPERATOR_COMMANDS,
    TICKETS_COMMANDS,
    TICKETS_EVENTS,
    NOTIFICATIONS_EVENTS,
    ANALYTICS_FACTS,
    TENANT_EVENTS,
)
