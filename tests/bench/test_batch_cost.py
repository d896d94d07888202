"""`bench.batch_cost` on real Kafka and PostgreSQL: a short run measures every batch it sent."""

from __future__ import annotations

import asyncio

from bench.batch_cost import measure
from devkit.testing import Infra


def test_a_short_run_reports_the_cpu_of_each_process_per_batch(infra: Infra) -> None:
    figures = asyncio.run(measure(infra, rate=40, seconds=1, calibration_ms=100.0))

    assert figures["batches"] == 40
    per_batch = figures["cpu_ms_per_batch"]
    assert set(per_batch) == {"service", "postgres", "kafka", "feeder"}
    assert per_batch["service"] > 0  # the service applied the batches while they were measured
    assert figures["total_ms"] == round(per_batch["service"] + per_batch["postgres"] + per_batch["kafka"], 3)
    assert figures["per_1000_batches_in_calibrations"] == round(1000 * figures["total_ms"] / 100.0, 2)
