"""Development-only tooling: test fixtures, the local stack runner and a widget API client.

Kept apart from servicekit so that service images, which install only contracts, servicekit and
the service, never ship pytest or the test helpers.
"""
