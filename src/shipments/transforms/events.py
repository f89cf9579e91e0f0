"""Status events: parse and validate, cap event time, split late events, collapse per shipment.

Pure and lazy: the same functions run on the streaming DataFrame and inside ``foreachBatch``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shipments.model.events import RAW_EVENT_SCHEMA, SOURCE_COLUMNS, STREAM_RECORD_COLUMNS
from shipments.model.shipments import CORRUPT_COLUMN, SHIPMENT_STATUSES
from shipments.transforms.columns import first_failure, is_blank, parse_iso_timestamp, timestamp_literal

REQUIRED_EVENT_FIELDS = ("event_id", "shipment_id", "status", "event_time")
# What an event says, as opposed to where and when it arrived: two records of one event_id with
# the same content are one event delivered twice, with different content a reused event_id.
EVENT_CONTENT_FIELDS = ("shipment_id", "status", "reported_event_time", "location")


def with_parsed_event(records: DataFrame) -> DataFrame:
    """Parse each record's JSON and give it a ``reason`` (null when the event is valid).

    Requires ``value`` (the raw text), the source columns and ``arrived_at``. Returns
    ``STREAM_RECORD_COLUMNS`` with ``event_time`` and ``reported_event_time`` both the parsed
    time (see ``with_capped_event_time``). ``reason`` is the first rule the record breaks:
    ``malformed_json`` (not a JSON object, blank, or no value), ``missing_field:<f>``,
    ``bad_timestamp:event_time`` (unparseable, or without an offset) or ``bad_value:status``.
    ``raw_text`` is kept on rejected records only.
    """
    parsed = F.from_json("value", RAW_EVENT_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_COLUMN})
    fields = records.select("*", parsed.alias("_event"))
    event_time = parse_iso_timestamp(F.col("_event.event_time"))
    reason = first_failure(
        # from_json gives a null struct for null input and all-null fields for blank text.
        (
            is_blank(F.col("value")) | F.col("_event").isNull() | F.col(f"_event.{CORRUPT_COLUMN}").isNotNull(),
            "malformed_json",
        ),
        *[(is_blank(F.col(f"_event.{name}")), f"missing_field:{name}") for name in REQUIRED_EVENT_FIELDS],
        (event_time.isNull(), "bad_timestamp:event_time"),
        (~F.trim(F.col("_event.status")).isin(*SHIPMENT_STATUSES), "bad_value:status"),
    )
    checked = fields.select("*", reason.alias("reason"), event_time.alias("_event_time"))
    valid = F.col("reason").isNull()
    return checked.select(
        "reason",
        F.when(~valid, F.col("value")).alias("raw_text"),
        *[F.when(valid, F.trim(F.col(f"_event.{name}"))).alias(name) for name in ("event_id", "shipment_id", "status")],
        F.when(valid, F.col("_event_time")).alias("event_time"),
        F.when(valid, F.col("_event_time")).alias("reported_event_time"),
        F.when(valid, F.col("_event.location")).alias("location"),
        "arrived_at",
        *SOURCE_COLUMNS,
    ).select(*STREAM_RECORD_COLUMNS)


def with_capped_event_time(events: DataFrame, max_future_skew_seconds: int) -> DataFrame:
    """Cap ``event_time`` at ``arrived_at`` plus the allowed clock skew.

    One producer with a clock far in the future would otherwise advance the watermark and make
    every normal event late, and its events would win over real later ones forever.
    ``reported_event_time`` keeps what the producer said. ``arrived_at`` is the micro-batch's
    timestamp, which Spark keeps in the offset log, so a replayed batch caps identically.
    """
    cap = F.col("arrived_at") + F.make_dt_interval(secs=F.lit(max_future_skew_seconds))
    capped = F.when(F.col("event_time") > cap, cap).otherwise(F.col("event_time"))
    return events.withColumn("event_time", capped)


def filter_valid_events(records: DataFrame) -> DataFrame:
    """Keep the records that parsed into valid events."""
    return records.filter(F.col("reason").isNull())


def filter_rejected_events(records: DataFrame) -> DataFrame:
    """Keep the rejected records: what goes to the dead-letter table."""
    return records.filter(F.col("reason").isNotNull())


def is_late(watermark: dt.datetime | None) -> Column:
    """True for a valid event older than ``watermark`` (aware); never true without one."""
    if watermark is None:
        return F.lit(False)
    return F.col("reason").isNull() & (F.col("event_time") < timestamp_literal(watermark))


def filter_late(records: DataFrame, watermark: dt.datetime | None) -> DataFrame:
    """Valid events older than the watermark: they go to ``shipment_status_late``."""
    return records.filter(is_late(watermark))


def filter_on_time(records: DataFrame, watermark: dt.datetime | None) -> DataFrame:
    """Valid events at or after the watermark: they may change a shipment's status."""
    return records.filter(F.col("reason").isNull() & ~is_late(watermark))


def to_latest_per_shipment(events: DataFrame) -> DataFrame:
    """One row per ``shipment_id``: its newest event (greatest ``event_time``, then ``event_id``).

    Requires valid events (``STREAM_RECORD_COLUMNS``). The remaining fields break any further
    tie, so the winner never depends on arrival or task order. A MERGE needs this: several
    source rows for one target row would fail it.
    """
    order = ("event_time", "event_id", "status", "location", "reported_event_time", "arrived_at", *SOURCE_COLUMNS)
    latest = F.max(F.struct(*order)).alias("latest")
    return (
        events.groupBy("shipment_id")
        .agg(latest)
        .select("shipment_id", *[F.col(f"latest.{name}").alias(name) for name in order])
    )


def event_content_hash() -> Column:
    """A 64-bit hash of a valid event's content (``EVENT_CONTENT_FIELDS``), to tell a re-delivery
    of an event_id (same content) from a reuse of it (different content).

    The fields are hashed as one JSON text, so a null in one field cannot collide with a value
    in its neighbour; the time is hashed as epoch microseconds, free of any time zone, and as
    the producer reported it (the capped ``event_time`` depends on the batch timestamp).
    """
    content = F.struct(
        F.col("shipment_id"),
        F.col("status"),
        F.unix_micros(F.col("reported_event_time")).alias("reported_event_time"),
        F.col("location"),
    )
    return F.xxhash64(F.to_json(content))


def to_one_per_key(rows: DataFrame, keys: Sequence[str]) -> DataFrame:
    """One row per ``keys`` (nulls group together): the least by the other columns, compared in
    the frame's column order, so the choice never depends on arrival or task order (copies of
    one event that differ only in their source position keep the first: the smallest offset).

    Keeps the columns and their order. An insert-only MERGE needs this: Delta would insert every
    source row of a key the table does not hold yet.
    """
    others = [name for name in rows.columns if name not in keys]
    if not others:
        return rows.dropDuplicates(list(keys))
    collapsed = rows.groupBy(*keys).agg(F.min(F.struct(*others)).alias("_least"))
    return collapsed.select(*[F.col(n) if n in keys else F.col(f"_least.{n}").alias(n) for n in rows.columns])
