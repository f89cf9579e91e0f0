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
import functools
import logging
from collections.abc import Mapping, Sequence

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.background import Background
from shipments.batch import audit
from shipments.batch.ledger import RunRecord, input_fingerprint, new_run_id, recorded_run, utc_now
from shipments.batch.measure import DailyCounts, Measured, measure_day
from shipments.batch.plan import RUN_DATE, DailyPlan, daily_plan, ingest_dates, raw_layout
from shipments.batch.run_metrics import daily_metrics
from shipments.config import Config
from shipments.errors import EXIT_OK, DataQualityError
from shipments.model.tables import BATCH_TABLES, DAILY_TOTALS, DAILY_TOTALS_SCHEMA, QUARANTINE
from shipments.observe.alerts import process_alerts
from shipments.observe.metrics import publish_metrics
from shipments.quality.judge import judge_day
from shipments.quality.results import CheckResult, failures, write_results
from shipments.storage import delta, driver_rows, raw
from shipments.storage.raw import RawFile, RawListing, RejectedFile
from shipments.transforms.quarantine import to_quarantine_rows, to_quarantined_files

log = logging.getLogger(__name__)

_REJECTED_FILES = T.StructType(
    [
        T.StructField("source_file", T.StringType()),
        T.StructField("ingest_date", T.DateType()),
        T.StructField("reason", T.StringType()),
    ]
)


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

    @classmethod
    def of(
        cls, record: RunRecord, listing: RawListing, counts: DailyCounts, checks: Sequence[CheckResult]
    ) -> DailyResult:
        """The result of the published run ``record`` (of a date alone or of a backfill pass)."""
        if record.run_date is None or record.table_version is None:
            raise ValueError(f"run {record.run_id} has no date or published no version")
        return cls(
            run_id=record.run_id,
            run_date=record.run_date,
            counts=counts,
            table_version=record.table_version,
            input_files=len(listing.files),
            rejected_files=tuple(
                f.path.rsplit("/", 1)[-1] for f in listing.rejected if f.ingest_date == record.run_date
            ),
            seconds=(utc_now() - record.started_at).total_seconds(),
            checks=tuple(checks),
        )

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


def input_record(
    run_id: str, run_date: dt.date, listing: RawListing, fingerprint: str, started_at: dt.datetime | None = None
) -> RunRecord:
    """The ledger record of a daily run of ``run_date`` reading ``listing``, before it measures."""
    record = RunRecord(run_id=run_id, job="daily", run_date=run_date, started_at=started_at or utc_now())
    files = listing.files
    record.update(input_fingerprint=fingerprint, input_files=len(files), input_bytes=sum(f.size for f in files))
    return record


