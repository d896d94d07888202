"""Tickets with transcripts and SLA clocks when no operator is available."""
