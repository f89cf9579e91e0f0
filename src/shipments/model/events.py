"""Status events as the stream reads and parses them (nothing is inferred)."""

from __future__ import annotations

from pyspark.sql import types as T

from shipments.model.shipments import CORRUPT_COLUMN

# Status events are parsed with every field as a string, so a value of the wrong type stays
# visible to validation instead of turning into a silent null.
EVENT_FIELDS = ("event_id", "shipment_id", "status", "event_time", "location")
RAW_EVENT_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType()) for name in EVENT_FIELDS] + [T.StructField(CORRUPT_COLUMN, T.StringType())]
)

# Where a record came from: Kafka coordinates, or the file it was read from.
SOURCE_FIELDS = (
    T.StructField("source_topic", T.StringType()),
    T.StructField("source_partition", T.IntegerType()),
    T.StructField("source_offset", T.LongType()),
    T.StructField("source_file", T.StringType()),
)
SOURCE_COLUMNS = tuple(f.name for f in SOURCE_FIELDS)

# What a source read gives the transforms: the raw text, its origin, and the micro-batch's
# timestamp (``arrived_at``: the same on a replay of the batch, unlike the wall clock).
RAW_RECORD_SCHEMA = T.StructType(
    [T.StructField("value", T.StringType()), *SOURCE_FIELDS, T.StructField("arrived_at", T.TimestampType(), False)]
)

# One parsed record: valid events have ``reason`` null; malformed ones keep ``raw_text`` (the
# same vocabulary as a rejected batch line; the dead-letter table names them error/raw_value).
# ``event_time`` is the time the stream orders by (capped at arrival + max_future_skew);
# ``reported_event_time`` is what the producer said.
STREAM_RECORD_SCHEMA = T.StructType(
    [
        T.StructField("reason", T.StringType()),
        T.StructField("raw_text", T.StringType()),
        T.StructField("event_id", T.StringType()),
        T.StructField("shipment_id", T.StringType()),
        T.StructField("status", T.StringType()),
        T.StructField("event_time", T.TimestampType()),
        T.StructField("reported_event_time", T.TimestampType()),
        T.StructField("location", T.StringType()),
        T.StructField("arrived_at", T.TimestampType(), False),
        *SOURCE_FIELDS,
    ]
)
STREAM_RECORD_COLUMNS = tuple(STREAM_RECORD_SCHEMA.fieldNames())
