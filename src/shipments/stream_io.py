"""Reads and writes of the status stream: sources, the query, and the ``foreachBatch`` sink.

Exactly-once across crashes rests on three facts:

* Spark replays an unfinished micro-batch with the same batch id, the same offsets and the
  same batch timestamp (all in the offset log), and the plan before the sink is deterministic.
* Every write of a batch is idempotent: appends to the late and dead-letter tables carry
  Delta's ``txnAppId``/``txnVersion`` (Delta skips a version it has already committed for that
  app id), and the MERGE into ``shipment_status`` (and the DynamoDB update) only ever replaces
  a stored event by a strictly newer one, so applying a batch twice changes nothing.
* The event-time watermark a batch compares against is the one recorded after the previous
  batch, kept beside the checkpoint per batch id, so a replay splits late events identically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from shipments import io
from shipments.config import Config, DynamoDBConfig, join_path
from shipments.errors import TableError
from shipments.stream_schemas import (
    DLQ_SCHEMA,
    LATE_SCHEMA,
    SHIPMENT_STATUS,
    SHIPMENT_STATUS_SCHEMA,
    STATUS_DLQ,
    STATUS_LATE,
)
from shipments.transforms.status import (
    filter_invalid,
    filter_late,
    filter_on_time,
    is_late,
    timestamp_literal,
    to_latest_per_shipment,
)

log = logging.getLogger(__name__)

QUERY_NAME = "shipment_status"
# Where the per-batch event-time watermark is kept, inside the query's checkpoint folder (it is
# part of the query's progress: a new checkpoint starts without one, like Spark's own state).
WATERMARK_FOLDER = "shipments_event_time"
_KEEP_WATERMARKS = 100
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


# --------------------------------------------------------------------------- sources


def read_kafka_records(
    spark: SparkSession, bootstrap_servers: str, topic: str, *, max_offsets_per_trigger: int
) -> DataFrame:
    """Kafka records as ``value`` text, ``source_topic/partition/offset`` and ``arrived_at``.

    Starts from the earliest offset on a new checkpoint; afterwards the checkpoint decides.
    ``failOnDataLoss`` stays on: offsets deleted by retention before they were read are an
    incident to see, not something to skip silently.
    """
    records = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
        .option("failOnDataLoss", "true")
        .load()
    )
    return records.select(
        F.col("value").cast("string").alias("value"),
        F.col("topic").alias("source_topic"),
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        F.lit(None).cast("string").alias("source_file"),
        # The micro-batch timestamp, recorded in the offset log: identical when a batch is replayed.
        F.current_timestamp().alias("arrived_at"),
    )


def read_file_records(spark: SparkSession, folder: str, *, max_files_per_trigger: int = 1000) -> DataFrame:
    """Each line of the JSON-lines files landing in ``folder``, in the shape ``read_kafka_records`` gives."""
    lines = spark.readStream.format("text").option("maxFilesPerTrigger", str(max_files_per_trigger)).load(folder)
    return lines.select(
        "value",
        F.lit(None).cast("string").alias("source_topic"),
        F.lit(None).cast("int").alias("source_partition"),
        F.lit(None).cast("long").alias("source_offset"),
        F.col("_metadata.file_path").alias("source_file"),
        F.current_timestamp().alias("arrived_at"),
    )


def start_status_query(
    records: DataFrame,
    sink: Callable[[DataFrame, int], None],
    checkpoint: str,
    *,
    available_now: bool,
    trigger_interval: str,
) -> StreamingQuery:
    """Start the query under its stable name with ``sink`` as its ``foreachBatch`` function."""
    writer: DataStreamWriter = (
        records.writeStream.queryName(QUERY_NAME).option("checkpointLocation", checkpoint).foreachBatch(sink)
    )
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=trigger_interval)
    return writer.start()


# A MERGE every few seconds leaves small files: auto compaction folds them back together.
# Measured here (2 cores, 50k rows, MERGEs of 200-5,000 rows): deletion vectors made each MERGE
# slower (about 8 s against 2.5 s), and optimized writes add a shuffle to every MERGE, so
# both stay off.
STATUS_TABLE_PROPERTIES = {"delta.autoOptimize.autoCompact": "true"}


def ensure_stream_tables(spark: SparkSession, config: Config) -> None:
    """Create the stream's tables when missing (``shipment_status`` with ``STATUS_TABLE_PROPERTIES``)."""
    for spec in (STATUS_LATE, STATUS_DLQ):
        io.ensure_delta_table(spark, spec.path(config), spec.schema, spec.partition_by)
    path = SHIPMENT_STATUS.path(config)
    if DeltaTable.isDeltaTable(spark, path):
        return
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(SHIPMENT_STATUS_SCHEMA)
    for key, value in STATUS_TABLE_PROPERTIES.items():
        builder = builder.property(key, value)
    builder.execute()


