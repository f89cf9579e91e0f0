"""The daily batch job: raw shipments of one ship date -> ``shipment_daily_totals``.

Read top to bottom, a run is: list the input -> build the daily plan (read, validate, keep the
latest version of each shipment, join customers, aggregate) -> measure it (every record
accounted for, and what the configured checks judge) -> write (quarantine, then the totals:
the totals commit is the day's publication) -> audit it -> record the checks in
``dq_results`` and the run in ``pipeline_runs`` -> metrics and alerts.

Write-audit-publish: checks are judged before anything is written; a failed ``fail`` check
stops the run with partition D untouched, so readers never see a day that failed its checks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.batch import audit
from shipments.batch.ledger import RunRecord, input_fingerprint, new_run_id, recorded_run, utc_now
from shipments.batch.measure import DailyCounts, Measured, measure_day
from shipments.batch.plan import DailyPlan, daily_plan, ingest_dates, raw_layout
from shipments.batch.run_metrics import daily_metrics
from shipments.config import Config
from shipments.errors import EXIT_OK, DataQualityError
from shipments.model.tables import BATCH_TABLES, DAILY_TOTALS, DAILY_TOTALS_SCHEMA, QUARANTINE
from shipments.observe.alerts import process_alerts
from shipments.observe.metrics import publish_metrics
from shipments.quality.judge import judge_day
from shipments.quality.results import CheckResult, failures, write_results
from shipments.storage import delta, driver_rows, raw
from shipments.storage.raw import RawListing, RejectedFile
from shipments.transforms.quarantine import to_quarantine_rows, to_quarantined_files

log = logging.getLogger(__name__)

_REJECTED_FILES = T.StructType([T.StructField("source_file", T.StringType()), T.StructField("reason", T.StringType())])


@dataclasses.dataclass(frozen=True)
class DailyRequest:
    """``shipments daily --date D``."""

    run_date: dt.date
    run_id: str | None = None
    # --allow-shrink: the run may replace D with fewer shipments than the shrink check allows.
    allow_shrink: bool = False
    # Raise this run's alerts itself (a backfill raises them once, for all its dates).
    alerts: bool = True


class ChecksFailed(DataQualityError):
    """A ``fail`` check failed: the day was not published. ``results`` holds every check."""

    def __init__(self, run_date: dt.date, results: list[CheckResult]) -> None:
        blocking = [r for r in results if r.blocks]
        shown = "; ".join(f"{r.spec.label}: {r.detail}" for r in blocking[:3])
        more = f" (and {len(blocking) - 3} more)" if len(blocking) > 3 else ""
        super().__init__(f"{len(blocking)} check(s) failed for {run_date}, the day was not published: {shown}{more}")
        self.results = results


@dataclasses.dataclass(frozen=True)
class DailyResult:
    run_id: str
    run_date: dt.date
    counts: DailyCounts
    table_version: int
    input_files: int
    rejected_files: tuple[str, ...]
    seconds: float
    checks: tuple[CheckResult, ...] = ()
    exit_code: int = EXIT_OK

    def summary(self) -> str:
        c = self.counts
        return (
            f"daily {self.run_date}: {c.rows_written} customer rows written (table version {self.table_version}); "
            f"records read {c.read} = kept {c.kept} + other dates {c.other_dates} + duplicates {c.duplicates} "
            f"+ quarantined {c.quarantined} + deleted {c.deleted}; unknown customers {c.unknown_customers} "
            f"({c.unknown_customer_rows} shipments); files {self.input_files}{self._rejected()}; "
            f"{self._checks()}; {self.seconds:.1f}s; run {self.run_id}"
        )

    def _checks(self) -> str:
        failed = failures(self.checks)
        if not failed:
            return f"checks {len(self.checks)} passed"
        names = ", ".join(f"{r.spec.label} ({r.spec.severity})" for r in failed)
        return f"checks {len(self.checks) - len(failed)} passed, {len(failed)} failed: {names}"

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

    Writes partition ``ingest_date = D`` of ``quarantine/shipments``, then partition D of
    ``shipment_daily_totals`` (the publication), each atomically; on any failure before the
    totals commit the published day does not change, and a FAILED row is recorded. Every
    check's outcome goes to ``dq_results``, whatever the run's end.

    Raises:
        InputError: the day's raw folder or the customer dimension is missing, or an input file
            is corrupt (named).
        ChecksFailed: a ``fail`` check failed; nothing was published.
        DataQualityError: records do not conserve, or a total overflows; nothing is written.
    """
    run_date = request.run_date
    record = RunRecord(run_id=request.run_id or new_run_id("daily", run_date), job="daily", run_date=run_date)
    listing, fingerprint = daily_inputs(spark, config, run_date)
    files = listing.files
    record.update(input_fingerprint=fingerprint, input_files=len(files), input_bytes=sum(f.size for f in files))
    customers = raw.read_customers(spark, config.raw)
    delta.ensure_tables(spark, config, BATCH_TABLES)
    checks: list[CheckResult] = []
    measured: Measured | None = None
    try:
        with recorded_run(spark, config, record):
            try:
                with daily_plan(spark, config, files, customers) as plan:
                    measured = measure_day(
                        spark, config, plan, run_date, files, audit.landed_records(spark, config, files)
                    )
                    counts = measured.counts
                    record.update(**counts.ledger_values(), quarantine_reasons=measured.reasons_json())
                    checks = judge_day(config.quality.daily, measured.seen, allow_shrink=request.allow_shrink)
                    record.checks_failed = len(failures(checks))
                    _warn(counts, run_date, checks)
                    if any(r.blocks for r in checks):
                        raise ChecksFailed(run_date, checks)
                    rejected = [f for f in listing.rejected if f.ingest_date == run_date]
                    record.table_version = _publish(spark, config, plan, run_date, record, rejected)
            except Exception as exc:
                # Spark's error for a truncated .gz does not name the file: find it and say so.
                unreadable = raw.unreadable_input_error(spark, files, exc)
                if unreadable is None:
                    raise
                raise unreadable from exc
            finally:
                write_results(spark, config, checks, job="daily", run_id=record.run_id, checked_at=record.started_at)
    finally:
        landed_ms = max((f.modified_ms for f in files), default=None)
        newest_landed = None if landed_ms is None else dt.datetime.fromtimestamp(landed_ms / 1000, dt.UTC)
        _observe(spark, config, record, measured, checks, newest_landed=newest_landed, alerts=request.alerts)
    result = DailyResult(
        run_id=record.run_id,
        run_date=run_date,
        counts=counts,
        table_version=record.table_version,
        input_files=len(files),
        rejected_files=tuple(f.path.rsplit("/", 1)[-1] for f in listing.rejected if f.ingest_date == run_date),
        seconds=(utc_now() - record.started_at).total_seconds(),
        checks=tuple(checks),
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
    """Replace D's quarantine (rejected lines and files landed on D), then D's totals: the
    totals commit publishes the day, so a run killed between the two leaves the published day
    as it was (beside the new quarantine; the next run replaces both). Returns the totals'
    commit version."""
    if plan.totals is None:
        raise ValueError("the daily plan was built without customers")
    quarantine = to_quarantine_rows(plan.validated, run_date, record.run_id, record.started_at)
    if rejected:
        files = driver_rows.to_frame(spark, [(f.path, f.reason) for f in rejected], _REJECTED_FILES)
        quarantine = quarantine.unionByName(to_quarantined_files(files, run_date, record.run_id, record.started_at))
    delta.replace_partition(quarantine, QUARANTINE.path(config), "ingest_date", run_date, run_id=record.run_id)
    day_totals = plan.totals.filter(F.col("ship_date") == F.lit(run_date)).select(*DAILY_TOTALS_SCHEMA.fieldNames())
    delta.replace_partition(day_totals, DAILY_TOTALS.path(config), "ship_date", run_date, run_id=record.run_id)
    version = delta.committed_version(spark, DAILY_TOTALS.path(config), record.run_id)
    written = {"rows": record.rows_written or 0, "shipments": record.rows_kept or 0}
    audit.verify_written(spark, config, run_date, version, run_id=record.run_id, **written)
    return version


def _observe(
    spark: SparkSession,
    config: Config,
    record: RunRecord,
    measured: Measured | None,
    checks: list[CheckResult],
    *,
    newest_landed: dt.datetime | None,
    alerts: bool,
) -> None:
    """The run's metrics, and its alerts unless a backfill raises them for all its dates.
    Neither may fail the run: their sinks log what they could not deliver."""
    publish_metrics(spark, config, daily_metrics(record, measured, newest_landed))
    if alerts and checks:
        process_alerts(spark, config, checks, job="daily", run_id=record.run_id)


def _warn(counts: DailyCounts, run_date: dt.date, checks: list[CheckResult]) -> None:
    for result in failures(checks):
        log.warning("data quality: %s", result.describe())
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
