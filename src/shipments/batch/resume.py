"""Which dates a backfill runs: a date is skipped when its latest ``daily`` run SUCCEEDED on an
input with the same fingerprint as now, so a backfill killed part-way resumes where it stopped."""

from __future__ import annotations

import dataclasses
import datetime as dt

from pyspark.sql import SparkSession

from shipments.batch.daily import daily_inputs
from shipments.batch.ledger import SUCCEEDED, last_runs
from shipments.config import Config
from shipments.dates import date_range
from shipments.errors import ShipmentsError
from shipments.storage.raw import RawListing

RUN = "RUN"
SKIP = "SKIP"


@dataclasses.dataclass(frozen=True)
class DayPlan:
    """What the backfill will do for one date, and why."""

    run_date: dt.date
    action: str  # RUN or SKIP
    reason: str
    fingerprint: str | None = None
    last_rows: int | None = None
    # What the date's run reads (a backfill pass reads the union of its dates'); None when the
    # input could not be listed.
    listing: RawListing | None = dataclasses.field(default=None, compare=False, repr=False)

    def line(self) -> str:
        return f"{self.run_date}  {'run ' if self.action == RUN else 'skip'}  {self.reason}"


def plan_backfill(
    spark: SparkSession, config: Config, start: dt.date, end: dt.date, *, force: bool = False
) -> list[DayPlan]:
    """Decide, per date, whether to run it: skip only when the latest ``daily`` run of that date
    SUCCEEDED on an input with today's fingerprint (unless ``force``). Writes nothing."""
    last = last_runs(spark, config, "daily", start, end)
    plans: list[DayPlan] = []
    for run_date in date_range(start, end):
        try:
            listing, fingerprint = daily_inputs(spark, config, run_date)
        except ShipmentsError as exc:
            # Planned to run, so it fails with its reason and the backfill exits non-zero.
            plans.append(DayPlan(run_date, RUN, f"input problem: {exc}"))
            continue
        previous = last.get(run_date)
        if force:
            reason = "forced"
        elif previous is None:
            reason = "never run"
        elif previous.status != SUCCEEDED:
            reason = f"last run {previous.run_id} {previous.status}"
        elif previous.input_fingerprint != fingerprint:
            reason = f"input changed since run {previous.run_id}"
        else:
            plans.append(
                DayPlan(
                    run_date,
                    SKIP,
                    f"succeeded in run {previous.run_id} on the same input",
                    fingerprint,
                    previous.rows_written,
                )
            )
            continue
        plans.append(DayPlan(run_date, RUN, reason, fingerprint, listing=listing))
    return plans
