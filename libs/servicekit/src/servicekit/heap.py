"""Garbage-collector settings for long-running asyncio processes.

CPython's cycle collector stops the event loop while it runs, and a full collection walks every
tracked object: in a service that holds its framework, schemas and data in memory, that was a
pause of a large share of a second every few seconds under load, which showed as the tail of
every latency.
"""

from __future__ import annotations

import gc

# Young collections after this many net allocations (CPython's default is 700): rarer, and each
# still short, since every collection also stops the loop (at 20,000 they took 10-80 ms, which
# showed in the latency tail again); full collections stay rare because few objects survive
# into the old generation.
YOUNG_GENERATION_THRESHOLD = 3_000


def freeze_startup_heap() -> None:
    """Called once startup is done: what it allocated (modules, the app, its schemas, loaded
    data) lives as long as the process, so it is moved out of the collector's sight and full
    collections walk only what came later."""
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, 20, 10)
