"""The status transforms on a few rows each: parsing and DLQ reasons, capping, collapse."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from shipments.model.events import RAW_RECORD_SCHEMA
from shipments.transforms.events import (
    filter_late,
    filter_on_time,
    to_latest_per_shipment,
    to_one_per_key,
    with_capped_event_time,
    with_parsed_event,
)

UTC = dt.UTC
ARRIVED = dt.datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)


def utc(value: dt.datetime) -> dt.datetime:
    """Collected timestamps are naive, in the Python process's local zone."""
    return value.astimezone(UTC)


GOOD = (
    '{"event_id":"e1","shipment_id":"S1","status":"PICKED_UP",'
    '"event_time":"2026-11-26T10:30:00+02:00","location":"Leipzig"}'
)


def records(spark: SparkSession, *values: str | None) -> DataFrame:
    rows = [(v, "events", 0, i, None, ARRIVED) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, RAW_RECORD_SCHEMA)


def test_a_valid_event_is_typed_and_its_time_read_in_utc(spark: SparkSession) -> None:
    row = records(spark, GOOD).transform(with_parsed_event).first()
    assert row is not None
    assert (row.reason, row.raw_text, row.event_id, row.shipment_id, row.status, row.location) == (
        None, None, "e1", "S1", "PICKED_UP", "Leipzig",
    )  # fmt: skip
    assert utc(row.event_time) == dt.datetime(2026, 11, 26, 8, 30, tzinfo=UTC) == utc(row.reported_event_time)
    assert (row.source_topic, row.source_partition, row.source_offset) == ("events", 0, 0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('{"event_id": "broken", "shipment_id": ', "malformed_json"),
        ("", "malformed_json"),
        (None, "malformed_json"),  # a Kafka record without a value
        ("[1, 2]", "malformed_json"),
        ('{"shipment_id":"S1","status":"CREATED","event_time":"2026-11-26T10:00:00Z"}', "missing_field:event_id"),
        (
            '{"event_id":"e1","shipment_id":" ","status":"CREATED","event_time":"2026-11-26T10:00:00Z"}',
            "missing_field:shipment_id",
        ),
        ('{"event_id":"e1","shipment_id":"S1","event_time":"2026-11-26T10:00:00Z"}', "missing_field:status"),
        ('{"event_id":"e1","shipment_id":"S1","status":"CREATED"}', "missing_field:event_time"),
        (
            '{"event_id":"e1","shipment_id":"S1","status":"CREATED","event_time":"2026-13-45T10:00:00Z"}',
            "bad_timestamp:event_time",
        ),
        (
            '{"event_id":"e1","shipment_id":"S1","status":"CREATED","event_time":"2026-11-26T10:00:00"}',
            "bad_timestamp:event_time",
        ),
        (
            '{"event_id":"e1","shipment_id":"S1","status":"CREATED","event_time":"yesterday"}',
            "bad_timestamp:event_time",
        ),
        (
            '{"event_id":"e1","shipment_id":"S1","status":"LOST","event_time":"2026-11-26T10:00:00Z"}',
            "bad_value:status",
        ),
    ],
)
def test_malformed_events_get_a_reason_and_keep_their_raw_value(
    spark: SparkSession, value: str | None, reason: str
) -> None:
    row = records(spark, value).transform(with_parsed_event).first()
    assert row is not None
    assert (row.reason, row.raw_text, row.event_id, row.event_time) == (reason, value, None, None)


def test_event_time_is_capped_at_arrival_plus_skew(spark: SparkSession) -> None:
    future = GOOD.replace("2026-11-26T10:30:00+02:00", "2099-01-01T00:00:00Z")
    rows = records(spark, GOOD, future).transform(with_parsed_event).transform(with_capped_event_time, 300).collect()
    assert [(utc(r.event_time), utc(r.reported_event_time)) for r in rows] == [
        (dt.datetime(2026, 11, 26, 8, 30, tzinfo=UTC), dt.datetime(2026, 11, 26, 8, 30, tzinfo=UTC)),
        (ARRIVED + dt.timedelta(minutes=5), dt.datetime(2099, 1, 1, tzinfo=UTC)),
    ]


def _events(spark: SparkSession, *rows: tuple[str, str, str, dt.datetime]) -> DataFrame:
    lines = [
        f'{{"event_id":"{e}","shipment_id":"{s}","status":"{st}","event_time":"{t.isoformat()}"}}'
        for e, s, st, t in rows
    ]
    return records(spark, *lines).transform(with_parsed_event)


def test_latest_per_shipment_takes_the_newest_event_then_the_greatest_event_id(spark: SparkSession) -> None:
    t0 = dt.datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    events = _events(
        spark,
        ("e2", "S1", "PICKED_UP", t0 + dt.timedelta(hours=1)),
        ("e1", "S1", "CREATED", t0),
        ("e3", "S2", "CREATED", t0),
        ("e4", "S2", "CANCELLED", t0),
    )
    latest = events.transform(to_latest_per_shipment).select("shipment_id", "status", "event_time", "event_id")
    expected = spark.createDataFrame(
        [("S1", "PICKED_UP", t0 + dt.timedelta(hours=1), "e2"), ("S2", "CANCELLED", t0, "e4")],
        "shipment_id string, status string, event_time timestamp, event_id string",
    )
    assert_df_equality(latest, expected, ignore_row_order=True, ignore_nullable=True)


def test_late_and_on_time_split_at_the_watermark(spark: SparkSession) -> None:
    wm = dt.datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    events = _events(
        spark,
        ("e1", "S1", "CREATED", wm - dt.timedelta(seconds=1)),
        ("e2", "S1", "CREATED", wm),
        ("e3", "S1", "CREATED", wm + dt.timedelta(hours=1)),
    )
    assert [r.event_id for r in events.transform(filter_late, wm).collect()] == ["e1"]
    assert sorted(r.event_id for r in events.transform(filter_on_time, wm).collect()) == ["e2", "e3"]
    assert events.transform(filter_late, None).count() == 0


DEAD_LETTERS = [
    ("events", 0, 7, None, "{nope", 2),
    ("events", 0, 7, None, "{nope", 1),  # the same record in an earlier batch
    (None, None, None, "f.jsonl", "", 3),
    (None, None, None, "f.jsonl", "", 3),  # the same line text twice in one file
    (None, None, None, "g.jsonl", "", 3),
]


@pytest.mark.parametrize("rows", [DEAD_LETTERS, DEAD_LETTERS[::-1]], ids=["in_order", "reversed"])
def test_one_per_key_groups_null_key_parts_together_and_keeps_the_least_row(spark: SparkSession, rows: list) -> None:
    schema = "topic string, part int, offset long, file string, raw string, batch_id long"
    frame = spark.createDataFrame(rows, schema)
    collapsed = to_one_per_key(frame, ["topic", "part", "offset", "file", "raw"])
    assert collapsed.columns == frame.columns
    assert_df_equality(
        collapsed,
        spark.createDataFrame(
            [
                ("events", 0, 7, None, "{nope", 1),
                (None, None, None, "f.jsonl", "", 3),
                (None, None, None, "g.jsonl", "", 3),
            ],
            schema,
        ),
        ignore_row_order=True,
    )