def checkpoint_query_id(spark: SparkSession, checkpoint: str) -> str:
    """The query id Spark stored in ``<checkpoint>/metadata``: the same for every restart."""
    text = _read_text(spark, join_path(checkpoint, "metadata"))
    if text is None:
        raise TableError(f"no query metadata in checkpoint {checkpoint}")
    return str(json.loads(text.splitlines()[0])["id"])


# --------------------------------------------------------------------------- event-time watermark


@dataclasses.dataclass(frozen=True)
class EventTimeMark:
    """The event-time state after a batch: the greatest event time seen and the watermark."""

    batch_id: int
    max_event_time: dt.datetime | None
    watermark: dt.datetime | None


class WatermarkLog:
    """Per-batch event-time watermarks kept in ``<checkpoint>/shipments_event_time/<batch_id>``.

    Spark's own watermark would drop late rows inside the dedup operator with only a counter; this
    one is compared with event times before anything can drop a row. Any Hadoop file system
    works (S3 included): each file is written whole, once per batch id.
    """

    def __init__(self, spark: SparkSession, checkpoint: str, allowed_lateness_seconds: int) -> None:
        self._spark = spark
        self._folder = join_path(checkpoint, WATERMARK_FOLDER)
        self._lateness = dt.timedelta(seconds=allowed_lateness_seconds)

    def before(self, batch_id: int) -> EventTimeMark:
        """The mark recorded by the latest batch before ``batch_id`` (empty when there is none)."""
        ids = [i for i in self._batch_ids() if i < batch_id]
        if not ids:
            return EventTimeMark(-1, None, None)
        data = json.loads(_read_text(self._spark, join_path(self._folder, str(max(ids)))) or "{}")
        return EventTimeMark(
            int(data["batch_id"]), from_micros(data.get("max_event_time_us")), from_micros(data.get("watermark_us"))
        )

    def after(self, previous: EventTimeMark, batch_id: int, batch_max: dt.datetime | None) -> EventTimeMark:
        """The mark after ``batch_id``: the watermark only moves forward."""
        candidates = [t for t in (previous.max_event_time, batch_max) if t is not None]
        max_time = max(candidates) if candidates else None
        return EventTimeMark(batch_id, max_time, max_time - self._lateness if max_time else None)

    def record(self, mark: EventTimeMark) -> None:
        payload = {
            "batch_id": mark.batch_id,
            "max_event_time_us": to_micros(mark.max_event_time),
            "watermark_us": to_micros(mark.watermark),
            # for people reading the file
            "max_event_time": mark.max_event_time.isoformat() if mark.max_event_time else None,
            "watermark": mark.watermark.isoformat() if mark.watermark else None,
        }
        _write_text(self._spark, join_path(self._folder, str(mark.batch_id)), json.dumps(payload))
        for old in sorted(self._batch_ids())[:-_KEEP_WATERMARKS]:
            _delete(self._spark, join_path(self._folder, str(old)))

    def _batch_ids(self) -> list[int]:
        return [int(name) for name in _list_names(self._spark, self._folder) if name.isdigit()]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_micros(value: dt.datetime | None) -> int | None:
    """Aware datetime -> epoch microseconds (exact, and free of any local time zone)."""
    return None if value is None else (value - _EPOCH) // dt.timedelta(microseconds=1)


def from_micros(value: int | None) -> dt.datetime | None:
    """Epoch microseconds -> aware UTC datetime."""
    return None if value is None else _EPOCH + dt.timedelta(microseconds=int(value))


def _fs(spark: SparkSession, path: str):  # type: ignore[no-untyped-def]
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath, hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def _read_text(spark: SparkSession, path: str) -> str | None:
    hpath, fs = _fs(spark, path)
    if not fs.exists(hpath):
        return None
    stream = fs.open(hpath)
    try:
        jvm = spark.sparkContext._jvm
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def _write_text(spark: SparkSession, path: str, text: str) -> None:
    hpath, fs = _fs(spark, path)
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode()))
    finally:
        stream.close()


def _list_names(spark: SparkSession, folder: str) -> list[str]:
    hpath, fs = _fs(spark, folder)
    if not fs.exists(hpath):
        return []
    return [str(status.getPath().getName()) for status in fs.listStatus(hpath)]


def _delete(spark: SparkSession, path: str) -> None:
    hpath, fs = _fs(spark, path)
    fs.delete(hpath, False)


# --------------------------------------------------------------------------- the foreachBatch sink


