"""Fixed-window rate limits in Redis: one atomic script increments the window's counter and
starts its expiry, so concurrent gateway replicas share one count."""

from __future__ import annotations

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused by a rate limit.", ["scope"])

# Returns {count in this window, seconds until the window ends}.
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class RateLimitExceeded(ApiError):
    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(
            429,
            "rate_limited",
            f"too many requests ({scope}); retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class RateLimiter:
    def __init__(self, redis: Redis, *, namespace: str, window_seconds: int) -> None:
        self._script = redis.register_script(_HIT)
        self._namespace = namespace
        self._window = window_seconds

    async def hit(self, scope: str, subject: str, limit: int) -> None:
        """Counts one request of `subject`; raises RateLimitExceeded (429) beyond `limit`."""
        key = f"{self._namespace}gateway:ratelimit:{scope}:{subject}"
        try:
            count, ttl = await self._script(keys=[key], args=[self._window])
        except RedisError as error:
            # Failing open: an unreachable cache must not take the customer-facing API down with it.
            log.warning("rate limit not checked: Redis unreachable", error=str(error))
            return
        if int(count) > limit:
            RATE_LIMITED.labels(scope).inc()
            raise RateLimitExceeded(scope, max(int(ttl), 1))
