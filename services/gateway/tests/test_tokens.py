"""Customer tokens: issued, read, and refused when expired, tampered with or signed elsewhere."""

from __future__ import annotations

import time
import uuid

import pytest

from gateway.tokens import InvalidToken, issue_customer_token, read_customer_token

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_a_token_names_its_tenant_and_conversation() -> None:
    conversation = uuid.uuid4()
    token = issue_customer_token(SECRET, "lucine-di-natale", conversation, ttl_seconds=60)
    claims = read_customer_token(SECRET, token)
    assert (claims.tenant_id, claims.conversation_id) == ("lucine-di-natale", conversation)


def test_a_token_accepted_before_is_refused_once_it_has_expired() -> None:
    token = issue_customer_token(SECRET, "t", uuid.uuid4(), ttl_seconds=1)
    read_customer_token(SECRET, token)  # accepted, and its verification remembered
    time.sleep(1.1)
    with pytest.raises(InvalidToken):
        read_customer_token(SECRET, token)


def test_tampered_tokens_and_other_keys_are_refused() -> None:
    token = issue_customer_token(SECRET, "t", uuid.uuid4(), ttl_seconds=60)
    read_customer_token(SECRET, token)
    header, payload, signature = token.split(".")
    with pytest.raises(InvalidToken):
        read_customer_token(SECRET, f"{header}.{payload}.{signature[:-2]}AA")
    with pytest.raises(InvalidToken):
        read_customer_token("another-secret-that-is-also-long-enough", token)
