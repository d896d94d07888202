"""The signed, expiring link of a sign-up's verification email, in the manner of
`contracts.ticketlinks`: the gateway signs the token it asks the notifier to email and checks it
when the link is followed, with its own secret (`SIGNUP_LINK_SECRET`)."""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

SIGNUP_MAX_AGE_SECONDS = 48 * 3600


class InvalidSignupLinkError(Exception):
    """The token is malformed, forged, altered or expired."""


@dataclass(frozen=True)
class SignupLink:
    tenant_id: str
    operator_id: str  # the first admin, whose address the link verifies


def _serializer(secret: str) -> URLSafeTimedSerializer:
    if len(secret) < 16:
        raise ValueError("the sign-up link secret must be at least 16 characters")
    return URLSafeTimedSerializer(secret, salt="signup-verification-link")


def sign(secret: str, link: SignupLink) -> str:
    return _serializer(secret).dumps([link.tenant_id, link.operator_id])


def verify(secret: str, token: str, max_age_seconds: int = SIGNUP_MAX_AGE_SECONDS) -> SignupLink:
    try:
        tenant_id, operator_id = _serializer(secret).loads(token, max_age=max_age_seconds)
        return SignupLink(tenant_id=str(tenant_id), operator_id=str(operator_id))
    except (BadSignature, ValueError, TypeError) as error:
        raise InvalidSignupLinkError(str(error)) from error


def verify_page_url(public_base_url: str, token: str) -> str:
    """The dashboard's verification page opened on `token`."""
    return f"{public_base_url.rstrip('/')}/dashboard/verify?t={token}"
