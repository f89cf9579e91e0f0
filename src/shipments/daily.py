"""The daily batch job: raw shipments of one ship date -> ``shipment_daily_totals``.

Read top to bottom, a run is: list the input -> read -> validate -> keep the latest version
of each shipment -> join customers -> aggregate -> check that every record is accounted for
-> replace the day's partition -> quarantine the day's invalid lines -> record the run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments import io
from shipments.config import Config
from shipments.errors import DataQualityError, describe
from shipments.ledger import SUCCEEDED, RunRecord, input_fingerprint, new_run_id, record_run, utc_now
from shipments.schemas import DAILY_TOTALS_SCHEMA, QUARANTINE_SCHEMA
from shipments.tables import DAILY_TOTALS, QUARANTINE, ensure_tables
from shipments.transforms.aggregate import to_daily_totals
from shipments.transforms.dedup import to_latest_versions
from shipments.transforms.enrich import to_customer_dimension, with_customer
from shipments.transforms.validate import filter_invalid, filter_valid, parse_json_lines, with_validation

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DailyCounts:
    """Where every line read ended up. ``read == kept + other_dates + duplicates + quarantined``."""

    read: int
    kept: int
    other_dates: int
    duplicates: int
    quarantined: int
    quarantined_today: int
    unknown_customers: int
    unknown_customer_rows: int
    dimension_duplicates: int
    rows_written: int

    @property
    def conserved(self) -> bool:
        return self.read == self.kept + self.other_dates + self.duplicates + self.quarantined


@dataclasses.dataclass(frozen=True)
class DailyResult:
    run_id: str
    run_date: dt.date
    counts: DailyCounts
    table_version: int
    input_files: int
    seconds: float

    def summary(self) -> str:
        c = self.counts
        return (
            f"daily {self.run_date}: {c.rows_written} customer rows written (table version {self.table_version}); "
            f"lines read {c.read} = kept {c.kept} + other dates {c.other_dates} + duplicates {c.duplicates} "
            f"+ quarantined {c.quarantined}; unknown customers {c.unknown_customers} "
            f"({c.unknown_customer_rows} shipments); files {self.input_files}; {self.seconds:.1f}s; run {self.run_id}"
        )


def ingest_dates(run_date: dt.date, lookback_days: int) -> list[dt.date]:
    """The ingest partitions the job for ``run_date`` reads: D .. D+lookback."""
    return [run_date + dt.timedelta(days=i) for i in range(lookback_days + 1)]


def daily_inputs(spark: SparkSession, config: Config, run_date: dt.date) -> tuple[list[io.RawFile], str]:
    """The raw files the job for ``run_date`` reads, and the fingerprint of its whole input.

    The fingerprint covers every raw file and customer file (path, size, modification time)
    and the settings that shape what is read, so a backfill can tell whether a rerun would
    read anything different.

    Raises:
        InputError: the day's raw folder or the customer dimension is missing.
    """
    files = io.list_raw_files(spark, config.raw, ingest_dates(run_date, config.daily.lookback_days), config.daily.raw_format)
    customer_files = io.list_customer_files(spark, config.raw)
    fingerprint = input_fingerprint(files, config.daily.lookback_days, config.daily.raw_format, *customer_files)
    return files, fingerprint


def read_shipment_lines(spark: SparkSession, config: Config, files: list[io.RawFile]) -> DataFrame:
    """The raw files as parsed lines (``parse_json_lines``'s columns), JSON or CSV per config."""
    if config.daily.raw_format == "csv":
        return io.read_raw_csv(spark, files)
    return io.read_raw_lines(spark, files).transform(parse_json_lines)


def run_daily(spark: SparkSession, config: Config, run_date: dt.date, *, run_id: str | None = None) -> DailyResult:
    """Run the daily job for ``run_date`` and record it in ``pipeline_runs``.

    Writes partition ``run_date`` of ``shipment_daily_totals`` and partition
    ``ingest_date = run_date`` of ``quarantine/shipments``, each atomically; on any failure
    before the commit neither table changes, and a FAILED row is recorded.

    Raises:
        InputError: the day's raw folder or the customer dimension is missing.
        DataQualityError: records do not conserve, or a total overflows; nothing is written.
    """
    run_id = run_id or new_run_id("daily", run_date)
    record = RunRecord(run_id=run_id, job="daily", run_date=run_date, started_at=utc_now())
    files, record.input_fingerprint = daily_inputs(spark, config, run_date)
    customers = io.read_customers(spark, config.raw)
    record.input_files = len(files)
    record.input_bytes = sum(f.size for f in files)
    ensure_tables(spark, config)
    try:
        result = _process(spark, config, run_date, run_id, files, customers, record)
    except BaseException as exc:
        # Spark's error for a truncated .gz does not name the file: find it and say so.
        unreadable = io.unreadable_input_error(spark, files, exc)
        failure = unreadable or exc
        record.error = describe(failure)
        record_run(spark, config, record)
        if unreadable is not None:
            raise unreadable from exc
        raise
    record.status = SUCCEEDED
    record_run(spark, config, record)
    log.info(result.summary())
    return result


def _process(
    spark: SparkSession,
    config: Config,
    run_date: dt.date,
    run_id: str,
    files: list[io.RawFile],
    customers_raw: DataFrame,
    record: RunRecord,
) -> DailyResult:
    started = utc_now()
    parsed = read_shipment_lines(spark, config, files)

    # JSON parsing is most of the cost: parse once, then serve counts, totals and quarantine from
    # the cached result. The cache must stay: on an uncached frame the optimizer pushes the
    # `reason` filters below the projection and re-evaluates from_json once per reference (about
    # 30 times a line). _DESER (what DataFrame.cache() uses) keeps the cached column batches as
    # objects; PySpark's plain MEMORY_AND_DISK also serializes them, which cost ~15% of the
    # caching pass here (bench/README.md, "daily job" notes).
    validated = parsed.transform(with_validation).persist(StorageLevel.MEMORY_AND_DISK_DESER)
    customers = customers_raw.transform(to_customer_dimension).persist()
    latest = validated.transform(filter_valid).transform(to_latest_versions).persist(StorageLevel.MEMORY_AND_DISK_DESER)
    # Totals for every ship date seen, not only D: their counts prove nothing fanned out or was
    # lost in the join; only D's rows are written.
    totals = latest.transform(with_customer, customers).transform(to_daily_totals).persist()
    try:
        counts = _count(validated, latest, totals, customers, run_date)
        record.rows_read = counts.read
        record.rows_duplicates = counts.duplicates
        record.rows_quarantined = counts.quarantined
        record.rows_other_dates = counts.other_dates
        record.rows_kept = counts.kept
        record.unknown_customers = counts.unknown_customers
        record.unknown_customer_rows = counts.unknown_customer_rows
        record.dimension_duplicates = counts.dimension_duplicates
        record.rows_written = counts.rows_written
        if counts.dimension_duplicates:
            log.warning(
                "data quality: %d customer_id(s) appear more than once in the customer dimension; "
                "kept the first row by (customer_name, segment, region) for each",
                counts.dimension_duplicates,
            )
        if counts.unknown_customers:
            log.warning(
                "data quality: %d customer_id(s) on %s are missing from the dimension (%d shipments, shown as UNKNOWN)",
                counts.unknown_customers,
                run_date,
                counts.unknown_customer_rows,
            )

        day_totals = totals.filter(F.col("ship_date") == F.lit(run_date)).select(*DAILY_TOTALS_SCHEMA.fieldNames())
        io.replace_partition(day_totals, DAILY_TOTALS.path(config), "ship_date", run_date, run_id=run_id)
        version = record.table_version = io.committed_version(spark, DAILY_TOTALS.path(config), run_id)

        quarantine = (
            validated.transform(filter_invalid)
            .filter(F.col("ingest_date") == F.lit(run_date))
            .select(
                *[F.col(name) for name in ("ingest_date", "ship_date", "shipment_id", "reason", "raw_text", "source_file")],
                F.lit(run_id).alias("run_id"),
                F.lit(started).cast("timestamp").alias("quarantined_at"),
            )
            .select(*QUARANTINE_SCHEMA.fieldNames())
        )
        io.replace_partition(quarantine, QUARANTINE.path(config), "ingest_date", run_date, run_id=run_id)
    finally:
        for frame in (totals, latest, customers, validated):
            frame.unpersist()
    return DailyResult(
        run_id=run_id,
        run_date=run_date,
        counts=counts,
        table_version=version,
        input_files=len(files),
        seconds=(utc_now() - started).total_seconds(),
    )


def _count(
    validated: DataFrame, latest: DataFrame, totals: DataFrame, customers: DataFrame, run_date: dt.date
) -> DailyCounts:
    """All of a run's counts, in one aggregation per cached frame, checked before any write.

    Raises:
        DataQualityError: the counts do not conserve records, or a total overflowed.
    """
    on_day = F.col("ship_date") == F.lit(run_date)
    lines = validated.agg(
        F.count(F.lit(1)).alias("read"),
        F.count("reason").alias("quarantined"),
        F.count(F.when(F.col("reason").isNotNull() & (F.col("ingest_date") == F.lit(run_date)), True)).alias("today"),
    ).collect()[0]
    latest_count = latest.count()
    sums = totals.agg(
        F.coalesce(F.sum(F.when(on_day, F.col("shipment_count"))), F.lit(0)).alias("kept"),
        F.coalesce(F.sum(F.when(~on_day, F.col("shipment_count"))), F.lit(0)).alias("other_dates"),
        F.count(F.when(on_day, True)).alias("rows_written"),
        F.count(F.when(on_day & ~F.col("customer_known"), True)).alias("unknown_customers"),
        F.coalesce(F.sum(F.when(on_day & ~F.col("customer_known"), F.col("shipment_count"))), F.lit(0)).alias("unknown_rows"),
        F.count(F.when(F.col("total_charge_usd").isNull(), True)).alias("overflows"),
    ).collect()[0]
    dimension_duplicates = customers.filter(F.col("copies") > 1).count()

    valid = lines["read"] - lines["quarantined"]
    counts = DailyCounts(
        read=lines["read"],
        kept=sums["kept"],
        other_dates=sums["other_dates"],
        duplicates=valid - latest_count,
        quarantined=lines["quarantined"],
        quarantined_today=lines["today"],
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
            f"(the customer join gained or lost rows); nothing was written"
        )
    return counts
