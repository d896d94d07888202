"""Customer tokens: an HS256 JWT naming one conversation (`sub`) of one tenant."""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass

import jwt

AUDIENCE = "widget"  # keeps operator tokens (another audience) out of the widget API
ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, malformed, expired or signed with another key."""


@dataclass(frozen=True)
class CustomerClaims:
    tenant_id: str
    conversation_id: uuid.UUID


def issue_customer_token(secret: str, tenant_id: str, conversation_id: uuid.UUID, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "sub": str(conversation_id),
        "tenant_id": tenant_id,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_customer_token(secret: str, token: str) -> CustomerClaims:
    claims, expires_at = _verified(secret, token)
    if time.time() >= expires_at:
        raise InvalidToken("Signature has expired")
    return claims


# A widget sends the same token with every request: its signature is checked once, and its expiry
# at every use. Tokens that fail are not remembered (the exception escapes the cache).
@functools.lru_cache(maxsize=16_384)
def _verified(secret: str, token: str) -> tuple[CustomerClaims, int]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "exp", "aud", "tenant_id"]},
        )
        customer = CustomerClaims(tenant_id=str(claims["tenant_id"]), conversation_id=uuid.UUID(str(claims["sub"])))
        return customer, int(claims["exp"])
    except (jwt.PyJWTError, ValueError) as error:
        raise InvalidToken(str(error)) from error
