"""AI assistant: answers from the tenant knowledge base, smart actions, handoff offers."""
