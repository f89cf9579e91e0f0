"""The daily batch job: raw shipments of one ship date -> ``shipment_daily_totals``.

Read top to bottom, a run is: list the input -> build the daily plan (read, validate, keep the
latest version of each shipment, join customers, aggregate) -> check that every record is
accounted for -> replace the day's partition -> quarantine the day's rejected lines -> record
the run in ``pipeline_runs``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.batch import audit
from shipments.batch.ledger import RunRecord, input_fingerprint, new_run_id, recorded_run, utc_now
from shipments.batch.plan import DailyPlan, daily_plan, ingest_dates, raw_layout
from shipments.config import Config
from shipments.errors import EXIT_OK, DataQualityError
from shipments.model.tables import BATCH_TABLES, DAILY_TOTALS, DAILY_TOTALS_SCHEMA, QUARANTINE
from shipments.storage import delta, raw
from shipments.storage.raw import RawListing, RejectedFile
from shipments.transforms.quarantine import to_quarantine_rows, to_quarantined_files

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DailyRequest:
    """``shipments daily --date D``."""

    run_date: dt.date
    run_id: str | None = None


@dataclasses.dataclass(frozen=True)
class DailyCounts:
    """Where every record read ended up:
    ``read == kept + other_dates + duplicates + quarantined + deleted`` (deleted: shipments
    whose latest version is a DMS delete)."""

    read: int
    kept: int
    other_dates: int
    duplicates: int
    quarantined: int
    deleted: int
    unknown_customers: int
    unknown_customer_rows: int
    dimension_duplicates: int
    rows_written: int

    @property
    def conserved(self) -> bool:
        return self.read == self.kept + self.other_dates + self.duplicates + self.quarantined + self.deleted

    def ledger_values(self) -> dict[str, int]:
        """The counts under their ``pipeline_runs`` column names."""
        return {
            "rows_read": self.read,
            "rows_duplicates": self.duplicates,
            "rows_quarantined": self.quarantined,
            "rows_deleted": self.deleted,
            "rows_other_dates": self.other_dates,
            "rows_kept": self.kept,
            "unknown_customers": self.unknown_customers,
            "unknown_customer_rows": self.unknown_customer_rows,
            "dimension_duplicates": self.dimension_duplicates,
            "rows_written": self.rows_written,
        }


@dataclasses.dataclass(frozen=True)
class DailyResult:
    run_id: str
    run_date: dt.date
    counts: DailyCounts
    table_version: int
    input_files: int
    rejected_files: tuple[str, ...]
    seconds: float
    exit_code: int = EXIT_OK

    def summary(self) -> str:
        c = self.counts
        return (
            f"daily {self.run_date}: {c.rows_written} customer rows written (table version {self.table_version}); "
            f"records read {c.read} = kept {c.kept} + other dates {c.other_dates} + duplicates {c.duplicates} "
            f"+ quarantined {c.quarantined} + deleted {c.deleted}; unknown customers {c.unknown_customers} "
            f"({c.unknown_customer_rows} shipments); files {self.input_files}{self._rejected()}; "
            f"{self.seconds:.1f}s; run {self.run_id}"
        )

    def _rejected(self) -> str:
        if not self.rejected_files:
            return ""
        names = ", ".join(self.rejected_files[:3]) + (", ..." if len(self.rejected_files) > 3 else "")
        return f" ({len(self.rejected_files)} not data, quarantined: {names})"


def daily_inputs(spark: SparkSession, config: Config, run_date: dt.date) -> tuple[RawListing, str]:
    """What the job for ``run_date`` reads (and rejects), and the fingerprint of its whole input.

    The fingerprint covers every raw file (path, size, modification time, content checksum),
    every rejected file, every customer file, and the settings that shape what is read, so a
    backfill can tell whether a rerun would read anything different.

    Raises:
        InputError: the day's raw folder or the customer dimension is missing.
    """
    listing = raw.list_raw_files(
        spark, config.raw, ingest_dates(run_date, config), raw_layout(config), required=run_date
    )
    customer_files = raw.list_customer_files(spark, config.raw)
    daily = config.daily
    settings = (daily.lookbehind_days, daily.lookback_days, daily.layout, daily.raw_format, daily.dms_date_folder)
    fingerprint = input_fingerprint(listing.files, *settings, daily.source_timezone, *listing.rejected, *customer_files)
    return listing, fingerprint


def run_daily(spark: SparkSession, config: Config, request: DailyRequest) -> DailyResult:
    """Run the daily job for ``request.run_date`` and record it in ``pipeline_runs``.

    Writes partition D of ``shipment_daily_totals`` and partition ``ingest_date = D`` of
    ``quarantine/shipments``, each atomically; on any failure before the commit neither table
    changes, and a FAILED row is recorded.

    Raises:
        InputError: the day's raw folder or the customer dimension is missing, or an input file
            is corrupt (named).
        DataQualityError: records do not conserve, or a total overflows; nothing is written.
    """
    run_date = request.run_date
    record = RunRecord(run_id=request.run_id or new_run_id("daily", run_date), job="daily", run_date=run_date)
    listing, fingerprint = daily_inputs(spark, config, run_date)
    files = listing.files
    record.update(input_fingerprint=fingerprint, input_files=len(files), input_bytes=sum(f.size for f in files))
    customers = raw.read_customers(spark, config.raw)
    delta.ensure_tables(spark, config, BATCH_TABLES)
    with recorded_run(spark, config, record):
        try:
            with daily_plan(spark, config, files, customers) as plan:
                counts = _count(plan, run_date, audit.landed_records(spark, config, files))
                record.update(**counts.ledger_values())
                _warn(counts, run_date)
                rejected = [f for f in listing.rejected if f.ingest_date == run_date]
                record.table_version = _publish(spark, config, plan, run_date, record, rejected)
        except Exception as exc:
            # Spark's error for a truncated .gz does not name the file: find it and say so.
            unreadable = raw.unreadable_input_error(spark, files, exc)
            if unreadable is None:
                raise
            raise unreadable from exc
    result = DailyResult(
        run_id=record.run_id,
        run_date=run_date,
        counts=counts,
        table_version=record.table_version,
        input_files=len(files),
        rejected_files=tuple(f.path.rsplit("/", 1)[-1] for f in listing.rejected if f.ingest_date == run_date),
        seconds=(utc_now() - record.started_at).total_seconds(),
    )
    log.info(result.summary())
    return result


def _publish(
    spark: SparkSession,
    config: Config,
    plan: DailyPlan,
    run_date: dt.date,
    record: RunRecord,
    rejected: list[RejectedFile],
) -> int:
    """Replace D's totals, then D's quarantine (rejected lines and files landed on D); returns
    the totals' commit version."""
    if plan.totals is None:
        raise ValueError("the daily plan was built without customers")
    day_totals = plan.totals.filter(F.col("ship_date") == F.lit(run_date)).select(*DAILY_TOTALS_SCHEMA.fieldNames())
    delta.replace_partition(day_totals, DAILY_TOTALS.path(config), "ship_date", run_date, run_id=record.run_id)
    version = delta.committed_version(spark, DAILY_TOTALS.path(config), record.run_id)
    written = {"rows": record.rows_written or 0, "shipments": record.rows_kept or 0}
    audit.verify_written(spark, config, run_date, version, run_id=record.run_id, **written)
    quarantine = to_quarantine_rows(plan.validated, run_date, record.run_id, record.started_at)
    if rejected:
        files = spark.createDataFrame([(f.path, f.reason) for f in rejected], "source_file string, reason string")
        quarantine = quarantine.unionByName(to_quarantined_files(files, run_date, record.run_id, record.started_at))
    delta.replace_partition(quarantine, QUARANTINE.path(config), "ingest_date", run_date, run_id=record.run_id)
    return version


