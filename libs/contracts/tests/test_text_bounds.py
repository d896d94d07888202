"""Text fields: their bounds hold for the text as sent (what the JSON Schema states), and the
blanks around a valid text are stripped after the check."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts.common import MAX_MESSAGE_CHARS, NOT_BLANK, MessageText, RequiredText, ShortText


@pytest.mark.parametrize(("kind", "limit"), [(MessageText, MAX_MESSAGE_CHARS), (ShortText, 200)])
def test_a_text_too_long_as_sent_is_refused_even_if_stripped_it_would_fit(kind: Any, limit: int) -> None:
    adapter: TypeAdapter[str] = TypeAdapter(kind)
    assert adapter.validate_python(" " + "a" * (limit - 1)) == "a" * (limit - 1)
    with pytest.raises(ValidationError, match="at most"):
        adapter.validate_python(" " + "a" * limit)


@pytest.mark.parametrize("kind", [MessageText, ShortText])
def test_blanks_around_a_text_are_stripped_and_a_blank_text_is_refused(kind: Any) -> None:
    adapter: TypeAdapter[str] = TypeAdapter(kind)
    assert adapter.validate_python("  ciao \n") == "ciao"
    with pytest.raises(ValidationError):
        adapter.validate_python(" \t ")


def test_a_required_text_states_its_bounds_in_the_schema() -> None:
    adapter: TypeAdapter[str] = TypeAdapter(Annotated[str, RequiredText(60)])
    assert adapter.json_schema() == {"type": "string", "minLength": 1, "maxLength": 60, "pattern": NOT_BLANK}
    assert adapter.validate_python(" Apri la chat ") == "Apri la chat"
    with pytest.raises(ValidationError, match="at most"):
        adapter.validate_python("a" * 61)
