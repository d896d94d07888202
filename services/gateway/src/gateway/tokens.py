"""Customer tokens: an HS256 JWT naming one conversation (`sub`) of one tenant. Operator tokens:
an access token (minutes) and a refresh token (hours), HS256 JWTs naming the operator (`sub`),
their tenant and role, each with an audience of its own so that neither passes for the other."""

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


OPERATOR_AUDIENCE = "operator"
REFRESH_AUDIENCE = "operator-refresh"


@dataclass(frozen=True)
class OperatorClaims:
    operator_id: str
    tenant_id: str
    role: str
    display_name: str
    # The account's token generation when issued (`gen`); a deactivation bumps the account's, and
    # every token of an older generation is refused from then on (gateway.access).
    generation: int = 0


def issue_operator_token(secret: str, claims: OperatorClaims, ttl_seconds: int, *, refresh: bool = False) -> str:
    now = int(time.time())
    body = {
        "sub": claims.operator_id,
        "tenant_id": claims.tenant_id,
        "role": claims.role,
        "name": claims.display_name,
        "gen": claims.generation,
        "aud": REFRESH_AUDIENCE if refresh else OPERATOR_AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
        # Two tokens issued in the same second differ, so a refreshed token is a new one.
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(body, secret, algorithm=ALGORITHM)


def read_operator_token(secret: str, token: str, *, refresh: bool = False) -> OperatorClaims:
    """Operators send few requests: each token is verified in full (no cache), expiry included."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=REFRESH_AUDIENCE if refresh else OPERATOR_AUDIENCE,
            options={"require": ["sub", "exp", "aud", "tenant_id", "role", "name"]},
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from error
    return OperatorClaims(
        operator_id=str(claims["sub"]),
        tenant_id=str(claims["tenant_id"]),
        role=str(claims["role"]),
        display_name=str(claims["name"]),
        generation=int(claims.get("gen") or 0),  # tokens issued before generations existed: 0
    )