def _warn(counts: DailyCounts, run_date: dt.date) -> None:
    if counts.dimension_duplicates:
        log.warning(
            "data quality: %d customer_id(s) appear more than once in the customer dimension; "
            "kept the row with the most non-blank attributes (then the smallest) for each",
            counts.dimension_duplicates,
        )
    if counts.unknown_customers:
        log.warning(
            "data quality: %d customer_id(s) on %s are missing from the dimension (%d shipments, shown as UNKNOWN)",
            counts.unknown_customers,
            run_date,
            counts.unknown_customer_rows,
        )


def _count(plan: DailyPlan, run_date: dt.date, landed: dict[str, int]) -> DailyCounts:
    """All of a run's counts, in one aggregation per cached frame, checked before any write;
    ``landed``: the records each input file holds, counted apart from the parse
    (``audit.landed_records``).

    Raises:
        DataQualityError: the parse lost or gained records, the counts do not conserve records,
            or a total overflowed.
    """
    if plan.totals is None or plan.customers is None:
        raise ValueError("the daily plan was built without customers")
    # Rows and rejects per file in one pass: the audit compares the former with what the files
    # hold, and their sums are the run's read and quarantined counts.
    per_file = plan.validated.groupBy("source_file").agg(
        F.count(F.lit(1)).alias("read"), F.count("reason").alias("quarantined")
    )
    files = {row["source_file"]: (int(row["read"]), int(row["quarantined"])) for row in per_file.collect()}
    audit.check_read(landed, {path: read for path, (read, _) in files.items()}, run_date)
    lines = {"read": sum(r for r, _ in files.values()), "quarantined": sum(q for _, q in files.values())}
    on_day = F.col("ship_date") == F.lit(run_date)
    latest = plan.latest.agg(
        F.count(F.lit(1)).alias("shipments"), F.count(F.when(F.col("deleted"), True)).alias("deleted")
    )
    latest_counts = latest.collect()[0]
    sums = plan.totals.agg(
        F.coalesce(F.sum(F.when(on_day, F.col("shipment_count"))), F.lit(0)).alias("kept"),
        F.coalesce(F.sum(F.when(~on_day, F.col("shipment_count"))), F.lit(0)).alias("other_dates"),
        F.count(F.when(on_day, True)).alias("rows_written"),
        F.count(F.when(on_day & ~F.col("customer_known"), True)).alias("unknown_customers"),
        F.coalesce(F.sum(F.when(on_day & ~F.col("customer_known"), F.col("shipment_count"))), F.lit(0)).alias(
            "unknown_rows"
        ),
        F.count(F.when(F.col("total_charge_usd").isNull(), True)).alias("overflows"),
    ).collect()[0]
    dimension_duplicates = plan.customers.filter(F.col("copies") > 1).count()

    valid = lines["read"] - lines["quarantined"]
    counts = DailyCounts(
        read=lines["read"],
        kept=sums["kept"],
        other_dates=sums["other_dates"],
        duplicates=valid - latest_counts["shipments"],
        quarantined=lines["quarantined"],
        deleted=latest_counts["deleted"],
        unknown_customers=sums["unknown_customers"],
        unknown_customer_rows=sums["unknown_rows"],
        dimension_duplicates=dimension_duplicates,
        rows_written=sums["rows_written"],
    )
    if sums["overflows"]:
        raise DataQualityError(
            f"{sums['overflows']} total_charge_usd sum(s) overflow decimal(18,2); nothing was written"
        )
    if not counts.conserved:
        raise DataQualityError(
            f"records do not conserve for {run_date}: read {counts.read} != kept {counts.kept} + other dates "
            f"{counts.other_dates} + duplicates {counts.duplicates} + quarantined {counts.quarantined} "
            f"+ deleted {counts.deleted} "
            f"(the customer join gained or lost rows); nothing was written"
        )
    return counts
