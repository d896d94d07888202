"""Client of the notifier's internal API: the channels a tenant's customers can be written to on,
which the widget's contact form offers (`GET /v1/widget/config`).

Every page load asks for the widget's configuration, so the answer is kept a while per tenant: a
tenant's Twilio senders change with the notifier's settings, rarely. The configuration never fails
because of the notifier: when it cannot be reached, or answers anything but the channels, the
widget offers email, which the notifier always sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from contracts.common import ContactChannel
from contracts.readapi import TenantChannelsView
from gateway.internal import InternalApi
from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

EMAIL_ONLY = (ContactChannel.EMAIL,)
# A notifier that is down is asked again sooner than an answer is: it may be back in a moment, and
# meanwhile a page load does not wait for its timeout each time.
FALLBACK_SECONDS = 10.0


class NotifierClient:
    def __init__(self, api: InternalApi, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, tuple[ContactChannel, ...]]] = {}

    async def channels(self, tenant_id: str) -> tuple[ContactChannel, ...]:
        """Email first, then WhatsApp and SMS when the notifier can send them for the tenant."""
        now = self._clock()
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            response = await self._api.request("GET", f"/internal/tenants/{tenant_id}/channels")
            view = self._api.parse(TenantChannelsView, response)
        except ApiError:  # logged by InternalApi
            self._cache[tenant_id] = (now + min(self._ttl, FALLBACK_SECONDS), EMAIL_ONLY)
            return EMAIL_ONLY
        # A call is made by a person, not sent: it is the widget's own choice, never the notifier's.
        channels = tuple(dict.fromkeys(c for c in view.channels if c != ContactChannel.PHONE)) or EMAIL_ONLY
        self._cache[tenant_id] = (now + self._ttl, channels)
        return channels
