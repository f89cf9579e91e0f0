"""The event-time marks beside the checkpoint: a torn mark (a host crash mid-write) is skipped
with a warning, a restart of the sink goes on from the mark before it, and writing a mark leaves
no temporary file behind."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shipments.config import Config
from shipments.model.tables import STREAM_TABLES
from shipments.storage.delta import ensure_tables
from shipments.stream.sink import StatusBatchSink, StatusTables
from shipments.stream.watermarks import EventTimeMark, WatermarkLog
from tests.stream_fixtures import event_row, nov20, record_batch, utc

HOUR = 3600
FOLDER = "shipments_event_time"


def _mark(batch_id: int, max_time: dt.datetime) -> EventTimeMark:
    return EventTimeMark(batch_id, max_time, max_time - dt.timedelta(hours=1))


def _tear(folder: Path, batch_id: int, how: str) -> None:
    """Leave the mark of ``batch_id`` as a crash mid-write of an in-place write would."""
    mark = folder / str(batch_id)
    text = mark.read_bytes()
    if how == "empty":
        mark.write_bytes(b"")
    elif how == "half_written":
        # Hadoop's local file system keeps a checksum beside the file (.<name>.crc), written with
        # the data: a torn file no longer matches it.
        mark.write_bytes(text[: len(text) // 2])
    else:  # half written, on a file system without checksum files (S3, or the .crc torn too)
        mark.write_bytes(text[: len(text) // 2])
        (folder / f".{batch_id}.crc").unlink()


TORN = ["empty", "half_written", "half_written_no_checksum"]


@pytest.mark.parametrize("how", TORN)
def test_a_torn_newest_mark_is_skipped_with_a_warning(
    spark: SparkSession, tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    marks = WatermarkLog(spark, str(tmp_path / "checkpoint"), HOUR)
    marks.record(_mark(0, nov20(12)))
    marks.record(_mark(1, nov20(14)))
    _tear(tmp_path / "checkpoint" / FOLDER, 1, how)

    with caplog.at_level(logging.WARNING, logger="shipments.stream.watermarks"):
        previous = marks.before(2)

    assert previous == _mark(0, nov20(12))
    assert any("batch 1" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("how", ["empty", "half_written"])
def test_the_sink_restarts_after_a_torn_mark_from_the_mark_before_it(
    spark: SparkSession, config: Config, tmp_path: Path, how: str
) -> None:
    ensure_tables(spark, config, STREAM_TABLES)
    checkpoint = str(tmp_path / "checkpoint")
    first = StatusBatchSink(StatusTables.of(config), WatermarkLog(spark, checkpoint, HOUR))
    first(record_batch(spark, event_row("e1", "S1", "CREATED", nov20(12), 0)), 0)  # watermark 11:00
    first(record_batch(spark, event_row("e2", "S2", "CREATED", nov20(14), 1)), 1)  # watermark 13:00
    _tear(tmp_path / "checkpoint" / FOLDER, 1, how)

    # The job restarts: a new sink on the same checkpoint processes the next batch.
    restarted = StatusBatchSink(StatusTables.of(config), WatermarkLog(spark, checkpoint, HOUR))
    restarted(
        record_batch(
            spark,
            event_row("e3", "S3", "CREATED", nov20(12, 30), 2),  # on time against 11:00 (late against 13:00)
            event_row("e4", "S4", "CREATED", nov20(10, 30), 3),  # late against 11:00
        ),
        2,
    )

    assert restarted.stats[2].watermark == nov20(11)
    late = spark.read.format("delta").load(restarted.tables.late).collect()
    assert [(r["event_id"], utc(r["watermark"]), r["batch_id"]) for r in late] == [("e4", nov20(11), 2)]
    status = spark.read.format("delta").load(restarted.tables.status).collect()
    assert sorted(r["event_id"] for r in status) == ["e1", "e2", "e3"]
    # The restarted batch recorded a whole mark of its own.
    assert restarted.watermarks.before(3) == _mark(2, nov20(12, 30))


def test_recording_a_mark_leaves_no_temporary_file_behind(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint" / FOLDER
    marks = WatermarkLog(spark, str(tmp_path / "checkpoint"), HOUR)
    marks.record(_mark(0, nov20(12)))
    # What a crash between writing the temporary file and renaming it leaves behind.
    (folder / ".1.0123456789abcdef._tmp").write_text('{"batch_id": 1')
    (folder / "..1.0123456789abcdef._tmp.crc").write_bytes(b"crc")

    marks.record(_mark(1, nov20(13)))
    marks.record(_mark(1, nov20(13)))  # a replayed batch writes its mark again

    assert sorted(p.name for p in folder.iterdir()) == [".0.crc", ".1.crc", "0", "1"]
    assert marks.before(2) == _mark(1, nov20(13))
