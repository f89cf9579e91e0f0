"""The event-time watermark of the status stream, recorded per micro-batch beside the checkpoint.

Spark's own watermark would drop late rows inside the dedup operator with only a counter; this
one is compared with event times before anything can drop a row. A replayed batch reads the
mark its first attempt read (the one recorded by the batch before it), so it splits late
events identically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from shipments.config import join_path
from shipments.storage import fs
from shipments.transforms.columns import epoch_micros

log = logging.getLogger(__name__)

# Where the marks are kept, inside the query's checkpoint folder (they are part of the query's
# progress: a new checkpoint starts without one, like Spark's own state).
WATERMARK_FOLDER = "shipments_event_time"
_KEEP = 100
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# What ``fs.write_text_atomic`` leaves when it dies between writing its temporary file and the
# rename: ``.<name>.<random>._tmp`` (and, on Hadoop's local file system, that file's ``.crc``).
_TEMPORARY_SUFFIXES = ("._tmp", "._tmp.crc")
# Java exceptions of a read that mean the file's bytes are torn (Hadoop's local file system
# checks each file against the checksum written beside it), not that the file system failed.
_TORN_READS = frozenset({"org.apache.hadoop.fs.ChecksumException", "java.io.EOFException"})


def to_micros(value: dt.datetime | None) -> int | None:
    """Aware datetime -> epoch microseconds (exact, and free of any local time zone)."""
    return None if value is None else epoch_micros(value)


def from_micros(value: int | None) -> dt.datetime | None:
    """Epoch microseconds -> aware UTC datetime."""
    return None if value is None else _EPOCH + dt.timedelta(microseconds=int(value))


@dataclasses.dataclass(frozen=True)
class EventTimeMark:
    """The event-time state after a batch: the greatest event time seen and the watermark."""

    batch_id: int
    max_event_time: dt.datetime | None
    watermark: dt.datetime | None


class WatermarkLog:
    """Per-batch marks in ``<checkpoint>/shipments_event_time/<batch_id>``, one small JSON file
    each, written whole (temporary name, then rename) on any Hadoop file system."""

    def __init__(self, spark: SparkSession, checkpoint: str, allowed_lateness_seconds: int) -> None:
        self._spark = spark
        self._folder = join_path(checkpoint, WATERMARK_FOLDER)
        self._lateness = dt.timedelta(seconds=allowed_lateness_seconds)

    def before(self, batch_id: int) -> EventTimeMark:
        """The mark recorded by the latest batch before ``batch_id`` (empty when there is none).

        A torn mark (a host crash mid-write: empty, cut short, or failing its checksum) is
        reported and skipped: the one before it is used, which can only make the watermark
        older, so no event is wrongly called late. Any other read error is raised: the batch
        fails and Spark retries it from the checkpoint.
        """
        marks = _batch_ids(fs.list_folder(self._spark, self._folder))
        for previous in sorted((i for i in marks if i < batch_id), reverse=True):
            path = join_path(self._folder, str(previous))
            text: str | None = None
            try:
                text = fs.read_text(self._spark, path)
                data = json.loads(text or "")
                return EventTimeMark(
                    int(data["batch_id"]),
                    from_micros(data.get("max_event_time_us")),
                    from_micros(data.get("watermark_us")),
                )
            except Py4JJavaError as exc:
                problem = _torn_read(exc)
                if problem is None:
                    raise
            except (ValueError, KeyError, TypeError):
                problem = f"content {(text or '')[:80]!r}"
            log.warning(
                "event-time mark of batch %d in %s is unreadable (%s); using an older one",
                previous,
                self._folder,
                problem,
            )
        return EventTimeMark(-1, None, None)

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
        fs.write_text_atomic(self._spark, join_path(self._folder, str(mark.batch_id)), json.dumps(payload))
        # One listing per batch serves both clean-ups. One query writes a checkpoint's marks, one
        # at a time: a temporary file still there is what a write killed before its rename left.
        listing = fs.list_folder(self._spark, self._folder)
        for status in listing:
            if status.name.endswith(_TEMPORARY_SUFFIXES):
                fs.delete(self._spark, status.path)
        for old in sorted(_batch_ids(listing))[:-_KEEP]:
            fs.delete(self._spark, join_path(self._folder, str(old)))


def _batch_ids(listing: list[fs.FileStatus]) -> list[int]:
    """The batch ids of the marks in a listing of the marks folder."""
    return [int(status.name) for status in listing if status.name.isdigit()]


def _torn_read(error: Py4JJavaError) -> str | None:
    """The Java exception class when ``error`` says the file is torn, else None."""
    cause = error.java_exception
    while cause is not None:
        name = str(cause.getClass().getName())
        if name in _TORN_READS:
            return name
        cause = cause.getCause()
    return None
