"""Public REST and WebSocket API for the widget and the operator dashboard."""
