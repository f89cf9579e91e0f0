"""The ``pipeline_runs`` ledger: one row per run, what it read, wrote and how it ended."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Sequence

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.config import Config
from shipments.errors import describe
from shipments.model.tables import PIPELINE_RUNS, PIPELINE_RUNS_SCHEMA
from shipments.storage import delta, driver_rows
from shipments.storage.raw import RawFile

SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"


def utc_now() -> dt.datetime:
    """The current instant, time-zone aware (stored as that instant whatever the driver's zone)."""
    return dt.datetime.now(dt.UTC)


def new_run_id(job: str, run_date: dt.date | None = None) -> str:
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    day = f"-{run_date.isoformat()}" if run_date else ""
    return f"{job}{day}-{stamp}-{uuid.uuid4().hex[:8]}"


def input_fingerprint(files: Iterable[RawFile], *settings: object) -> str:
    """A digest of a run's input (paths, sizes, modification times, content checksums) and the
    settings that shape what is read from it, so a rerun can tell whether anything changed, also
    a same-size correction landed with its modification time preserved."""
    digest = hashlib.sha256()
    for item in settings:
        digest.update(f"{item}\n".encode())
    for f in sorted(files):
        digest.update(f"{f.path}\t{f.size}\t{f.modified_ms}\t{f.checksum}\n".encode())
    return digest.hexdigest()


@dataclasses.dataclass
class RunRecord:
    """A ``pipeline_runs`` row; counts stay None when the run ended before knowing them."""

    run_id: str
    job: str
    run_date: dt.date | None
    started_at: dt.datetime = dataclasses.field(default_factory=utc_now)
    ended_at: dt.datetime | None = None
    status: str = FAILED
    rows_read: int | None = None
    rows_duplicates: int | None = None
    rows_quarantined: int | None = None
    rows_deleted: int | None = None
    rows_other_dates: int | None = None
    rows_kept: int | None = None
    unknown_customers: int | None = None
    unknown_customer_rows: int | None = None
    dimension_duplicates: int | None = None
    rows_written: int | None = None
    rows_early: int | None = None
    rows_late: int | None = None
    quarantine_reasons: str | None = None
    checks_failed: int | None = None
    table_version: int | None = None
    input_files: int | None = None
    input_bytes: int | None = None
    input_fingerprint: str | None = None
    error: str | None = None

    def update(self, **values: object) -> None:
        """Set ledger columns by name (an unknown name is a bug, not a silent no-op)."""
        for name, value in values.items():
            if name not in PIPELINE_RUNS_SCHEMA.fieldNames():
                raise AttributeError(f"pipeline_runs has no column {name!r}")
            setattr(self, name, value)

    def as_row(self) -> tuple[object, ...]:
        values = dataclasses.asdict(self)
        return tuple(values[name] for name in PIPELINE_RUNS_SCHEMA.fieldNames())


def record_run(spark: SparkSession, config: Config, record: RunRecord) -> None:
    """Append ``record`` to ``pipeline_runs`` (a blind append: parallel runs never conflict)."""
    record_runs(spark, config, [record])


def record_runs(spark: SparkSession, config: Config, records: Sequence[RunRecord]) -> None:
    """Append ``records`` to ``pipeline_runs`` in one commit (a backfill pass's dates); none:
    nothing is written."""
    if not records:
        return
    for record in records:
        if record.ended_at is None:
            record.ended_at = utc_now()
    frame = driver_rows.to_frame(spark, [record.as_row() for record in records], PIPELINE_RUNS_SCHEMA)
    delta.ensure_table(spark, config, PIPELINE_RUNS)
    # The ledger gains columns over releases (rows_deleted): add them to an older ledger.
    delta.append_rows(frame, PIPELINE_RUNS.path(config), key=records[0].run_id, add_columns=True)


@contextlib.contextmanager
def recorded_run(spark: SparkSession, config: Config, record: RunRecord) -> Iterator[RunRecord]:
    """Record ``record`` in ``pipeline_runs`` when the block ends: SUCCEEDED when it returns,
    FAILED with the error's one-line description when it raises (the error propagates)."""
    try:
        yield record
    except BaseException as exc:
        record.status, record.error = FAILED, describe(exc)
        record_run(spark, config, record)
        raise
    record.status = SUCCEEDED
    record_run(spark, config, record)


@dataclasses.dataclass(frozen=True)
class LastRun:
    """The latest run of a job recorded for a date."""

    run_id: str
    status: str
    started_ms: int  # epoch milliseconds
    input_fingerprint: str | None
    rows_written: int | None


def last_runs(spark: SparkSession, config: Config, job: str, start: dt.date, end: dt.date) -> dict[dt.date, LastRun]:
    """The latest run of ``job`` per date in ``start..end`` (empty when the ledger does not exist
    yet). Reads only; one small collect. Ordered by (started_at, ended_at) as Spark compares
    them, so the driver's zone plays no part."""
    runs = delta.read_table(spark, config, PIPELINE_RUNS)
    if runs is None:
        return {}
    rows = (
        runs.filter((F.col("job") == F.lit(job)) & F.col("run_date").between(F.lit(start), F.lit(end)))
        .orderBy("started_at", "ended_at")
        .select(
            "run_date",
            "run_id",
            "status",
            F.unix_millis("started_at").alias("started_ms"),
            "input_fingerprint",
            "rows_written",
        )
        .collect()
    )
    # Later rows overwrite earlier ones: the last in (started_at, ended_at) order wins.
    return {
        row["run_date"]: LastRun(
            row["run_id"], row["status"], int(row["started_ms"]), row["input_fingerprint"], row["rows_written"]
        )
        for row in rows
    }


def recorded_runs(spark: SparkSession, config: Config, run_date: dt.date) -> list[RunRecord]:
    """Every run recorded for ``run_date`` (any job, any status), oldest first by (started_at,
    ended_at); empty when the ledger does not exist yet. A column an older ledger lacks reads as
    None, like a count its run did not record. Reads only; one small collect."""
    runs = delta.read_table(spark, config, PIPELINE_RUNS)
    if runs is None:
        return []
    instants = {"started_at", "ended_at"}
    columns = [
        (F.unix_micros(name) if name in instants else F.col(name) if name in runs.columns else F.lit(None)).alias(name)
        for name in PIPELINE_RUNS_SCHEMA.fieldNames()
    ]
    rows = runs.filter(F.col("run_date") == F.lit(run_date)).orderBy("started_at", "ended_at").select(*columns)
    # Instants as epoch microseconds, made aware here: collect() would give naive local times.
    return [RunRecord(**{**row.asDict(), **{name: _utc(row[name]) for name in instants}}) for row in rows.collect()]


def _utc(micros: int | None) -> dt.datetime | None:
    return None if micros is None else dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
