"""Streaming sources (Kafka, a folder of JSON-lines files) and the query that runs the sink."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.streaming.readwriter import DataStreamWriter

from shipments.config import join_path
from shipments.storage import fs


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
        valid_utf8(F.col("value").cast("string")).alias("value"),
        F.col("topic").alias("source_topic"),
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        F.lit(None).cast("string").alias("source_file"),
        # The micro-batch timestamp, recorded in the offset log: identical when a batch is replayed.
        F.current_timestamp().alias("arrived_at"),
    )


def valid_utf8(text: Column) -> Column:
    """``text`` with every byte sequence that is not UTF-8 replaced by U+FFFD.

    Spark takes a Kafka value or a line of a file as text without checking its bytes, and
    writes them to Parquet as they came; a reader that checks them (delta-rs, so the driver
    MERGE, and every Arrow reader) then refuses the whole file, and one bad payload kept in the
    dead-letter table would fail every later insert into it. Decoding to Java's UTF-16 replaces
    what is not UTF-8; encoding back gives valid bytes. Valid text passes unchanged.
    """
    return F.encode(text, "UTF-8").cast("string")


def read_file_records(spark: SparkSession, folder: str, *, max_files_per_trigger: int = 1000) -> DataFrame:
    """Each line of the JSON-lines files landing in ``folder``, in the shape ``read_kafka_records`` gives."""
    lines = spark.readStream.format("text").option("maxFilesPerTrigger", str(max_files_per_trigger)).load(folder)
    return lines.select(
        valid_utf8(F.col("value")).alias("value"),
        F.lit(None).cast("string").alias("source_topic"),
        F.lit(None).cast("int").alias("source_partition"),
        F.lit(None).cast("long").alias("source_offset"),
        F.col("_metadata.file_path").alias("source_file"),
        F.current_timestamp().alias("arrived_at"),
    )


def checkpoint_sources(spark: SparkSession, checkpoint: str) -> int | None:
    """How many sources the newest entry of ``checkpoint``'s offset log records (None for a
    checkpoint without one yet). Spark restarts a checkpoint only with a plan of that many."""
    entries = [status for status in fs.list_folder(spark, join_path(checkpoint, "offsets")) if status.name.isdigit()]
    if not entries:
        return None
    text = fs.read_text(spark, max(entries, key=lambda status: int(status.name)).path) or ""
    # "v1", the batch's metadata, then one line per source.
    return max(len(text.splitlines()) - 2, 0)


def start_foreach_batch(
    records: DataFrame,
    sink: Callable[[DataFrame, int], None],
    *,
    name: str,
    checkpoint: str,
    available_now: bool,
    trigger_interval: str,
) -> StreamingQuery:
    """Start a query under its stable ``name`` with ``sink`` as its ``foreachBatch`` function."""
    writer: DataStreamWriter = (
        records.writeStream.queryName(name).option("checkpointLocation", checkpoint).foreachBatch(sink)
    )
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=trigger_interval)
    return writer.start()


# Spark's StreamExecution sets it on the query's thread, which runs the foreachBatch function.
_QUERY_ID_PROPERTY = "sql.streaming.queryId"


def current_query_id(spark: SparkSession) -> str | None:
    """The id of the streaming query whose ``foreachBatch`` function is running, or None outside
    one. The id is kept in the checkpoint: it survives restarts (a run id does not), and a new
    checkpoint gets a new one."""
    value = spark.sparkContext.getLocalProperty(_QUERY_ID_PROPERTY)
    return str(value) if value else None
