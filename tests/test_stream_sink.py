"""The foreachBatch function, called as a plain batch function on tiny DataFrames, with each
MERGE engine of the stream's tables: Spark's, and delta-rs on the driver."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from shipments.config import Config
from shipments.model.tables import STREAM_TABLES
from shipments.storage.delta import ensure_tables
from shipments.storage.driver_merge import DriverMerge
from shipments.stream.sink import StatusBatchSink, StatusTables
from shipments.stream.watermarks import WatermarkLog
from tests.helpers.lake import commit_infos
from tests.stream_fixtures import event_row as ev
from tests.stream_fixtures import nov20 as t
from tests.stream_fixtures import record_batch as batch
from tests.stream_fixtures import rejected_line
from tests.stream_fixtures import rejected_row as bad

UTC = dt.UTC
HOUR = 3600


@pytest.fixture(params=["Apache-Spark", "delta-rs"])
def sink(
    request: pytest.FixtureRequest, spark: SparkSession, config: Config, tmp_path: Path
) -> Iterator[StatusBatchSink]:
    ensure_tables(spark, config, STREAM_TABLES)
    tables = StatusTables.of(config)
    paths = (tables.status, tables.late, tables.dlq)
    drivers = {path: DriverMerge(path, max_mb=512, options={}) for path in paths} if request.param == "delta-rs" else {}
    yield StatusBatchSink(tables, WatermarkLog(spark, str(tmp_path / "checkpoint"), HOUR), driver_merges=drivers)
    # every MERGE the test made went through the engine it is named for
    for path in paths:
        engines = {str(info["engineInfo"]).split("/")[0].split(":")[0] for info in commit_infos(path, "MERGE")}
        assert engines <= {request.param}, (path, engines)


def version(spark: SparkSession, path: str) -> int:
    return int(DeltaTable.forPath(spark, path).history(1).first()["version"])


def status_of(spark: SparkSession, sink: StatusBatchSink) -> DataFrame:
    return (
        spark.read.format("delta")
        .load(sink.tables.status)
        .select("shipment_id", "status", "event_time", "event_id", "batch_id")
    )


def expected_status(spark: SparkSession, *rows: tuple) -> DataFrame:
    return spark.createDataFrame(
        list(rows), "shipment_id string, status string, event_time timestamp, event_id string, batch_id long"
    )


def test_newest_event_per_shipment_is_inserted_and_bad_records_go_to_the_dlq(
    spark: SparkSession, sink: StatusBatchSink
) -> None:
    sink(
        batch(
            spark,
            ev("e1", "S1", "CREATED", t(10), 0),
            ev("e3", "S1", "IN_TRANSIT", t(12), 1),
            ev("e2", "S1", "PICKED_UP", t(11), 2),
            ev("e4", "S2", "CREATED", t(10), 3),
            bad("{nope", "malformed_json", 4),
        ),
        0,
    )
    assert_df_equality(
        status_of(spark, sink),
        expected_status(spark, ("S1", "IN_TRANSIT", t(12), "e3", 0), ("S2", "CREATED", t(10), "e4", 0)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    dlq = (
        spark.read.format("delta")
        .load(sink.tables.dlq)
        .select("raw_value", "error", "source_topic", "source_partition", "source_offset", "batch_id")
    )
    assert [tuple(r) for r in dlq.collect()] == [("{nope", "malformed_json", "events", 0, 4, 0)]
    assert sink.stats[0].on_time == 4 and sink.stats[0].dlq == 1 and sink.stats[0].late == 0
    # one MERGE into each table (the fixture checks which engine made them)
    assert len(commit_infos(sink.tables.status, "MERGE")) == len(commit_infos(sink.tables.dlq, "MERGE")) == 1


def test_older_events_never_overwrite_and_ties_break_on_event_id(spark: SparkSession, sink: StatusBatchSink) -> None:
    sink(batch(spark, ev("e5", "S1", "IN_TRANSIT", t(12), 0), ev("e5", "S2", "CREATED", t(11, 30), 1)), 0)
    sink(
        batch(
            spark,
            ev("e1", "S1", "PICKED_UP", t(11), 2),  # out of order: older, must not win
            ev("e9", "S2", "CANCELLED", t(11, 30), 3),  # same time, greater event_id: wins
        ),
        1,
    )
    assert_df_equality(
        status_of(spark, sink),
        expected_status(spark, ("S1", "IN_TRANSIT", t(12), "e5", 0), ("S2", "CANCELLED", t(11, 30), "e9", 1)),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_events_older_than_the_previous_batch_watermark_go_to_the_late_table(
    spark: SparkSession, sink: StatusBatchSink
) -> None:
    sink(batch(spark, ev("e1", "S1", "IN_TRANSIT", t(12), 0)), 0)  # watermark becomes 11:00
    sink(
        batch(
            spark,
            ev("e2", "S1", "DELIVERED", t(13), 1),
            ev("e3", "S2", "CREATED", t(10, 59), 2),  # older than 11:00: late, not applied
            ev("e4", "S3", "CREATED", t(11), 3),  # exactly at the watermark: on time
        ),
        1,
    )
    late = spark.read.format("delta").load(sink.tables.late)
    # (collected timestamps come back naive in the local zone: astimezone reads them as such)
    assert [(r.event_id, r.shipment_id, r.watermark.astimezone(UTC), r.batch_id) for r in late.collect()] == [
        ("e3", "S2", t(11), 1)
    ]
    assert_df_equality(
        status_of(spark, sink),
        expected_status(spark, ("S1", "DELIVERED", t(13), "e2", 1), ("S3", "CREATED", t(11), "e4", 1)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    # The watermark is judged against earlier batches only: within batch 1, 13:00 did not move it.
    assert sink.stats[1].watermark == t(11)
    assert sink.watermarks.before(2).watermark == t(12)


def test_a_replayed_batch_changes_nothing(spark: SparkSession, sink: StatusBatchSink) -> None:
    sink(batch(spark, ev("e1", "S1", "IN_TRANSIT", t(12), 0)), 0)
    replayed = batch(
        spark,
        ev("e2", "S1", "DELIVERED", t(13), 1),
        ev("e0", "S9", "CREATED", t(9), 2),  # late
        bad("", "malformed_json", 3),
    )
    sink(replayed, 1)
    tables = sink.tables
    before = {p: spark.read.format("delta").load(p).collect() for p in (tables.status, tables.late, tables.dlq)}
    versions = {p: version(spark, p) for p in before}

    sink(replayed, 1)  # Spark replays the batch after a crash: same id, same data

    after = {p: spark.read.format("delta").load(p).collect() for p in before}
    for path in before:
        assert sorted(map(tuple, after[path])) == sorted(map(tuple, before[path])), path
    assert len(after[tables.late]) == 1 and len(after[tables.dlq]) == 1
    # The late and DLQ MERGEs found every key stored and inserted nothing: no new table version;
    # delta-rs's status MERGE replaced nothing either, and commits nothing then.
    for path in (tables.late, tables.dlq) + ((tables.status,) if sink.driver_merges else ()):
        assert version(spark, path) == versions[path], path


def _commits(path: str) -> list[str]:
    return sorted(p.name for p in (Path(path) / "_delta_log").glob("*.json"))


def test_an_empty_batch_writes_nothing(spark: SparkSession, sink: StatusBatchSink) -> None:
    tables = (sink.tables.status, sink.tables.late, sink.tables.dlq)
    before = [_commits(path) for path in tables]
    sink(batch(spark), 0)
    assert spark.read.format("delta").load(sink.tables.status).count() == 0
    assert sink.stats[0].records == 0
    assert [_commits(path) for path in tables] == before  # no commit to any of the three tables


def _late_rows(spark: SparkSession, sink: StatusBatchSink) -> list[tuple]:
    late = spark.read.format("delta").load(sink.tables.late)
    return sorted((r.event_id, r.source_offset, r.batch_id) for r in late.collect())


def _dead_letters(spark: SparkSession, sink: StatusBatchSink) -> list[tuple]:
    dlq = spark.read.format("delta").load(sink.tables.dlq)
    columns = ("source_topic", "source_partition", "source_offset", "source_file", "raw_value", "batch_id")
    return sorted((tuple(r[c] for c in columns) for r in dlq.collect()), key=repr)


def test_late_events_and_dead_letters_are_stored_once_however_often_they_are_redelivered(
    spark: SparkSession, sink: StatusBatchSink
) -> None:
    sink(batch(spark, ev("e1", "S1", "IN_TRANSIT", t(12), 0)), 0)  # watermark becomes 11:00
    sink(
        batch(
            spark,
            ev("e0", "S9", "CREATED", t(9), 1),  # late
            ev("e0", "S9", "CREATED", t(9), 2),  # a producer retry of it in the same batch
            bad("{nope", "malformed_json", 3),
            rejected_line("", "malformed_json", "file:/in/a.jsonl"),
            rejected_line("", "malformed_json", "file:/in/a.jsonl"),  # the same line text in the same file
        ),
        1,
    )
    redelivered = batch(
        spark,
        ev("e0", "S9", "CREATED", t(9), 7),  # the late event again, after the dedup window
        bad("{nope", "malformed_json", 3),  # the same Kafka record again
        rejected_line("", "malformed_json", "file:/in/a.jsonl"),  # the same file line again
        bad("{nope", "malformed_json", 8),  # another record with the same text: a dead letter of its own
        rejected_line("", "malformed_json", "file:/in/b.jsonl"),  # the same text in another file: too
    )
    sink(redelivered, 2)
    sink(redelivered, 2)  # and that batch replayed after a crash

    assert _late_rows(spark, sink) == [("e0", 1, 1)]  # the first delivery: the smallest offset
    assert _dead_letters(spark, sink) == sorted(
        [
            ("events", 0, 3, None, "{nope", 1),
            (None, None, None, "file:/in/a.jsonl", "", 1),
            ("events", 0, 8, None, "{nope", 2),
            (None, None, None, "file:/in/b.jsonl", "", 2),
        ],
        key=repr,
    )
