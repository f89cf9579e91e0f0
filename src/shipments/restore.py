"""Partition restore: put one ``ship_date`` of ``shipment_daily_totals`` back as of a version.

Delta's RESTORE is whole-table, which would also roll back every other date written since.
A partition restore is a time-travel read of that date at version V, written back with the
same ``replaceWhere`` the daily job uses: one atomic commit that touches no other date.

Everything is checked before anything is written (the version exists, it still has the date,
its data files were not vacuumed), so a refused restore leaves the lake unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments import io
from shipments.config import Config
from shipments.errors import TableError, describe
from shipments.ledger import SUCCEEDED, RunRecord, new_run_id, record_run, utc_now
from shipments.schemas import DAILY_TOTALS_SCHEMA
from shipments.tables import DAILY_TOTALS, PIPELINE_RUNS, ensure_tables

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RestoreResult:
    run_id: str
    run_date: dt.date
    from_version: int
    table_version: int
    rows_written: int
    rows_replaced: int
    seconds: float

    def summary(self) -> str:
        return (
            f"restore {self.run_date}: partition put back as of table version {self.from_version} "
            f"({self.rows_written} customer rows, replacing {self.rows_replaced}); committed as table version "
            f"{self.table_version}; other dates untouched; {self.seconds:.1f}s; run {self.run_id}"
        )


def _available_versions(spark: SparkSession, path: str) -> tuple[int, int]:
    """(oldest, latest) version still in the table's history."""
    row = DeltaTable.forPath(spark, path).history().agg(F.min("version").alias("oldest"), F.max("version").alias("latest")).first()
    return int(row["oldest"]), int(row["latest"])


def read_partition_at(spark: SparkSession, path: str, run_date: dt.date, version: int) -> DataFrame:
    """Partition ``run_date`` of the Delta table at ``path`` as of ``version`` (time travel).

    Raises:
        TableError: the version cannot be read any more (log cleaned up or files vacuumed).
    """
    try:
        at_version = spark.read.format("delta").option("versionAsOf", version).load(path)
        partition = at_version.filter(F.col("ship_date") == F.lit(run_date)).select(*DAILY_TOTALS_SCHEMA.fieldNames())
        files = partition.inputFiles()
    except Exception as exc:
        raise TableError(
            f"version {version} of {path} can no longer be read ({describe(exc, 300)}); its log was cleaned up: "
            f"pick a newer version (see DESCRIBE HISTORY)"
        ) from None
    # inputFiles() lists the whole snapshot; only the date's own folder matters here (VACUUM may
    # legitimately have removed files of other dates that version V still referenced).
    folder = f"/ship_date={run_date.isoformat()}/"
    day_files = [f for f in files if folder in f]
    missing = [f for f in day_files if not io.path_exists(spark, f)]
    if missing:
        raise TableError(
            f"version {version} of {path} can no longer be restored: {len(missing)} of its {len(day_files)} data file(s) "
            f"for {run_date} were removed by VACUUM (e.g. {missing[0]}); pick a version newer than the vacuum "
            f"retention, or rerun `shipments daily --date {run_date}` from raw"
        )
    return partition


def run_restore(spark: SparkSession, config: Config, run_date: dt.date, version: int) -> RestoreResult:
    """Replace partition ``run_date`` of ``shipment_daily_totals`` with its content at ``version``
    and record a ``restore`` run in ``pipeline_runs``.

    Raises:
        TableError: the table does not exist, ``version`` is not in its history or was vacuumed,
            or the date has no rows at ``version`` (restoring would delete the partition).
    """
    if not isinstance(version, int) or version < 0:
        raise TableError(f"version must be a whole number >= 0, got {version!r}")
    path = DAILY_TOTALS.path(config)
    if not DeltaTable.isDeltaTable(spark, path):
        raise TableError(f"no Delta table at {path}: nothing to restore (check --lake)")
    oldest, latest = _available_versions(spark, path)
    if not oldest <= version <= latest:
        raise TableError(
            f"version {version} of {path} does not exist: the history holds versions {oldest}..{latest}"
        )
    partition = read_partition_at(spark, path, run_date, version)
    rows_written = partition.count()
    if rows_written == 0:
        raise TableError(
            f"{run_date} has no rows in version {version} of {path}: restoring would delete the partition; "
            f"pick a version that holds the date"
        )
    rows_replaced = spark.read.format("delta").load(path).filter(F.col("ship_date") == F.lit(run_date)).count()

    run_id = new_run_id("restore", run_date)
    record = RunRecord(run_id=run_id, job="restore", run_date=run_date, started_at=utc_now())
    # The restore's "input" is the version it came from: a later backfill can tell it apart.
    record.input_fingerprint = f"restore:{path}@v{version}"
    ensure_tables(spark, config, (PIPELINE_RUNS,))
    started = utc_now()
    try:
        io.replace_partition(partition, path, "ship_date", run_date, run_id=run_id)
        committed = io.committed_version(spark, path, run_id)
    except BaseException as exc:
        record.error = describe(exc)
        record_run(spark, config, record)
        raise
    record.status = SUCCEEDED
    record.rows_written = rows_written
    record.table_version = committed
    record_run(spark, config, record)
    result = RestoreResult(
        run_id, run_date, version, committed, rows_written, rows_replaced, (utc_now() - started).total_seconds()
    )
    log.info(result.summary())
    return result