def judge_measured(
    config: Config,
    record: RunRecord,
    measured: Measured,
    *,
    allow_shrink: bool,
    earlier: Mapping[dt.date, int] | None = None,
    dimension: bool = True,
) -> list[CheckResult]:
    """Judge the day's checks on what was measured, put the counts and the failed checks in
    ``record``, log the warnings (``dimension``: see ``warn_day``). ``earlier``: shipments kept by
    dates published before this one and not yet in the ledger (a backfill pass's), which the
    volume check counts in its history as the ledger would hold them."""
    seen = measured.seen
    specs = config.quality.daily
    if earlier:
        weeks = max((s.weeks for s in specs if s.check == "volume"), default=0)
        trailing = {seen.run_date - dt.timedelta(weeks=w) for w in range(1, weeks + 1)}
        history = {**seen.history, **{d: kept for d, kept in earlier.items() if d in trailing}}
        seen = dataclasses.replace(seen, history=history)
    checks = judge_day(specs, seen, allow_shrink=allow_shrink)
    record.update(**measured.counts.ledger_values(), quarantine_reasons=measured.reasons_json())
    record.checks_failed = len(failures(checks))
    warn_day(measured.counts, seen.run_date, checks, dimension=dimension)
    return checks


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
    listing, fingerprint = daily_inputs(spark, config, run_date)
    files = listing.files
    record = input_record(request.run_id or new_run_id("daily", run_date), run_date, listing, fingerprint)
    customers = raw.read_customers(spark, config.raw)
    delta.ensure_tables(spark, config, BATCH_TABLES)
    checks: list[CheckResult] = []
    measured: Measured | None = None
    results: Background[None] | None = None  # the dq_results append, once the checks are judged
    try:
        with recorded_run(spark, config, record):
            try:
                with daily_plan(spark, config, files, customers, run_dates=[run_date]) as plan:
                    measured = measure_day(
                        spark, config, plan, run_date, files, audit.landed_records(spark, config, files)
                    )
                    counts = measured.counts
                    checks = judge_measured(config, record, measured, allow_shrink=request.allow_shrink)
                    # The results' append (another table) overlaps the publication; it is done
                    # before the ledger row, as when it followed it.
                    append = functools.partial(
                        write_results,
                        spark,
                        config,
                        checks,
                        job="daily",
                        run_id=record.run_id,
                        checked_at=record.started_at,
                    )
                    results = Background(append, "daily-dq-results")
                    if any(r.blocks for r in checks):
                        raise ChecksFailed(run_date, checks)
                    written = {run_date: (counts.rows_written, counts.kept)}
                    record.table_version = publish_days(
                        spark, config, plan, written, listing.rejected, run_id=record.run_id, at=record.started_at
                    )
            except Exception as exc:
                # Spark's error for a truncated .gz does not name the file: find it and say so.
                unreadable = raw.unreadable_input_error(spark, files, exc)
                if unreadable is None:
                    raise
                raise unreadable from exc
            finally:
                if results is not None:  # (a run that failed before judging has no result to record)
                    results.result()
    finally:
        _observe(spark, config, record, measured, checks, newest_landed=newest_landed(files), alerts=request.alerts)
    result = DailyResult.of(record, listing, counts, checks)
    log.info(result.summary())
    return result


def publish_days(
    spark: SparkSession,
    config: Config,
    plan: DailyPlan,
    written: Mapping[dt.date, tuple[int, int]],
    rejected: Sequence[RejectedFile],
    *,
    run_id: str,
    at: dt.datetime,
) -> int:
    """Publish the run dates of ``written`` (date -> the customer rows and shipments measured for
    it) from ``plan``: replace their quarantine partitions (rejected lines and the ``rejected``
    files landed on them), then their totals partitions, one commit per table tagged ``run_id``.
    The totals commit publishes: a run killed between the two leaves the published days as they
    were (beside the new quarantine; the next run replaces both). The totals commit is then
    audited (``audit.verify_written``). Returns its version."""
    if plan.totals is None:
        raise ValueError("the daily plan was built without customers")
    dates = sorted(written)
    quarantine = to_quarantine_rows(plan.validated, dates, run_id, at)
    files = [(f.path, f.ingest_date, f.reason) for f in rejected if f.ingest_date in written]
    if files:
        quarantine = quarantine.unionByName(
            to_quarantined_files(driver_rows.to_frame(spark, files, _REJECTED_FILES), run_id, at)
        )
    delta.replace_partitions(quarantine, QUARANTINE.path(config), "ingest_date", dates, run_id=run_id)
    on_day = (F.col("ship_date") == F.col(RUN_DATE)) & F.col(RUN_DATE).isin(*dates)
    day_totals = plan.totals.filter(on_day).select(*DAILY_TOTALS_SCHEMA.fieldNames())
    delta.replace_partitions(day_totals, DAILY_TOTALS.path(config), "ship_date", dates, run_id=run_id)
    version = delta.committed_version(spark, DAILY_TOTALS.path(config), run_id)
    audit.verify_written(spark, config, version, written, run_id=run_id)
    return version


def newest_landed(files: Sequence[RawFile]) -> dt.datetime | None:
    """When the newest of ``files`` landed (its modification time), None for no file."""
    landed_ms = max((f.modified_ms for f in files), default=None)
    return None if landed_ms is None else dt.datetime.fromtimestamp(landed_ms / 1000, dt.UTC)


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


def warn_day(counts: DailyCounts, run_date: dt.date, checks: list[CheckResult], *, dimension: bool = True) -> None:
    """Log the day's failed checks and unknown customers, and (``dimension``: a backfill pass
    says it once, for all its dates) the dimension's duplicates, one warning each."""
    for result in failures(checks):
        log.warning("data quality: %s", result.describe())
    if dimension and counts.dimension_duplicates:
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
