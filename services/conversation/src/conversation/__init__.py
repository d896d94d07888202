"""Conversations, messages, notes and the conversation state machine."""
