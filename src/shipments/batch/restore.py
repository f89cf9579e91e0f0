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

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments.batch.ledger import RunRecord, new_run_id, recorded_run, utc_now
from shipments.config import Config
from shipments.errors import EXIT_OK, TableError, describe
from shipments.model.tables import DAILY_TOTALS, DAILY_TOTALS_SCHEMA
from shipments.storage import delta, fs

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RestoreRequest:
    """``shipments restore --date D --to-version V``."""

    run_date: dt.date
    to_version: int

    def __post_init__(self) -> None:
        if not isinstance(self.to_version, int) or self.to_version < 0:
            raise TableError(f"version must be a whole number >= 0, got {self.to_version!r}")


@dataclasses.dataclass(frozen=True)
class RestoreResult:
    run_id: str
    run_date: dt.date
    from_version: int
    table_version: int
    rows_written: int
    rows_replaced: int
    seconds: float
    exit_code: int = EXIT_OK

    def summary(self) -> str:
        return (
            f"restore {self.run_date}: partition put back as of table version {self.from_version} "
            f"({self.rows_written} customer rows, replacing {self.rows_replaced}); committed as table version "
            f"{self.table_version}; other dates untouched; {self.seconds:.1f}s; run {self.run_id}"
        )


def read_partition_at(spark: SparkSession, config: Config, run_date: dt.date, version: int) -> DataFrame:
    """Partition ``run_date`` of the Delta table at ``path`` as of ``version`` (time travel).

    Raises:
        TableError: the version cannot be read any more (log cleaned up or files vacuumed).
    """
    path = DAILY_TOTALS.path(config)
    try:
        at_version = delta.read_version(spark, config, DAILY_TOTALS, version)
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
    missing = [f for f in day_files if not fs.exists(spark, f)]
    if missing:
        raise TableError(
            f"version {version} of {path} can no longer be restored: "
            f"{len(missing)} of its {len(day_files)} data file(s) "
            f"for {run_date} were removed by VACUUM (e.g. {missing[0]}); pick a version newer than the vacuum "
            f"retention, or rerun `shipments daily --date {run_date}` from raw"
        )
    return partition


def run_restore(spark: SparkSession, config: Config, request: RestoreRequest) -> RestoreResult:
    """Replace partition D of ``shipment_daily_totals`` with its content at version V and record
    a ``restore`` run in ``pipeline_runs``.

    Raises:
        TableError: the table does not exist, V is not in its history or was vacuumed, or D has
            no rows at V (restoring would delete the partition).
    """
    run_date, version = request.run_date, request.to_version
    path = DAILY_TOTALS.path(config)
    current = delta.read_table(spark, config, DAILY_TOTALS)
    if current is None:
        raise TableError(f"no Delta table at {path}: nothing to restore (check --lake)")
    oldest, latest = delta.version_range(spark, config, DAILY_TOTALS)
    if not oldest <= version <= latest:
        raise TableError(f"version {version} of {path} does not exist: the history holds versions {oldest}..{latest}")
    partition = read_partition_at(spark, config, run_date, version)
    rows_written = partition.count()
    if rows_written == 0:
        raise TableError(
            f"{run_date} has no rows in version {version} of {path}: restoring would delete the partition; "
            f"pick a version that holds the date"
        )
    rows_replaced = current.filter(F.col("ship_date") == F.lit(run_date)).count()

    # The restore's "input" is the version it came from: a later backfill can tell it apart.
    record = RunRecord(
        run_id=new_run_id("restore", run_date),
        job="restore",
        run_date=run_date,
        input_fingerprint=f"restore:{path}@v{version}",
    )
    with recorded_run(spark, config, record):
        delta.replace_partition(partition, path, "ship_date", run_date, run_id=record.run_id)
        record.update(rows_written=rows_written, table_version=delta.committed_version(spark, path, record.run_id))
    result = RestoreResult(
        record.run_id,
        run_date,
        version,
        int(record.table_version or 0),
        rows_written,
        rows_replaced,
        (utc_now() - record.started_at).total_seconds(),
    )
    log.info(result.summary())
    return result
