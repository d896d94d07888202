"""Who may still use the gateway: disabled tenants, tenants whose sign-up is not verified yet,
and deactivated operator accounts.

Every widget request and every operator request asks this gate, so the check is a set lookup in
memory (no I/O on the request path). The gate reloads its few rows from the database when a
version key in Redis changes: whoever changes a tenant or an account (the admin API on any
replica, the platform CLI) increments the key after committing, and every replica polls it twice
a second. The replica that made the change reloads at once. A full reload every half minute
covers a lost increment (Redis flushed or unreachable at the time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import access_rows
from gateway.tokens import OperatorClaims
from servicekit.logs import get_logger

log = get_logger(__name__)

POLL_SECONDS = 0.5
FULL_RELOAD_SECONDS = 30.0

TENANT_DISABLED = "tenant_disabled"
# A tenant that signed up itself, until its first admin follows the emailed link.
TENANT_PENDING = "tenant_pending"
TENANT_REFUSALS = frozenset({TENANT_DISABLED, TENANT_PENDING})
ACCOUNT_INACTIVE = "account_inactive"


def version_key(namespace: str) -> str:
    return f"{namespace}gateway:access-version"


async def announce_change(redis: Redis, namespace: str) -> None:
    """Tells every gateway replica to reload the gate (call it after the change is committed)."""
    await redis.incr(version_key(namespace))


class AccessGate:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], redis: Redis, namespace: str) -> None:
        self._sessions = sessions
        self._redis = redis
        self._namespace = namespace
        self._key = version_key(namespace)
        self._refused_tenants: dict[str, str] = {}  # tenant id -> TENANT_DISABLED or TENANT_PENDING
        self._inactive: frozenset[str] = frozenset()
        self._generations: dict[str, int] = {}
        self._version: bytes | str | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        # Called after each reload: the runtime closes the sockets the gate now refuses.
        self.on_change: list[Callable[[AccessGate], None]] = []

    # ---------------------------------------------------------------- the checks (hot path)

    def tenant_disabled(self, tenant_id: str) -> bool:
        return self._refused_tenants.get(tenant_id) == TENANT_DISABLED

    def refuses_any_tenant(self) -> bool:
        return bool(self._refused_tenants)

    def tenant_refusal(self, tenant_id: str) -> str | None:
        """Why the tenant's widget and operators are refused (None: they are not)."""
        return self._refused_tenants.get(tenant_id)

    def refusal(self, claims: OperatorClaims) -> str | None:
        """Why an operator token may no longer be used (None: it may)."""
        if tenant_refused := self._refused_tenants.get(claims.tenant_id):
            return tenant_refused
        if claims.operator_id in self._inactive or claims.generation < self._generations.get(claims.operator_id, 0):
            return ACCOUNT_INACTIVE
        return None

    # ---------------------------------------------------------------- reloading

    async def reload(self) -> None:
        async with self._lock:
            try:
                version = await self._redis.get(self._key)
            except RedisError as error:  # reload anyway: the database is the truth
                log.warning("access version unreadable", error=repr(error))
                version = self._version
            async with self._sessions() as session:
                tenants, accounts = await access_rows(session)
            self._refused_tenants = {
                tenant_id: TENANT_DISABLED if disabled else TENANT_PENDING for tenant_id, disabled in tenants
            }
            self._inactive = frozenset(operator_id for operator_id, active, _ in accounts if not active)
            self._generations = {operator_id: generation for operator_id, _, generation in accounts}
            self._version = version
            self._loaded_at = time.monotonic()
        for callback in self.on_change:
            try:
                callback(self)
            except Exception:
                log.exception("access change not applied")

    async def changed(self) -> None:
        """After a change committed by this process: every replica reloads, this one at once."""
        try:
            await announce_change(self._redis, self._namespace)
        except RedisError as error:
            log.warning("access change not announced; other replicas reload within 30 s", error=repr(error))
        await self.reload()

    async def watch(self) -> None:
        """Polls the version key until cancelled; reloads when it changed or the gate is old."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                version = await self._redis.get(self._key)
                if version != self._version or time.monotonic() - self._loaded_at > FULL_RELOAD_SECONDS:
                    await self.reload()
            except Exception as error:  # the next poll tries again; the last state stands meanwhile
                log.warning("access gate not reloaded", error=repr(error))
