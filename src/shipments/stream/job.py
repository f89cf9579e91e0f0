"""The status stream: events (Kafka or JSON-lines files) -> shipment_status, late, DLQ tables.

    source -> parse + validate (explicit schema, rejected records kept with a reason)
           -> cap event time at arrival + max_future_skew
           -> drop re-deliveries: a valid event with the same event_id and content (RocksDB
              state, bounded by dedup_window); malformed Kafka records pass it under their
              position, malformed lines of files go around it
           -> foreachBatch (``sink``): DLQ / late / MERGE newest-per-shipment (+ DynamoDB)
              -> checks, alerts and metrics of the batch (``report``)

Late events are split off in the sink against the event-time watermark of the previous batch.
The dedup operator's own watermark runs on the batch timestamp (``arrived_at``), which never
falls behind, so no operator can drop an event silently (see docs/streaming.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from shipments.config import Config, StreamConfig, duration_seconds, is_uri
from shipments.errors import EXIT_OK
from shipments.model.tables import STREAM_TABLES
from shipments.storage import delta, driver_merge, streams
from shipments.storage.driver_merge import DriverMerge
from shipments.stream.metrics import StatusProgressListener
from shipments.stream.report import BatchReporter
from shipments.stream.sink import QUERY_NAME, StatusBatchSink, StatusTables
from shipments.stream.stats import BatchStats
from shipments.stream.watermarks import WatermarkLog
from shipments.transforms.events import (
    event_content_hash,
    filter_rejected_events,
    filter_valid_events,
    with_capped_event_time,
    with_parsed_event,
)

log = logging.getLogger(__name__)

ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
# Part of the dedup operator's state key (with event_id); dropped again right after it.
_CONTENT_HASH = "_content_hash"
# The sources a checkpoint of the two-reads plan records (its union names the source twice).
_TWO_READS_SOURCES = 2


@dataclasses.dataclass(frozen=True)
class StreamRequest:
    """A validated ``shipments stream`` invocation: ``input`` for files, ``bootstrap_servers``
    and ``topic`` for Kafka."""

    source: str
    checkpoint: str
    available_now: bool = False
    input: str | None = None
    bootstrap_servers: str | None = None
    topic: str | None = None


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """How a run of the stream ended, and what its most recent batches did."""

    checkpoint: str
    batches: dict[int, BatchStats]
    exit_code: int = EXIT_OK

    def summary(self) -> str:
        totals = {"batches": len(self.batches), "records": 0, "on_time": 0, "late": 0, "dlq": 0, "reused_event_ids": 0}
        for stats in self.batches.values():
            totals["records"] += stats.records
            totals["on_time"] += stats.on_time
            totals["late"] += stats.late
            totals["dlq"] += stats.dlq
            totals["reused_event_ids"] += stats.reused_event_ids
        return json.dumps({"query": QUERY_NAME, "checkpoint": self.checkpoint, "recent": totals})


# Spark's default writer of checkpoint files goes through Hadoop's FileContext, which on a local
# disk without Hadoop's native library spawns `readlink` and `chmod` processes several times a
# file: ~40 ms a file here, against ~11 ms for the FileSystem-based writer, which does the same
# write-then-rename (atomic on a local disk). A batch writes about five (offsets, commit, state
# changelogs). Other file systems keep Spark's default: on s3a and HDFS the FileSystem-based
# writer cannot replace a file that a replayed batch writes again.
LOCAL_CHECKPOINT_WRITER = "org.apache.spark.sql.execution.streaming.FileSystemBasedCheckpointFileManager"


def stream_session_settings(stream: StreamConfig, checkpoint: str, platform: str) -> dict[str, str]:
    """Session settings the stream needs, some fixed by the checkpoint at its first start.

    The number of state partitions comes from ``spark.sql.shuffle.partitions`` when a
    checkpoint is first used and can never change afterwards: set it deliberately. RocksDB
    keeps the dedup state off the JVM heap; changelog checkpointing makes each commit cheap.
    A ``checkpoint`` on the local disk gets ``LOCAL_CHECKPOINT_WRITER``: a ``file:`` URI, or a
    path without a scheme on the ``local`` platform (on EMR such a path is on HDFS, the
    cluster's default file system).
    """
    local = checkpoint.startswith("file:") or (not is_uri(checkpoint) and platform == "local")
    writer = {"spark.sql.streaming.checkpointFileManagerClass": LOCAL_CHECKPOINT_WRITER} if local else {}
    return writer | {
        "spark.sql.shuffle.partitions": str(stream.state_partitions),
        "spark.sql.streaming.stateStore.providerClass": ROCKSDB_PROVIDER,
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # No empty batches just to move the dedup watermark: state is evicted by the next batch
        # with data, and a replay after a crash is then always a batch that had data.
        "spark.sql.streaming.noDataMicroBatches.enabled": "false",
        # MERGE copies its source to disk first unless told otherwise, in case reading it twice
        # gave different rows. Ours cannot: it is the persisted micro-batch, and recomputing it
        # reads the same offsets and the same state version with the same batch timestamp.
        "spark.databricks.delta.merge.materializeSource": "none",
        # A micro-batch is small: adaptive execution has nothing to coalesce or re-plan, but it
        # runs every shuffle stage as a job of its own, and each job costs a fixed scheduling
        # delay. Off, a batch of 1,000 events runs 6 jobs instead of 16 (bench/README.md).
        "spark.sql.adaptive.enabled": "false",
    }


def to_status_records(records: DataFrame, stream: StreamConfig, *, two_reads: bool) -> DataFrame:
    """The streaming plan before the sink: parse, cap, dedup (rejected records kept).

    Requires the columns of ``read_kafka_records`` / ``read_file_records``. Returns
    ``STREAM_RECORD_COLUMNS``. Re-deliveries of an event (same event_id, same content) within
    ``dedup_window`` are dropped; the dedup watermark is on ``arrived_at`` (the batch
    timestamp), so the operator never drops an event as late: lateness is judged by event time
    in the sink.

    The dedup key is the event_id and a hash of the content. Keyed on event_id alone, the
    operator would keep whichever copy of a reused event_id it met first, which depends on
    shuffle order; so copies with different content all reach the sink, which picks the winner
    by a fixed order (``to_latest_per_shipment``) and counts the reuse (``reused_event_ids``).
    Changing this key changes the state's schema: a checkpoint written before must start fresh.

    Without ``two_reads`` (Kafka records only: each needs its position), malformed records pass
    the same operator under their position, and the plan reads its source once. With it, the
    plan routes rejected records around the operator in a union, which reads the source twice:
    the files source's plan (a line has no position, and identical bad lines of one file would
    be one record in the state, hiding from the batch's dead-letter share), and that of a Kafka
    checkpoint written by it (Spark restarts a checkpoint only with as many sources).
    """
    parsed = records.transform(with_parsed_event).transform(
        with_capped_event_time, duration_seconds(stream.max_future_skew)
    )
    if two_reads:
        unique_events = parsed.transform(filter_valid_events).select("*", event_content_hash().alias(_CONTENT_HASH))
        return _drop_redeliveries(unique_events, stream).unionByName(parsed.transform(filter_rejected_events))
    # Rejected records keyed by their position with a null hash, which no valid event has.
    valid = F.col("reason").isNull()
    keyed = parsed.withColumn("event_id", F.when(valid, F.col("event_id")).otherwise(_dead_letter_id())).withColumn(
        _CONTENT_HASH, F.when(valid, event_content_hash())
    )
    return _drop_redeliveries(keyed, stream).withColumn("event_id", F.when(valid, F.col("event_id")))


def _drop_redeliveries(keyed: DataFrame, stream: StreamConfig) -> DataFrame:
    """Drop rows whose (event_id, content hash) came within ``dedup_window`` (the hash column
    dropped after)."""
    window = keyed.withWatermark("arrived_at", stream.dedup_window)
    return window.dropDuplicatesWithinWatermark(["event_id", _CONTENT_HASH]).drop(_CONTENT_HASH)


def _dead_letter_id() -> Column:
    """A rejected Kafka record's position, as the dedup key's event_id part: unique per record."""
    position = [F.lit("dead-letter"), F.col("source_topic"), F.col("source_partition"), F.col("source_offset")]
    return F.concat_ws("/", *position)


def _reads_twice(spark: SparkSession, request: StreamRequest) -> bool:
    """Whether the plan must read its source twice (``to_status_records``): for the files
    source, and for a Kafka checkpoint written by that plan (said in a warning)."""
    if request.source == "files":
        return True
    if streams.checkpoint_sources(spark, request.checkpoint) != _TWO_READS_SOURCES:
        return False
    log.warning(
        "checkpoint %s was written by the plan that reads Kafka twice per batch, which it keeps; "
        "a new checkpoint reads it once (docs/streaming.md, 'Upgrading')",
        request.checkpoint,
    )
    return True


def _source(spark: SparkSession, config: Config, request: StreamRequest) -> DataFrame:
    if request.source == "kafka" and request.bootstrap_servers and request.topic:
        return streams.read_kafka_records(
            spark,
            request.bootstrap_servers,
            request.topic,
            max_offsets_per_trigger=config.stream.max_offsets_per_trigger,
        )
    if request.source == "files" and request.input:
        return streams.read_file_records(spark, request.input)
    raise ValueError(f"incomplete stream request: {request}")


def _batch_stats(sink: StatusBatchSink, batch_id: int) -> dict[str, Any] | None:
    stats = sink.stats.get(batch_id)
    if stats is None:
        return None
    return {
        "records": stats.records,
        "on_time_rows": stats.on_time,
        "late_rows": stats.late,
        "dlq_rows": stats.dlq,
        "reused_event_ids": stats.reused_event_ids,
        "event_time_watermark": stats.watermark.isoformat() if stats.watermark else None,
        "max_event_time": stats.max_event_time.isoformat() if stats.max_event_time else None,
        "sink_ms": stats.timings,
        "checks_failed": list(stats.checks_failed),
        "metrics": stats.metrics,
    }


def run_stream(spark: SparkSession, config: Config, request: StreamRequest) -> StreamResult:
    """Run the stream until it ends (``--available-now``) or is stopped (SIGTERM / Ctrl-C).

    The session must carry ``stream_session_settings`` (the command line builds it so).

    Raises:
        StreamingQueryException: the query failed (the checkpoint is left for a restart).
    """
    delta.ensure_tables(spark, config, STREAM_TABLES)
    reporter = BatchReporter(config)
    tables = StatusTables.of(config)
    sink = StatusBatchSink(
        tables,
        WatermarkLog(spark, request.checkpoint, duration_seconds(config.stream.allowed_lateness)),
        dynamodb_config=config.stream.dynamodb,
        reporter=reporter,
        driver_merges=_driver_merges(config, tables),
    )
    listener = StatusProgressListener(QUERY_NAME, lambda batch_id: _batch_stats(sink, batch_id))
    spark.streams.addListener(listener)
    try:
        query = streams.start_foreach_batch(
            to_status_records(_source(spark, config, request), config.stream, two_reads=_reads_twice(spark, request)),
            sink,
            name=QUERY_NAME,
            checkpoint=request.checkpoint,
            available_now=request.available_now,
            trigger_interval=config.stream.trigger_interval,
        )
        try:
            with _stop_on_sigterm(query):
                while not query.awaitTermination(5):
                    pass
        except KeyboardInterrupt:
            query.stop()
            raise
        listener.drain()
    finally:
        spark.streams.removeListener(listener)
        # the metrics of the last batches, still queued for publication
        reporter.close()
    return StreamResult(request.checkpoint, dict(sink.stats))


def _driver_merges(config: Config, tables: StatusTables) -> dict[str, DriverMerge]:
    """The delta-rs MERGEs of the stream's tables, by path; none when turned off or not installed."""
    if config.stream.driver_merge_max_mb == 0:
        return {}
    if not driver_merge.available():
        log.warning(
            "delta-rs (the deltalake package) is not installed: the stream's tables are MERGEd by Spark, about "
            "2 s a micro-batch; install shipments[stream] for the driver MERGE (docs/streaming.md)"
        )
        return {}
    merges = {}
    for path in (tables.status, tables.late, tables.dlq):
        options = driver_merge.storage_options(path, config.spark.s3, default_region=config.deploy.region)
        merges[path] = DriverMerge(path, max_mb=config.stream.driver_merge_max_mb, options=options)
    return merges


@contextlib.contextmanager
def _stop_on_sigterm(query: StreamingQuery) -> Iterator[None]:
    """A SIGTERM stops the query between batches (what the batch started is replayed next run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: object) -> None:
        log.info("SIGTERM: stopping the stream")
        query.stop()

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