@dataclasses.dataclass(frozen=True)
class StatusTables:
    """Locations of the stream's tables."""

    status: str
    late: str
    dlq: str

    @classmethod
    def of(cls, config: Config) -> StatusTables:
        return cls(SHIPMENT_STATUS.path(config), STATUS_LATE.path(config), STATUS_DLQ.path(config))


@dataclasses.dataclass
class BatchStats:
    """What one batch did, for the progress log."""

    batch_id: int
    records: int = 0
    on_time: int = 0
    late: int = 0
    dlq: int = 0
    watermark: dt.datetime | None = None
    max_event_time: dt.datetime | None = None
    # milliseconds spent per step of the sink
    timings: dict[str, int] = dataclasses.field(default_factory=dict)


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

    Requires ``STREAM_RECORD_COLUMNS``. Per batch: malformed records are appended to the
    dead-letter table and valid events older than the previous batch's watermark to the late
    table (both idempotent by ``txnAppId`` = the app id, ``txnVersion`` = the batch id); the
    others are collapsed to the newest event per shipment and MERGEd into ``shipment_status``
    (and DynamoDB when configured), replacing a stored event only by a strictly newer one.
    Safe to call again with the same batch id and data.
    """

    def __init__(
        self,
        tables: StatusTables,
        watermarks: WatermarkLog,
        app_id: str | Callable[[], str],
        *,
        dynamodb: DynamoDBConfig | None = None,
    ) -> None:
        self.tables = tables
        self.watermarks = watermarks
        self._app_id = app_id
        self._resolved_app_id: str | None = None
        self.dynamodb = dynamodb if dynamodb is not None and dynamodb.enabled else None
        self._lock = threading.Lock()
        self.stats: dict[int, BatchStats] = {}

    @property
    def app_id(self) -> str:
        if self._resolved_app_id is None:
            self._resolved_app_id = self._app_id if isinstance(self._app_id, str) else self._app_id()
        return self._resolved_app_id

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        previous = self.watermarks.before(batch_id)
        # One pass over the source per batch: the writes below would each recompute the
        # micro-batch (source read and dedup state) otherwise.
        records = batch.persist()
        try:
            stats = self._write(records, batch_id, previous)
        finally:
            records.unpersist()
        with self._lock:
            self.stats[batch_id] = stats
            for old in sorted(self.stats)[:-20]:
                del self.stats[old]

    def _write(self, records: DataFrame, batch_id: int, previous: EventTimeMark) -> BatchStats:
        clock = _Stopwatch()
        watermark = previous.watermark
        valid = F.col("error").isNull()
        # Times cross into Python as epoch microseconds: collected timestamps would come back in
        # the Python process's local zone, not the session's UTC.
        counts = records.agg(
            F.count(F.lit(1)).alias("records"),
            F.count(F.when(~valid, True)).alias("dlq"),
            F.count(F.when(is_late(watermark), True)).alias("late"),
            F.unix_micros(F.max(F.when(valid, F.col("event_time")))).alias("max_event_time_us"),
        ).first()
        assert counts is not None  # an aggregate without grouping always returns one row
        stats = BatchStats(batch_id, records=int(counts["records"]), dlq=int(counts["dlq"]), late=int(counts["late"]))
        stats.on_time = stats.records - stats.dlq - stats.late
        mark = self.watermarks.after(previous, batch_id, from_micros(counts["max_event_time_us"]))
        stats.watermark, stats.max_event_time = watermark, mark.max_event_time
        stats.timings = clock.timings
        clock.lap("read_ms")
        if stats.dlq:
            dead = records.transform(filter_invalid).withColumn("batch_id", F.lit(batch_id))
            self._append_once(_conform(dead, DLQ_SCHEMA), self.tables.dlq, batch_id)
            clock.lap("dlq_ms")
        if stats.late:
            late_events = records.transform(filter_late, watermark).select(
                "*", timestamp_literal(watermark).alias("watermark"), F.lit(batch_id).alias("batch_id")
            )
            self._append_once(_conform(late_events, LATE_SCHEMA), self.tables.late, batch_id)
            clock.lap("late_ms")
        if stats.on_time:
            latest = records.transform(filter_on_time, watermark).transform(to_latest_per_shipment)
            merge_latest_status(latest, self.tables.status, batch_id)
            clock.lap("merge_ms")
            if self.dynamodb is not None:
                write_dynamodb(latest, self.dynamodb, batch_id)
                clock.lap("dynamodb_ms")
        self.watermarks.record(mark)
        clock.lap("watermark_ms")
        return stats

    def _append_once(self, frame: DataFrame, path: str, batch_id: int) -> None:
        """Append unless this app id already committed ``batch_id`` to ``path`` (a replay)."""
        (
            frame.write.format("delta")
            .mode("append")
            .option("txnAppId", self.app_id)
            .option("txnVersion", str(batch_id))
            .option("userMetadata", f"{QUERY_NAME} batch {batch_id}")
            .save(path)
        )


def _conform(frame: DataFrame, schema: T.StructType) -> DataFrame:
    """Exactly the table's columns, in its order and types (a literal int is not a long)."""
    return frame.select(*[F.col(field.name).cast(field.dataType).alias(field.name) for field in schema])


