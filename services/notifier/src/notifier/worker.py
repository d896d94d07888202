"""The delivery worker: sends the recorded deliveries, each on its own, with retries.

It runs in every replica next to the consumer. A delivery is claimed (`sending`, committed) before
its outside call and its outcome recorded right after, in one short transaction each; nothing is
held open across the call. Claims skip rows another replica has locked (`FOR UPDATE SKIP LOCKED`),
so replicas share the work. Up to `delivery_concurrency` sends run at once, whatever their
channel, tenant or ticket, so that a slow or failing receiver holds one slot for at most its
timeout, and its next try waits for its back-off, not in front of anything else.

Outcomes:
- sent: `sent`, and `DeliveryCompleted(succeeded=True)` staged in the outbox of that transaction;
- failed, tries left: `pending` again, due after `domain.backoff_seconds` (doubling, jittered);
- failed for good (the last try, or an error no try can cure): `failed`, with
  `DeliveryCompleted(succeeded=False)` and a dead letter on `notifications.events.v1.dlq`, both in
  the outbox of that transaction.

A process that dies between a send and its record leaves the row `sending`: once its lease runs
out (`delivery_lease_seconds`, longer than any send may take), a worker claims it again and sends
it again, with the same Message-ID or `webhook-id` (at least once across that window).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from datetime import timedelta

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Envelope, new_envelope
from contracts.common import DeliveryChannel
from contracts.events import DeliveryCompleted
from contracts.topics import NOTIFICATIONS_EVENTS
from notifier import domain, store
from notifier.config import Settings
from notifier.senders import SendError, Senders, Sent
from notifier.store import Delivery
from servicekit.consumer import DLQ_CONSUMER_GROUP, DLQ_ERROR
from servicekit.logs import get_logger, log_context
from servicekit.metrics import DLQ_MESSAGES
from servicekit.outbox import add_record_to_outbox, add_to_outbox

log = get_logger(__name__)

DEAD_LETTERS = NOTIFICATIONS_EVENTS.dlq
DLQ_DELIVERY_ID = "dlq-delivery-id"  # header of a dead delivery: its id, for the retry endpoint
BACKLOG_INTERVAL = 5.0  # seconds between two counts of the unfinished deliveries

DELIVERIES = Counter(
    "notifier_deliveries_total",
    "Delivery tries by outcome: sent, retried (failed, tried again later), failed (for good).",
    ["channel", "outcome"],
)
ATTEMPTS = Counter("notifier_delivery_attempts_total", "Sends started (every try counts).", ["channel"])
SEND_SECONDS = Histogram(
    "notifier_send_seconds",
    "Time one send took, successful or not.",
    ["channel"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BACKLOG = Gauge("notifier_deliveries_backlog", "Deliveries not finished yet, by status (pending, sending).", ["status"])


def completed(delivery: Delivery, *, succeeded: bool) -> Envelope[DeliveryCompleted]:
    """The delivery's result, caused by the event that asked for it."""
    payload = DeliveryCompleted(
        delivery_id=delivery.delivery_id,
        source_event_id=delivery.source_event_id,
        ticket_id=delivery.ticket_id,
        channel=DeliveryChannel(delivery.channel),
        template=delivery.template,
        recipient=delivery.recipient_masked,
        succeeded=succeeded,
        attempts=max(delivery.attempts, 1),
        error="" if succeeded else delivery.last_error[:1000],
    )
    envelope = new_envelope(
        payload,
        tenant_id=delivery.tenant_id,
        conversation_id=delivery.conversation_id,
        correlation_id=delivery.correlation_id,
    )
    return envelope.model_copy(update={"causation_id": delivery.source_event_id})


class DeliveryWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        senders: Senders,
        *,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.senders = senders
        self._uniform = uniform
        self._lease = timedelta(seconds=settings.delivery_lease_seconds)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="delivery-worker")

    async def stop(self, timeout: float = 5.0) -> None:
        """Takes no new deliveries and lets the sends under way record their outcome, for at most
        `timeout`; one cut short stays `sending` and is sent again after its lease."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._in_flight:
            _, unfinished = await asyncio.wait(set(self._in_flight), timeout=timeout)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    async def deliver_due(self) -> int:
        """Claims what is due now (as many as there are free slots), sends it and waits until
        every send under way has recorded its outcome; returns how many were claimed."""
        claimed = await self._claim_and_send()
        while self._in_flight:
            await asyncio.gather(*set(self._in_flight))
        return claimed

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_count = 0.0
        while not self._stopping.is_set():
            claimed = 0
            try:
                claimed = await self._claim_and_send()
                if loop.time() >= next_count:
                    next_count = loop.time() + BACKLOG_INTERVAL
                    await self._count_backlog()
            except Exception:
                log.exception("claiming deliveries failed; trying again")
            if claimed and len(self._in_flight) < self.settings.delivery_concurrency:
                continue  # more may be due: look again at once
            # Until the poll interval, a free slot, or the stop.
            waits = {asyncio.ensure_future(self._stopping.wait()), *self._in_flight}
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.delivery_poll_seconds):
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits - self._in_flight:
                waiter.cancel()

    async def _claim_and_send(self) -> int:
        free = self.settings.delivery_concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        async with self.sessions() as session, session.begin():
            claimed = await store.claim_due(session, free, self._lease)
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery), name=f"delivery-{delivery.delivery_id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed)

    async def _count_backlog(self) -> None:
        async with self.sessions() as session:
            for status, count in (await store.backlog(session)).items():
                BACKLOG.labels(status).set(count)

    async def _deliver(self, delivery: Delivery) -> None:
        channel = delivery.channel
        with log_context(tenant_id=delivery.tenant_id, conversation_id=delivery.conversation_id):
            ATTEMPTS.labels(channel).inc()
            started = time.perf_counter()
            try:
                sent = await self.senders.send(delivery)
            except SendError as error:
                outcome = await self._record_failure(delivery, str(error), permanent=error.permanent)
            except Exception as error:
                log.exception("send failed unexpectedly", delivery_id=str(delivery.delivery_id))
                outcome = await self._record_failure(delivery, f"{type(error).__name__}: {error}", permanent=False)
            else:
                outcome = await self._record_success(delivery, sent)
            finally:
                SEND_SECONDS.labels(channel).observe(time.perf_counter() - started)
            if outcome is not None:
                DELIVERIES.labels(channel, outcome).inc()

    async def _record_success(self, claim: Delivery, sent: Sent) -> str | None:
        try:
            async with self.sessions() as session, session.begin():
                delivery = await store.claimed(session, claim.delivery_id, claim.attempts)
                if delivery is None:
                    log.info("delivery recorded by another worker meanwhile", delivery_id=str(claim.delivery_id))
                    return None
                delivery.status, delivery.last_error = "sent", ""
                delivery.provider_message_id = sent.provider_message_id
                delivery.sent_at = delivery.updated_at = func.now()
                add_to_outbox(session, [completed(delivery, succeeded=True)])
        except Exception:
            # Sent but not recorded: the row stays `sending` and goes again after its lease.
            log.exception("sent, but the outcome could not be recorded", delivery_id=str(claim.delivery_id))
            return None
        return "sent"

    async def _record_failure(self, claim: Delivery, error: str, *, permanent: bool) -> str | None:
        settings = self.settings
        last_try = permanent or claim.attempts >= settings.delivery_max_attempts
        try:
            async with self.sessions() as session, session.begin():
                delivery = await store.claimed(session, claim.delivery_id, claim.attempts)
                if delivery is None:
                    return None
                delivery.last_error = error[:2000]
                delivery.updated_at = func.now()
                if not last_try:
                    delay = domain.backoff_seconds(
                        delivery.attempts,
                        settings.delivery_backoff_base_seconds,
                        settings.delivery_backoff_max_seconds,
                        self._uniform,
                    )
                    delivery.status = "pending"
                    delivery.next_attempt_at = func.now() + timedelta(seconds=delay)
                    log.warning(
                        "delivery failed; trying again later", attempts=delivery.attempts, delay=delay, error=error
                    )
                else:
                    delivery.status = "failed"
                    result = completed(delivery, succeeded=False)
                    add_to_outbox(session, [result])
                    add_record_to_outbox(
                        session,
                        DEAD_LETTERS,
                        result.key,
                        result.to_json(),
                        {
                            DLQ_ERROR: error[:2000],
                            DLQ_CONSUMER_GROUP: settings.group_id,
                            DLQ_DELIVERY_ID: str(delivery.delivery_id),
                        },
                    )
                    log.error("delivery failed for good", attempts=delivery.attempts, error=error)
        except Exception:
            log.exception("the failure could not be recorded", delivery_id=str(claim.delivery_id))
            return None
        if last_try:
            DLQ_MESSAGES.labels(DEAD_LETTERS, settings.group_id).inc()
            return "failed"
        return "retried"
