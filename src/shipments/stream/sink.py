"""What one micro-batch of the status stream does: the ``foreachBatch`` sink.

Read top to bottom: extract (persist the batch, count it in one pass) -> route (dead letters,
late events, on-time events collapsed per shipment) -> write (append once, MERGE newer) ->
record the batch's event-time mark -> report (checks, alerts and metrics: ``stream.report``).

Exactly-once across crashes rests on these facts:

* Spark replays an unfinished micro-batch with the same batch id, the same offsets and the
  same batch timestamp (all in the offset log), and the plan before the sink is deterministic.
* Every write of a batch is idempotent: the late and dead-letter tables get insert-only MERGEs
  keyed by what identifies the record (a late event by its event_id, a dead letter by its
  source position), so a replay, or the same record delivered again in any later batch, inserts
  nothing; the MERGE into ``shipment_status`` and the DynamoDB update only ever replace a
  stored event by a strictly newer one, so applying a batch twice changes nothing. Each table's
  MERGE runs on the driver with delta-rs while the table is under its cap, with Spark's above
  (``storage.driver_merge``): the same condition either way.
* The event-time watermark a batch compares against is the one recorded after the previous
  batch, kept beside the checkpoint per batch id, so a replay splits late events identically.
* What the batch reports (``dq_results``, alerts, ``pipeline_metrics``) is keyed by the query
  id and the batch id; a batch that may be a replay first looks for its own rows there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shipments.config import Config, DynamoDBConfig
from shipments.model.tables import (
    DLQ_SCHEMA,
    LATE_SCHEMA,
    SHIPMENT_STATUS,
    SHIPMENT_STATUS_SCHEMA,
    STATUS_DLQ,
    STATUS_LATE,
)
from shipments.storage import delta, dynamodb
from shipments.storage.driver_merge import DriverMerge
from shipments.stream.report import BatchReporter
from shipments.stream.stats import BatchStats
from shipments.stream.watermarks import EventTimeMark, WatermarkLog, from_micros
from shipments.transforms.columns import timestamp_literal
from shipments.transforms.conform import conform
from shipments.transforms.events import (
    event_content_hash,
    filter_late,
    filter_on_time,
    filter_rejected_events,
    is_late,
    to_latest_per_shipment,
    to_one_per_key,
)

log = logging.getLogger(__name__)

QUERY_NAME = "shipment_status"
# Batch stats kept for the progress log and the run summary.
_KEEP_STATS = 20
# Distinct dead-letter reasons a batch keeps as samples for its checks.
_DLQ_SAMPLES = 5
# A stored status is replaced only by a strictly newer event: later event_time, or the same
# time and a greater event_id (a fixed tie-break, so replays and reorderings agree).
NEWER = "(s.event_time > t.event_time OR (s.event_time = t.event_time AND s.event_id > t.event_id))"
# What makes a row of the late / dead-letter table the same record however often it arrives: a
# late event is its event_id; a dead letter has no trustworthy id, so it is its source position
# (Kafka topic, partition and offset; for the files source, the file and the line's text). All
# five parts are compared null-safely, so one key serves both sources.
LATE_KEY = ("event_id",)
DLQ_KEY = ("source_topic", "source_partition", "source_offset", "source_file", "raw_value")


@dataclasses.dataclass(frozen=True)
class StatusTables:
    """Locations of the stream's tables."""

    status: str
    late: str
    dlq: str

    @classmethod
    def of(cls, config: Config) -> StatusTables:
        return cls(SHIPMENT_STATUS.path(config), STATUS_LATE.path(config), STATUS_DLQ.path(config))


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, int] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round((now - self._last) * 1000)
        self._last = now


