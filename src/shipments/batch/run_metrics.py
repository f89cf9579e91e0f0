"""A daily run's metrics, from its ledger record and what it measured."""

from __future__ import annotations

import datetime as dt

from shipments.batch.ledger import SUCCEEDED, RunRecord, utc_now
from shipments.batch.measure import Measured
from shipments.model.tables import DAILY_TOTALS
from shipments.observe.metrics import RunMetrics


def daily_metrics(record: RunRecord, measured: Measured | None, newest_landed: dt.datetime | None) -> RunMetrics:
    """Duration always; the rest when the run got far enough to know it. ``latency_seconds``:
    from the newest input file landing to the day being published."""
    now = utc_now()
    succeeded = record.status == SUCCEEDED
    values: dict[str, float] = {"duration_seconds": (now - record.started_at).total_seconds()}
    if record.rows_read is not None:
        values["rows_read"] = record.rows_read
        values["throughput_rows_per_second"] = record.rows_read / max(values["duration_seconds"], 1e-3)
        values["error_rate"] = (record.rows_quarantined or 0) / record.rows_read if record.rows_read else 0.0
    if record.checks_failed is not None:
        values["checks_failed"] = record.checks_failed
    if succeeded:
        values["rows_written"] = record.rows_written or 0
        if record.table_version is not None:
            values["table_version"] = record.table_version
        if newest_landed is not None:
            values["latency_seconds"] = max(0.0, (now - newest_landed).total_seconds())
    if measured is not None and measured.newest_event is not None:
        newest = measured.newest_event
        newest = newest if newest.tzinfo else newest.replace(tzinfo=dt.UTC)
        values["freshness_seconds"] = max(0.0, (now - newest).total_seconds())
    return RunMetrics(
        run_id=record.run_id,
        job=record.job,
        table=DAILY_TOTALS.name,
        run_date=record.run_date,
        batch_id=None,
        succeeded=succeeded,
        recorded_at=now,
        values=values,
    )
