"""The status stream: events (Kafka or JSON-lines files) -> shipment_status, late, DLQ tables.

    source -> parse + validate (explicit schema, bad records kept with a reason)
           -> cap event time at arrival + max_future_skew
           -> valid events: drop re-delivered event_ids (RocksDB state, bounded by dedup_window)
           -> foreachBatch: DLQ / late / MERGE newest-per-shipment (+ DynamoDB), all idempotent

Late events are split off in the sink against the event-time watermark of the previous batch.
The dedup operator's own watermark runs on the batch timestamp (``arrived_at``), which never
falls behind, so no operator can drop an event silently (see docs/streaming.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from shipments.config import Config, StreamConfig, duration_seconds
from shipments.errors import ConfigError, InputError
from shipments.metrics import StatusProgressListener, enable_json_lines
from shipments.stream_io import (
    QUERY_NAME,
    StatusBatchSink,
    StatusTables,
    WatermarkLog,
    checkpoint_query_id,
    ensure_stream_tables,
    read_file_records,
    read_kafka_records,
    start_status_query,
)
from shipments.transforms.status import filter_invalid, filter_valid, with_capped_event_time, with_parsed_event

log = logging.getLogger(__name__)

ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
_BOOTSTRAP = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}(,[A-Za-z0-9.\-\[\]:]+:\d{1,5})*$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclasses.dataclass(frozen=True)
class StreamRequest:
    """A validated ``shipments stream`` invocation."""

    source: str
    checkpoint: str
    available_now: bool = False
    input: str | None = None
    bootstrap_servers: str | None = None
    topic: str | None = None


def stream_request(config: Config, args: argparse.Namespace) -> StreamRequest:
    """Check the command-line arguments before any Spark session starts.

    Raises:
        ConfigError: a required flag is missing or malformed, or no checkpoint is given.
        InputError: the local input folder does not exist.
    """
    checkpoint = args.checkpoint or config.stream.checkpoint
    if not checkpoint:
        raise ConfigError("a checkpoint is required: pass --checkpoint DIR or set stream.checkpoint in the config")
    if "://" not in checkpoint:
        checkpoint = str(Path(checkpoint).expanduser().resolve())
    if args.source == "kafka":
        if not args.bootstrap_servers or not args.topic:
            raise ConfigError("--source kafka needs --bootstrap-servers HOST:PORT and --topic T")
        if not _BOOTSTRAP.match(args.bootstrap_servers):
            raise ConfigError(f"--bootstrap-servers must look like HOST:PORT[,HOST:PORT], got {args.bootstrap_servers!r}")
        if not _TOPIC.match(args.topic):
            raise ConfigError(f"--topic must be a Kafka topic name (letters, digits, . _ -), got {args.topic!r}")
        return StreamRequest("kafka", checkpoint, args.available_now, None, args.bootstrap_servers, args.topic)
    if args.source == "files":
        if not args.input:
            raise ConfigError("--source files needs --input DIR")
        folder = args.input
        if "://" not in folder:
            if not Path(folder).is_dir():
                raise InputError(f"event folder {folder} does not exist")
            folder = str(Path(folder).resolve())
        return StreamRequest("files", checkpoint, args.available_now, folder)
    raise ConfigError(f"--source must be kafka or files, got {args.source!r}")


def configure_stream_session(spark: SparkSession, stream: StreamConfig) -> None:
    """Session settings the query's checkpoint fixes at its first start.

    The number of state partitions comes from ``spark.sql.shuffle.partitions`` when a
    checkpoint is first used and can never change afterwards: set it deliberately. RocksDB
    keeps the dedup state off the JVM heap; changelog checkpointing makes each commit cheap.
    Call it once, on the stream's own session, before the first query starts.
    """
    spark.conf.set("spark.sql.shuffle.partitions", str(stream.state_partitions))
    spark.conf.set("spark.sql.streaming.stateStore.providerClass", ROCKSDB_PROVIDER)
    spark.conf.set("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true")
    # No empty batches just to move the dedup watermark: state is evicted by the next batch
    # with data, and a replay after a crash is then always a batch that had data.
    spark.conf.set("spark.sql.streaming.noDataMicroBatches.enabled", "false")
    # MERGE copies its source to disk first unless told otherwise, in case reading it twice gave
    # different rows. Ours cannot: it is the persisted micro-batch, and recomputing it reads the
    # same offsets and the same state version with the same batch timestamp.
    spark.conf.set("spark.databricks.delta.merge.materializeSource", "none")


def to_status_records(records: DataFrame, stream: StreamConfig) -> DataFrame:
    """The streaming plan before the sink: parse, cap, dedup valid events, keep bad records.

    Requires the columns of ``read_kafka_records`` / ``read_file_records``. Returns
    ``STREAM_RECORD_COLUMNS``. Re-deliveries of an event_id within ``dedup_window`` are
    dropped; the dedup watermark is on ``arrived_at`` (the batch timestamp), so the operator
    never drops an event as late: lateness is judged by event time in the sink.
    """
    parsed = records.transform(with_parsed_event).transform(
        with_capped_event_time, duration_seconds(stream.max_future_skew)
    )
    unique_events = (
        parsed.transform(filter_valid)
        .withWatermark("arrived_at", stream.dedup_window)
        .dropDuplicatesWithinWatermark(["event_id"])
    )
    # Malformed records have no trustworthy event_id: they bypass dedup, so none is merged away.
    return unique_events.unionByName(parsed.transform(filter_invalid))


@dataclasses.dataclass
class RunningStream:
    query: StreamingQuery
    sink: StatusBatchSink
    listener: StatusProgressListener


def start_stream(spark: SparkSession, config: Config, request: StreamRequest) -> RunningStream:
    """Create the tables if needed, then start the query (does not wait for it)."""
    ensure_stream_tables(spark, config)
    if request.source == "kafka":
        assert request.bootstrap_servers and request.topic  # checked by stream_request
        records = read_kafka_records(
            spark, request.bootstrap_servers, request.topic, max_offsets_per_trigger=config.stream.max_offsets_per_trigger
        )
    else:
        assert request.input
        records = read_file_records(spark, request.input)
    sink = StatusBatchSink(
        StatusTables.of(config),
        WatermarkLog(spark, request.checkpoint, duration_seconds(config.stream.allowed_lateness)),
        # The query id lives in the checkpoint, so the app id survives restarts of the same
        # checkpoint (a run id would not, and a replayed batch would be appended again).
        lambda: f"{QUERY_NAME}:{checkpoint_query_id(spark, request.checkpoint)}",
        dynamodb=config.stream.dynamodb,
    )

    def batch_stats(batch_id: int) -> dict[str, Any] | None:
        stats = sink.stats.get(batch_id)
        if stats is None:
            return None
        return {
            "records": stats.records,
            "on_time_rows": stats.on_time,
            "late_rows": stats.late,
            "dlq_rows": stats.dlq,
            "event_time_watermark": stats.watermark.isoformat() if stats.watermark else None,
            "max_event_time": stats.max_event_time.isoformat() if stats.max_event_time else None,
            "sink_ms": stats.timings,
        }

    listener = StatusProgressListener(QUERY_NAME, batch_stats)
    spark.streams.addListener(listener)
    try:
        query = start_status_query(
            to_status_records(records, config.stream),
            sink,
            request.checkpoint,
            available_now=request.available_now,
            trigger_interval=config.stream.trigger_interval,
        )
    except BaseException:
        spark.streams.removeListener(listener)
        raise
    return RunningStream(query, sink, listener)


def run_stream(spark: SparkSession, config: Config, request: StreamRequest) -> RunningStream:
    """Run the stream until it ends (``--available-now``) or is stopped (SIGTERM / Ctrl-C).

    Raises:
        StreamingQueryException: the query failed (the checkpoint is left for a restart).
    """
    running = start_stream(spark, config, request)
    query = running.query
    try:
        with _stop_on_sigterm(query):
            while not query.awaitTermination(5):
                pass
    except KeyboardInterrupt:
        query.stop()
        raise
    finally:
        running.listener.drain()
        spark.streams.removeListener(running.listener)
    return running


@contextlib.contextmanager
def _stop_on_sigterm(query: StreamingQuery) -> Iterator[None]:
    """A SIGTERM stops the query between batches (what the batch started is replayed next run)."""
    if not _on_main_thread():
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


def _on_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run_stream_command(spark_factory: Callable[[], SparkSession], config: Config, args: argparse.Namespace) -> int:
    """``shipments stream``: validate, start Spark, run, print a one-line summary."""
    request = stream_request(config, args)
    enable_json_lines()
    spark = spark_factory()
    configure_stream_session(spark, config.stream)
    running = run_stream(spark, config, request)
    totals = {"batches": 0, "records": 0, "on_time": 0, "late": 0, "dlq": 0}
    for stats in running.sink.stats.values():
        totals["batches"] += 1
        totals["records"] += stats.records
        totals["on_time"] += stats.on_time
        totals["late"] += stats.late
        totals["dlq"] += stats.dlq
    print(json.dumps({"query": QUERY_NAME, "checkpoint": request.checkpoint, "recent": totals}), file=sys.stdout)
    return 0