class StatusBatchSink:
    """The ``foreachBatch`` function: one micro-batch of parsed, deduplicated records -> tables.

    Requires ``STREAM_RECORD_COLUMNS``. Per batch: rejected records go to the dead-letter table
    (one row per ``DLQ_KEY``) and valid events older than the previous batch's watermark to the
    late table (one row per ``LATE_KEY``), each inserted only when the table does not hold that
    key yet; the others are collapsed to the newest event per shipment and MERGEd into
    ``shipment_status`` (and DynamoDB when configured), replacing a stored event only by a
    strictly newer one. With a ``reporter``, the batch's checks are then judged and its metrics
    published (``stream.report``). Safe to call again with the same batch id and data.
    """

    def __init__(
        self,
        tables: StatusTables,
        watermarks: WatermarkLog,
        *,
        dynamodb_config: DynamoDBConfig | None = None,
        reporter: BatchReporter | None = None,
        driver_merges: Mapping[str, DriverMerge] | None = None,
    ) -> None:
        self.tables = tables
        self.watermarks = watermarks
        # by table path: the tables MERGEd on the driver while they fit (storage.driver_merge)
        self.driver_merges = dict(driver_merges or {})
        self.dynamodb = dynamodb_config if dynamodb_config is not None and dynamodb_config.enabled else None
        self.reporter = reporter
        self._lock = threading.Lock()
        self.stats: dict[int, BatchStats] = {}

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started_at = dt.datetime.now(dt.UTC)
        previous = self.watermarks.before(batch_id)
        # One pass over the source per batch: the writes below would each recompute the
        # micro-batch (source read and dedup state) otherwise.
        records = batch.persist()
        try:
            stats = self._process(records, batch_id, previous)
        finally:
            records.unpersist()
        stats.started_at = started_at
        if self.reporter is not None:
            # After every write of the batch: a crash here replays the batch, whose writes then
            # change nothing, and the reporter finds what it already recorded.
            clock = _Stopwatch()
            self.reporter.report(batch.sparkSession, stats)
            clock.lap("report_ms")
            stats.timings.update(clock.timings)
        with self._lock:
            self.stats[batch_id] = stats
            for old in sorted(self.stats)[:-_KEEP_STATS]:
                del self.stats[old]

    def _process(self, records: DataFrame, batch_id: int, previous: EventTimeMark) -> BatchStats:
        clock = _Stopwatch()
        stats, mark = self._extract(records, batch_id, previous)
        clock.lap("read_ms")
        note = f"{QUERY_NAME} batch {batch_id}"
        if stats.dlq:
            dead = records.transform(filter_rejected_events).select(
                "*",
                F.col("raw_text").alias("raw_value"),
                F.col("reason").alias("error"),
                F.lit(batch_id).alias("batch_id"),
            )
            dead_letters = conform(dead, DLQ_SCHEMA).transform(to_one_per_key, DLQ_KEY)
            self._insert_new(dead_letters, self.tables.dlq, keys=DLQ_KEY, note=note)
            clock.lap("dlq_ms")
        if stats.late and previous.watermark is not None:
            late_events = records.transform(filter_late, previous.watermark).select(
                "*", timestamp_literal(previous.watermark).alias("watermark"), F.lit(batch_id).alias("batch_id")
            )
            late_rows = conform(late_events, LATE_SCHEMA).transform(to_one_per_key, LATE_KEY)
            self._insert_new(late_rows, self.tables.late, keys=LATE_KEY, note=note)
            clock.lap("late_ms")
        if stats.on_time:
            latest = records.transform(filter_on_time, previous.watermark).transform(to_latest_per_shipment)
            status_rows = latest.select("*", F.lit(batch_id).alias("batch_id"), F.col("arrived_at").alias("updated_at"))
            self._merge_status(conform(status_rows, SHIPMENT_STATUS_SCHEMA), note)
            stats.visible_at = dt.datetime.now(dt.UTC)
            clock.lap("merge_ms")
            if self.dynamodb is not None:
                dynamodb.write_dynamodb(latest, self.dynamodb, batch_id)
                clock.lap("dynamodb_ms")
        self.watermarks.record(mark)
        clock.lap("watermark_ms")
        stats.timings = clock.timings
        return stats

    def _on_driver(self, path: str, write: Callable[[DriverMerge], bool]) -> bool:
        """Run ``write`` with the table's driver MERGE; False when Spark's MERGE must write
        instead: no driver MERGE, the table over its cap (``write`` says so), or a delta-rs
        error, which hands the table to Spark for the rest of the run (logged): every write
        here may be repeated without changing anything."""
        driver = self.driver_merges.get(path)
        if driver is None:
            return False
        from deltalake.exceptions import DeltaError

        try:
            return write(driver)
        except DeltaError as exc:
            log.warning("delta-rs failed on %s, Spark's MERGE writes it from now on: %s", path, exc)
            del self.driver_merges[path]
            return False

    def _merge_status(self, status_rows: DataFrame, note: str) -> None:
        """MERGE the batch's newest event per shipment: on the driver with delta-rs while the
        table is under its cap (0.1 s at 1 MB), else with Spark (about 2 s a batch before any data)."""
        path = self.tables.status
        if not self._on_driver(path, lambda d: d.merge_newer(status_rows, key="shipment_id", newer=NEWER, note=note)):
            delta.merge_newer(status_rows, path, key="shipment_id", newer=NEWER, note=note)

    def _insert_new(self, rows: DataFrame, path: str, *, keys: Sequence[str], note: str) -> None:
        """Insert the rows whose ``keys`` the table lacks (late events, dead letters)."""
        if not self._on_driver(path, lambda d: d.insert_new(rows, keys=keys, note=note)):
            delta.merge_insert_new(rows, path, keys=keys, note=note)

    def _extract(self, records: DataFrame, batch_id: int, previous: EventTimeMark) -> tuple[BatchStats, EventTimeMark]:
        """The batch's counts in one aggregation, and the event-time mark it leaves behind."""
        valid = F.col("reason").isNull()
        late = is_late(previous.watermark)
        content = F.when(valid, event_content_hash())
        # Per event_id first (rejected records have none: they form one group per reason), to
        # see an id that came with more than one content; then the batch's totals. The first
        # level keeps fixed-width buffers only (longs), so it stays a hash aggregation; the
        # percentiles and the reasons are taken in the second, over one row per group.
        per_event = records.groupBy("event_id", "reason").agg(
            F.count(F.lit(1)).alias("records"),
            F.count(F.when(~valid, True)).alias("dlq"),
            F.count(F.when(late, True)).alias("late"),
            F.max(F.when(valid, F.col("event_time"))).alias("max_event_time"),
            (F.min(content) != F.max(content)).alias("reused"),
            F.min(F.when(valid & ~late, F.unix_micros("event_time"))).alias("on_time_us"),
        )
        # Times cross into Python as epoch microseconds: collected timestamps would come back in
        # the Python process's local zone, not the session's UTC.
        counts = per_event.agg(
            F.sum("records").alias("records"),
            F.sum("dlq").alias("dlq"),
            F.sum("late").alias("late"),
            F.count(F.when(F.col("reused"), True)).alias("reused_event_ids"),
            F.unix_micros(F.max("max_event_time")).alias("max_event_time_us"),
            F.min("on_time_us").alias("on_time_min_us"),
            F.percentile_approx("on_time_us", [0.05, 0.5]).alias("on_time_percentiles_us"),
            F.slice(F.array_sort(F.collect_set("reason")), 1, _DLQ_SAMPLES).alias("dlq_reasons"),
        ).collect()[0]
        stats = BatchStats(
            batch_id,
            records=int(counts["records"] or 0),
            dlq=int(counts["dlq"] or 0),
            late=int(counts["late"] or 0),
            reused_event_ids=int(counts["reused_event_ids"]),
            dlq_samples=tuple(f"reason:{reason}" for reason in counts["dlq_reasons"] or ()),
        )
        stats.on_time = stats.records - stats.dlq - stats.late
        percentiles = counts["on_time_percentiles_us"] or (None, None)
        stats.event_time_min = from_micros(counts["on_time_min_us"])
        stats.event_time_p05, stats.event_time_p50 = (from_micros(us) for us in percentiles)
        mark = self.watermarks.after(previous, batch_id, from_micros(counts["max_event_time_us"]))
        stats.watermark, stats.max_event_time = previous.watermark, mark.max_event_time
        return stats, mark