def _is_newer(new: str, old: str) -> str:
    return f"({new}.event_time > {old}.event_time OR ({new}.event_time = {old}.event_time AND {new}.event_id > {old}.event_id))"


def merge_latest_status(latest: DataFrame, path: str, batch_id: int) -> None:
    """MERGE one row per shipment into ``shipment_status``, only where the event is newer.

    Requires the output of ``to_latest_per_shipment`` plus ``arrived_at``. An event replaces the
    stored one only when its ``event_time`` is later, or equal with a greater ``event_id``: an
    out-of-order, duplicated or replayed event changes nothing.
    """
    source = _conform(
        latest.select("*", F.lit(batch_id).alias("batch_id"), F.col("arrived_at").alias("updated_at")),
        SHIPMENT_STATUS_SCHEMA,
    )
    columns = {name: f"s.{name}" for name in SHIPMENT_STATUS_SCHEMA.fieldNames()}
    spark = latest.sparkSession
    # Tag the commit with the batch id (shown by DESCRIBE HISTORY); the MERGE builder has no
    # writer options, so this goes through the session (the stream's own clone) and is unset after.
    spark.conf.set(_USER_METADATA, f"{QUERY_NAME} batch {batch_id}")
    try:
        (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(source.alias("s"), "t.shipment_id = s.shipment_id")
            .whenMatchedUpdate(condition=_is_newer("s", "t"), set=columns)
            .whenNotMatchedInsert(values=columns)
            .execute()
        )
    finally:
        spark.conf.unset(_USER_METADATA)


# --------------------------------------------------------------------------- DynamoDB


# Fixed-width UTC text, so DynamoDB's string comparison orders it as time. Formatted by Spark
# in the session zone (UTC): a collected timestamp would be in the worker's local zone.
DDB_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"


def dynamodb_client(config: DynamoDBConfig):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("dynamodb", region_name=config.region, endpoint_url=config.endpoint_url or None)


def put_status_items(client: Any, table: str, rows: Iterable[Row], batch_id: int) -> tuple[int, int]:
    """Conditionally write each row; returns (written, skipped because older or equal).

    Rows hold ``shipment_id, status, event_id, location`` and ``event_time``, ``arrived_at`` as
    ``DDB_TIME_FORMAT`` text.
    """
    written = skipped = 0
    for row in rows:
        values: dict[str, Any] = {
            ":status": {"S": row["status"]},
            ":t": {"S": row["event_time"]},
            ":e": {"S": row["event_id"]},
            ":batch": {"N": str(batch_id)},
            ":updated": {"S": row["arrived_at"]},
        }
        assignments = ["#status = :status", "event_time = :t", "event_id = :e", "batch_id = :batch", "updated_at = :updated"]
        if row["location"] is not None:
            values[":location"] = {"S": row["location"]}
            assignments.append("#location = :location")
        try:
            client.update_item(
                TableName=table,
                Key={"shipment_id": {"S": row["shipment_id"]}},
                UpdateExpression="SET " + ", ".join(assignments),
                # The same rule as the MERGE: only a strictly newer event replaces the item.
                ConditionExpression=(
                    "attribute_not_exists(shipment_id) OR event_time < :t OR (event_time = :t AND event_id < :e)"
                ),
                ExpressionAttributeNames={"#status": "status", **({"#location": "location"} if ":location" in values else {})},
                ExpressionAttributeValues=values,
            )
            written += 1
        except client.exceptions.ConditionalCheckFailedException:
            skipped += 1
    return written, skipped


def write_dynamodb(latest: DataFrame, config: DynamoDBConfig, batch_id: int) -> None:
    """Write the newest event per shipment to the DynamoDB table, from the executors."""
    table = config.table

    def write_partition(rows: Iterable[Row]) -> None:
        put_status_items(dynamodb_client(config), table, rows, batch_id)

    latest.select(
        "shipment_id",
        "status",
        F.date_format("event_time", DDB_TIME_FORMAT).alias("event_time"),
        "event_id",
        "location",
        F.date_format("arrived_at", DDB_TIME_FORMAT).alias("arrived_at"),
    ).foreachPartition(write_partition)
