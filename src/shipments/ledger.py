"""The ``pipeline_runs`` ledger: one row per run, what it read, wrote and how it ended."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable

from pyspark.sql import SparkSession

from shipments import io
from shipments.config import Config
from shipments.io import RawFile
from shipments.schemas import PIPELINE_RUNS_SCHEMA
from shipments.tables import PIPELINE_RUNS

SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"


def new_run_id(job: str, run_date: dt.date | None = None) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    day = f"-{run_date.isoformat()}" if run_date else ""
    return f"{job}{day}-{stamp}-{uuid.uuid4().hex[:8]}"


def input_fingerprint(files: Iterable[RawFile], *settings: object) -> str:
    """A digest of a run's input (paths, sizes, modification times) and the settings that shape
    what is read from it, so a rerun can tell whether anything changed."""
    digest = hashlib.sha256()
    for item in settings:
        digest.update(f"{item}\n".encode())
    for f in sorted(files):
        digest.update(f"{f.path}\t{f.size}\t{f.modified_ms}\n".encode())
    return digest.hexdigest()


@dataclasses.dataclass
class RunRecord:
    """A ``pipeline_runs`` row; counts stay None when the run ended before knowing them."""

    run_id: str
    job: str
    run_date: dt.date | None
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    status: str = FAILED
    rows_read: int | None = None
    rows_duplicates: int | None = None
    rows_quarantined: int | None = None
    rows_other_dates: int | None = None
    rows_kept: int | None = None
    unknown_customers: int | None = None
    unknown_customer_rows: int | None = None
    dimension_duplicates: int | None = None
    rows_written: int | None = None
    table_version: int | None = None
    input_files: int | None = None
    input_bytes: int | None = None
    input_fingerprint: str | None = None
    error: str | None = None

    def as_row(self) -> tuple[object, ...]:
        values = dataclasses.asdict(self)
        return tuple(values[name] for name in PIPELINE_RUNS_SCHEMA.fieldNames())


def utc_now() -> dt.datetime:
    """Naive UTC: what Spark's TimestampType round-trips under a UTC session time zone."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def record_run(spark: SparkSession, config: Config, record: RunRecord) -> None:
    """Append ``record`` to ``pipeline_runs`` (a blind append: parallel runs never conflict)."""
    if record.ended_at is None:
        record.ended_at = utc_now()
    frame = spark.createDataFrame([record.as_row()], PIPELINE_RUNS_SCHEMA)
    io.append_rows(frame, PIPELINE_RUNS.path(config))
