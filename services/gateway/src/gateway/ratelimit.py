"""Fixed-window rate limits in Redis: one atomic script increments the windows' counters and
starts their expiry, so concurrent gateway replicas share one count, and a request checked
against several limits (per IP and per conversation) costs one round trip."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from servicekit.http import ApiError
from servicekit.logs import get_logger

log = get_logger(__name__)

RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused by a rate limit.", ["scope"])

# Returns, for each key in turn, {count in this window, seconds until the window ends}.
_HIT = """
local result = {}
for _, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  local ttl = redis.call('TTL', key)
  if ttl < 0 then
    redis.call('EXPIRE', key, ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  table.insert(result, count)
  table.insert(result, ttl)
end
return result
"""


@dataclass(frozen=True)
class Limit:
    scope: str  # "ip", "conversation"
    subject: str
    requests: int  # allowed per window


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

    async def hit(self, *limits: Limit) -> None:
        """Counts one request against each limit; raises RateLimitExceeded (429) for the first
        one exceeded."""
        keys = [f"{self._namespace}gateway:ratelimit:{limit.scope}:{limit.subject}" for limit in limits]
        try:
            replies = await self._script(keys=keys, args=[self._window])
        except RedisError as error:
            # Failing open: an unreachable cache must not take the customer-facing API down with it.
            log.warning("rate limit not checked: Redis unreachable", error=str(error))
            return
        for limit, count, ttl in zip(limits, replies[::2], replies[1::2], strict=True):
            if int(count) > limit.requests:
                RATE_LIMITED.labels(limit.scope).inc()
                raise RateLimitExceeded(limit.scope, max(int(ttl), 1))
