"""The read-API bodies: what the conversation service answers is what the gateway and the widget read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from contracts.common import ConversationStatus, Sender, SmartAction, SmartActionType
from contracts.readapi import HistoryView, MessagesResponse, MessageView, WidgetMessage


def operator_message(seq: int) -> MessageView:
    return MessageView(
        seq=seq,
        message_id=uuid.uuid4(),
        sender=Sender.OPERATOR,
        text="Buongiorno, sono Anna",
        smart_actions=[SmartAction(type=SmartActionType.CONTINUE_AI, label="Continua")],
        operator_id="anna@lucine",
        created_at=datetime.now(UTC),
    )


def test_the_gateway_reads_the_conversation_history_without_the_operator_ids() -> None:
    answered = HistoryView[MessageView](
        conversation_id=uuid.uuid4(),
        tenant_id="lucine-di-natale",
        status=ConversationStatus.WITH_OPERATOR,
        messages=[operator_message(1), operator_message(2)],
    )
    body = answered.model_dump_json()
    assert '"operator_id":"anna@lucine"' in body

    read = HistoryView[WidgetMessage].model_validate_json(body)
    assert [type(m) for m in read.messages] == [WidgetMessage, WidgetMessage]
    assert [m.seq for m in read.messages] == [1, 2]
    widget_body = MessagesResponse(
        conversation_id=read.conversation_id, status=read.status, messages=read.messages
    ).model_dump_json()
    assert "operator_id" not in widget_body
    assert MessagesResponse.model_validate_json(widget_body).messages == read.messages


def test_fields_a_newer_answering_side_adds_are_ignored() -> None:
    message = operator_message(1).model_dump(mode="json") | {"edited_at": "2025-12-01T10:00:00Z"}
    body = {"conversation_id": str(uuid.uuid4()), "tenant_id": "t1", "status": "AI", "messages": [message], "x": 1}
    read = HistoryView[MessageView].model_validate(body)
    assert read.messages[0].operator_id == "anna@lucine"
