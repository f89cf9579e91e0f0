"""A backfill pass: consecutive dates computed from one read of their folders, each published,
checked and recorded as its own daily run would be.

Read top to bottom, a pass is: read the union of its dates' folders once -> give every record
the run dates whose window reads its folder (``plan.for_run_dates``) -> keep the latest version
per (run date, shipment) and total per run date: what each isolated run computes -> measure
every date with the same few aggregations, grouped by run date -> judge each date's checks (a
date whose ``fail`` check fails is left out, as its own run would leave it) -> one replaceWhere
commit per table for the passing dates -> audit the totals commit -> one ledger append, one
``dq_results`` append, one metrics append for all dates.

The pass shares one run id across its dates (``pipeline_runs`` rows differ by ``run_date``), so
a totals commit still names the runs that made it. Any error in the pass (a corrupt file, a Delta
conflict, records that do not conserve) raises: the backfill then runs the pass's dates as
isolated runs, so a bad file fails only the dates that read it. A pass killed part-way wrote no
ledger row: a rerun of the backfill recomputes its dates (each replaceWhere is idempotent).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence

from pyspark.sql import SparkSession

from shipments.batch import audit
from shipments.batch.daily import ChecksFailed, DailyResult, input_record, judge_measured, newest_landed, publish_days
from shipments.batch.ledger import FAILED, SUCCEEDED, record_runs, utc_now
from shipments.batch.measure import measure_days
from shipments.batch.plan import daily_plan
from shipments.batch.run_metrics import daily_metrics
from shipments.config import Config
from shipments.errors import describe
from shipments.observe.metrics import publish_metrics
from shipments.quality.results import CheckResult, write_results
from shipments.storage import raw
from shipments.storage.raw import RawListing

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PassDay:
    """One date of a pass: what its run reads, and the fingerprint its ledger row records."""

    run_date: dt.date
    listing: RawListing
    fingerprint: str


@dataclasses.dataclass(frozen=True)
class DayEnd:
    """How a date of a pass ended: published (``result``) or refused by its checks (``failed``)."""

    run_date: dt.date
    result: DailyResult | None = None
    failed: ChecksFailed | None = None


def run_pass(
    spark: SparkSession, config: Config, days: Sequence[PassDay], *, run_id: str, allow_shrink: bool = False
) -> list[DayEnd]:
    """Compute and publish the dates of ``days`` in one pass (see the module). Returns one
    ``DayEnd`` per date, in date order.

    Raises:
        Exception: anything that stops the pass; nothing was recorded for its dates, and the
            caller runs them as isolated daily runs.
    """
    days = sorted(days, key=lambda day: day.run_date)
    dates = [day.run_date for day in days]
    started = utc_now()
    records = {day.run_date: input_record(run_id, day.run_date, day.listing, day.fingerprint, started) for day in days}
    listing = pass_listing(days)
    files, rejected = listing.files, listing.rejected
    customers = raw.read_customers(spark, config.raw)
    checks: dict[dt.date, list[CheckResult]] = {}
    with daily_plan(spark, config, files, customers, run_dates=dates) as plan:
        measured = measure_days(spark, config, plan, dates, files, audit.landed_records(spark, config, files))
        published: dict[dt.date, int] = {}
        for run_date in dates:
            checks[run_date] = judge_measured(
                config,
                records[run_date],
                measured[run_date],
                allow_shrink=allow_shrink,
                earlier=published,
                dimension=run_date == dates[0],
            )
            if not any(r.blocks for r in checks[run_date]):
                published[run_date] = measured[run_date].counts.kept
        written = {d: (measured[d].counts.rows_written, measured[d].counts.kept) for d in published}
        version = publish_days(spark, config, plan, written, rejected, run_id=run_id, at=started) if written else None
    ends: list[DayEnd] = []
    for day in days:
        record = records[day.run_date]
        if day.run_date in published:
            record.status, record.table_version = SUCCEEDED, version
            result = DailyResult.of(record, day.listing, measured[day.run_date].counts, checks[day.run_date])
            ends.append(DayEnd(day.run_date, result=result))
        else:
            refused = ChecksFailed(day.run_date, checks[day.run_date])
            record.status, record.error = FAILED, describe(refused)
            ends.append(DayEnd(day.run_date, failed=refused))
    every_check = [check for run_date in dates for check in checks[run_date]]
    write_results(spark, config, every_check, job="daily", run_id=run_id, checked_at=started)
    record_runs(spark, config, list(records.values()))
    metrics = [
        daily_metrics(records[day.run_date], measured[day.run_date], newest_landed(day.listing.files)) for day in days
    ]
    try:
        publish_metrics(spark, config, *metrics)
    except Exception as exc:  # the dates are published and recorded: running them again would repeat both
        log.warning("run metrics of backfill pass %s not recorded: %s", run_id, describe(exc, 300))
    return ends


def pass_listing(days: Sequence[PassDay]) -> RawListing:
    """What the dates of a pass read, each file once (neighbouring dates share their folders)."""
    files = sorted({f.path: f for day in days for f in day.listing.files}.values())
    rejected = sorted({f.path: f for day in days for f in day.listing.rejected}.values())
    return RawListing(files, rejected)


def pass_days(plans: Sequence[PassDay], max_bytes: int) -> list[list[PassDay]]:
    """``plans`` (date order) cut into passes of consecutive dates whose input (the union of
    their files) stays within ``max_bytes``; a date alone over the cap is a pass of its own."""
    passes: list[list[PassDay]] = []
    current: list[PassDay] = []
    held: dict[str, int] = {}
    for day in sorted(plans, key=lambda d: d.run_date):
        adjacent = current and day.run_date - current[-1].run_date == dt.timedelta(days=1)
        grown = {**held, **{f.path: f.size for f in day.listing.files}}
        if current and (not adjacent or sum(grown.values()) > max_bytes):
            passes.append(current)
            current, grown = [], {f.path: f.size for f in day.listing.files}
        current.append(day)
        held = grown
    if current:
        passes.append(current)
    return passes
