"""Operator presence, capacity and the waiting queue; assigns conversations to operators."""
