"""Progress of the status stream as JSON log lines (one per micro-batch), for operations, and
the numbers each micro-batch publishes to ``pipeline_metrics`` (``batch_metrics``).

Each line is a JSON object on the ``shipments.metrics`` logger, e.g.::

    {"event": "stream_progress", "query": "shipment_status", "batch_id": 12, "input_rows": 1000,
     "input_rows_per_second": 998.1, "processed_rows_per_second": 1530.2, "batch_duration_ms": 650,
     "event_time_watermark": "2026-11-26T09:00:00", "dedup_watermark": "...", "state_rows": 61234,
     "state_rows_dropped_by_watermark": 0, "duplicates_dropped": 3, "late_rows": 0, "dlq_rows": 1,
     "reused_event_ids": 0, ...}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from pyspark.sql.streaming.listener import StreamingQueryListener

from shipments.stream.stats import BatchStats

log = logging.getLogger("shipments.metrics")
_JSON_HANDLER = "shipments-json-lines"


def json_log_handler() -> logging.Handler:
    """A stderr handler that writes each metrics record as the bare JSON line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def enable_json_lines() -> None:
    """Send ``shipments.metrics`` records to stderr as bare JSON lines (once per process)."""
    if not any(h.get_name() == _JSON_HANDLER for h in log.handlers):
        handler = json_log_handler()
        handler.set_name(_JSON_HANDLER)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def batch_metrics(stats: BatchStats, now: dt.datetime) -> dict[str, float]:
    """The ``observe.metrics`` values of one micro-batch, ``now`` being when they are recorded.

    Latency is event time -> visible: from an on-time event's time to the commit of the MERGE
    that made it visible in ``shipment_status`` (``visible_at``). ``latency_seconds`` is the
    batch's p95 (from the 5th percentile of event times: the older an event, the longer it
    waited), ``latency_p50_seconds`` its median, ``latency_max_seconds`` from its oldest event;
    percentiles are approximate, one value per event_id. ``freshness_seconds``: from the newest
    event time the table holds to ``now``. Times in the future (a producer clock ahead, up to
    the capped skew) count as 0. A batch without on-time events has no latency; an empty one
    publishes nothing but its duration.
    """
    seconds = max((now - stats.started_at).total_seconds(), 0.0) if stats.started_at else 0.0
    values: dict[str, float] = {"duration_seconds": seconds}
    if stats.records:
        values["rows_read"] = stats.records
        values["throughput_rows_per_second"] = stats.records / max(seconds, 1e-3)
        values["error_rate"] = stats.dlq / stats.records
        values["rows_written"] = stats.on_time
        values["checks_failed"] = len(stats.checks_failed)
    if stats.visible_at is not None and stats.event_time_min is not None:
        waited = {
            "latency_seconds": stats.event_time_p05,
            "latency_p50_seconds": stats.event_time_p50,
            "latency_max_seconds": stats.event_time_min,
        }
        for name, event_time in waited.items():
            if event_time is not None:
                values[name] = max((stats.visible_at - event_time).total_seconds(), 0.0)
    if stats.max_event_time is not None:
        values["freshness_seconds"] = max((now - stats.max_event_time).total_seconds(), 0.0)
    return values


def _emit(payload: dict[str, Any]) -> None:
    log.info(json.dumps(payload, default=str, separators=(",", ":")))


def progress_record(progress: Any, batch_stats: dict[str, Any] | None) -> dict[str, Any]:
    """One progress line from a ``StreamingQueryProgress`` and what the sink counted for that batch."""
    operators = list(progress.stateOperators or [])
    record: dict[str, Any] = {
        "event": "stream_progress",
        "query": progress.name,
        "query_id": str(progress.id),
        "batch_id": progress.batchId,
        "timestamp": progress.timestamp,
        "input_rows": progress.numInputRows,
        "input_rows_per_second": round(float(progress.inputRowsPerSecond or 0.0), 1),
        "processed_rows_per_second": round(float(progress.processedRowsPerSecond or 0.0), 1),
        "batch_duration_ms": progress.batchDuration,
        "duration_ms": dict(progress.durationMs or {}),
        "dedup_watermark": (progress.eventTime or {}).get("watermark"),
        "state_rows": sum(int(op.numRowsTotal) for op in operators),
        "state_rows_dropped_by_watermark": sum(int(op.numRowsDroppedByWatermark) for op in operators),
        "state_memory_bytes": sum(int(op.memoryUsedBytes) for op in operators),
        "duplicates_dropped": sum(int((op.customMetrics or {}).get("numDroppedDuplicateRows", 0)) for op in operators),
    }
    if batch_stats:
        record.update(batch_stats)
    return record


class StatusProgressListener(StreamingQueryListener):
    """Logs a JSON line per batch of the status query (and one when it starts and ends).

    ``batch_stats(batch_id)`` supplies what the sink counted (late, DLQ, on-time rows and the
    event-time watermark), which Spark's own progress does not know.
    """

    def __init__(self, query_name: str, batch_stats: Callable[[int], dict[str, Any] | None]) -> None:
        self.query_name = query_name
        self.batch_stats = batch_stats
        self.terminated = threading.Event()

    def onQueryStarted(self, event: Any) -> None:
        if event.name == self.query_name:
            _emit(
                {"event": "stream_started", "query": event.name, "query_id": str(event.id), "run_id": str(event.runId)}
            )

    def onQueryProgress(self, event: Any) -> None:
        progress = event.progress
        if progress.name != self.query_name:
            return
        try:
            _emit(progress_record(progress, self.batch_stats(progress.batchId)))
        except Exception as exc:  # a metrics failure must never stop the stream
            log.warning(json.dumps({"event": "stream_progress_error", "error": str(exc)}))

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        _emit({"event": "stream_terminated", "query_id": str(event.id), "error": event.exception})
        self.terminated.set()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait (up to ``timeout`` s) for the events Spark's listener bus still holds.

        Spark delivers listener events asynchronously; a process that exits before they arrive
        loses the last progress lines and makes the JVM log a callback error.
        """
        return self.terminated.wait(timeout)
