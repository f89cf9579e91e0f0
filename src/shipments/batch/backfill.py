"""Backfill: the daily job for every date of a range, resumable through the ledger.

Read top to bottom, a backfill is: plan (list each date's input, compare its fingerprint with
the date's last run in ``pipeline_runs``) -> create the tables once -> run the dates that need
it: consecutive dates in passes (``passes.run_pass``: one read of their folders, one commit per
table, each date measured, checked and recorded as its own run would be) while their input stays
under ``daily.backfill_pass_mb``; the others (a date alone, a date whose input could not be
listed, the dates of a pass that failed) as isolated daily runs on a thread pool inside ONE
Spark application, each thread in its own scheduler pool, retrying a date whose commit lost a
Delta conflict -> report one line per date and a summary.

Why it is safe to run dates at once: each daily run replaces only its own ``ship_date`` (and
``ingest_date``) partition with ``replaceWhere`` on the partition column, so Delta's conflict
check sees disjoint partitions; the ledger is a blind append. A conflict can still happen (a
table created or altered concurrently, a checkpoint race on some stores): that is retried
with backoff, a bounded number of times. A day that fails is reported and the others go on.

Resumable and idempotent: a date is skipped (nothing written, not even a ledger row) when its
latest ``daily`` run SUCCEEDED on an input with the same fingerprint as now. A backfill killed
part-way therefore resumes where it stopped when run again; ``force`` re-runs everything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TextIO

from pyspark.sql import SparkSession

from shipments.batch.daily import ChecksFailed, DailyRequest, DailyResult, run_daily
from shipments.batch.ledger import FAILED, SUCCEEDED, new_run_id
from shipments.batch.passes import DayEnd, PassDay, pass_days, run_pass
from shipments.batch.resume import RUN, SKIP, DayPlan, plan_backfill
from shipments.batch.retry import DEFAULT_BACKOFF_SECONDS, DEFAULT_MAX_ATTEMPTS, run_with_retry
from shipments.config import Config
from shipments.errors import EXIT_FAILED, EXIT_OK, ConfigError, describe
from shipments.model.tables import BATCH_TABLES
from shipments.observe.alerts import process_alerts
from shipments.quality.results import CheckResult
from shipments.storage import delta

log = logging.getLogger(__name__)

SKIPPED = "SKIPPED"


@dataclasses.dataclass(frozen=True)
class BackfillRequest:
    """``shipments backfill --start --end [--parallelism N] [--force] [--dry-run]``."""

    start: dt.date
    end: dt.date
    parallelism: int = 1
    force: bool = False
    dry_run: bool = False
    allow_shrink: bool = False

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ConfigError(f"--end {self.end} is before --start {self.start}")
        if self.parallelism < 1:
            raise ConfigError(f"--parallelism must be at least 1, got {self.parallelism}")


@dataclasses.dataclass(frozen=True)
class DayOutcome:
    """How one date ended: SUCCEEDED, FAILED or SKIPPED."""

    run_date: dt.date
    status: str
    seconds: float = 0.0
    attempts: int = 0
    rows_written: int | None = None
    table_version: int | None = None
    run_id: str | None = None
    error: str | None = None
    # Every check's outcome (also of a day whose checks failed): alerts are raised once, from
    # all dates, when the backfill ends.
    checks: tuple[CheckResult, ...] = ()
    # The dates of the pass that computed this one (0: an isolated run); ``seconds`` is then
    # its share of the pass's time.
    pass_dates: int = 0

    def line(self) -> str:
        rows = f"rows {self.rows_written}" if self.rows_written is not None else "rows -"
        head = f"{self.run_date}  {self.status:<9}  {rows:<10}  {self.seconds:6.1f}s"
        if self.status == SUCCEEDED:
            retried = f", after {self.attempts} attempts" if self.attempts > 1 else ""
            shared = f", in one pass of {self.pass_dates} dates" if self.pass_dates else ""
            return f"{head}  table version {self.table_version}{retried}{shared}"
        if self.status == FAILED:
            return f"{head}  {self.error}"
        return f"{head}  same input as the last successful run"


@dataclasses.dataclass(frozen=True)
class BackfillResult:
    start: dt.date
    end: dt.date
    parallelism: int
    outcomes: tuple[DayOutcome, ...]
    seconds: float

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed else EXIT_OK

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> list[dt.date]:
        return [o.run_date for o in self.outcomes if o.status == FAILED]

    def summary(self) -> str:
        text = (
            f"backfill {self.start}..{self.end}: {len(self.outcomes)} dates, "
            f"{self.count(SUCCEEDED)} succeeded, {self.count(FAILED)} failed, {self.count(SKIPPED)} skipped; "
            f"parallelism {self.parallelism}; {self.seconds:.1f}s"
        )
        if self.failed:
            text += f"; failed: {', '.join(d.isoformat() for d in self.failed)} (rerun the same backfill to retry them)"
        return text


# ---------------------------------------------------------------------------------------- run


class _Progress:
    """Days done / total, elapsed and an estimate, on stderr after each finished date."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.started = time.monotonic()
        self.done = 0
        self.failed = 0
        self.lock = threading.Lock()

    def finished(self, outcome: DayOutcome) -> None:
        with self.lock:
            self.done += 1
            self.failed += outcome.status == FAILED
            elapsed = time.monotonic() - self.started
            left = self.total - self.done
            # Dates finish in waves of `parallelism`: the mean time per finished date already
            # reflects the overlap, so it extrapolates directly.
            estimate = f", about {_clock(elapsed / self.done * left)} left" if left else ""
            print(
                f"backfill progress: {self.done}/{self.total} dates done ({self.failed} failed), "
                f"elapsed {_clock(elapsed)}{estimate}",
                file=self.stream,
                flush=True,
            )


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


@dataclasses.dataclass(frozen=True)
class _Backfill:
    """Settings shared by every date of one backfill."""

    spark: SparkSession
    config: Config
    backfill_id: str
    max_attempts: int
    backoff_seconds: float
    allow_shrink: bool


def _run_day(backfill: _Backfill, run_date: dt.date, pool: str) -> DayOutcome:
    """One date, in the calling thread's own scheduler pool. Never raises: the outcome says."""
    sc = backfill.spark.sparkContext
    # Jobs submitted from this thread go to `pool` (with spark.scheduler.mode FAIR the pools
    # share the executors instead of queueing behind each other's stages).
    sc.setLocalProperty("spark.scheduler.pool", pool)
    sc.setLocalProperty("spark.job.description", f"backfill {run_date}")
    started = time.monotonic()
    attempts = 0

    def attempt(number: int) -> DailyResult:
        nonlocal attempts
        attempts = number
        run_id = f"{backfill.backfill_id}-{run_date}-a{number}"
        request = DailyRequest(run_date, run_id=run_id, allow_shrink=backfill.allow_shrink, alerts=False)
        return run_daily(backfill.spark, backfill.config, request)

    try:
        result, attempts = run_with_retry(
            attempt, max_attempts=backfill.max_attempts, backoff_seconds=backfill.backoff_seconds
        )
    except Exception as exc:  # a failing day must not stop the others: report it instead
        log.debug("backfill %s failed", run_date, exc_info=True)
        checks = tuple(exc.results) if isinstance(exc, ChecksFailed) else ()
        return DayOutcome(
            run_date, FAILED, time.monotonic() - started, attempts, error=describe(exc, 500), checks=checks
        )
    finally:
        # Thread-local properties outlive the task (pool threads are reused; with parallelism 1
        # this is the caller's thread): leave nothing behind.
        for key in ("spark.scheduler.pool", "spark.job.description"):
            sc.setLocalProperty(key, None)  # type: ignore[arg-type]  # None clears it; the stub says str
    return DayOutcome(
        run_date,
        SUCCEEDED,
        time.monotonic() - started,
        attempts,
        rows_written=result.counts.rows_written,
        table_version=result.table_version,
        run_id=result.run_id,
        checks=result.checks,
    )


def run_backfill(
    spark: SparkSession,
    config: Config,
    request: BackfillRequest,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
) -> BackfillResult:
    """Run the daily job for every date in ``start..end``, ``parallelism`` dates at a time.

    Prints one line per date to ``out`` as each finishes and progress to ``err`` (the
    caller prints the result's summary). With ``dry_run`` prints the plan and writes nothing.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    start, end, parallelism, dry_run = request.start, request.end, request.parallelism, request.dry_run
    began = time.monotonic()
    plans = plan_backfill(spark, config, start, end, force=request.force)
    to_run = [p for p in plans if p.action == RUN]
    skipped = {p.run_date: DayOutcome(p.run_date, SKIPPED, rows_written=p.last_rows) for p in plans if p.action == SKIP}
    print(
        f"backfill {start}..{end}: {len(plans)} dates, {len(to_run)} to run, {len(skipped)} skipped"
        f"{' (dry run: nothing is written)' if dry_run else ''}; parallelism {parallelism}",
        file=out,
        flush=True,
    )
    if dry_run:
        for plan in plans:
            print(plan.line(), file=out, flush=True)
        return BackfillResult(start, end, parallelism, tuple(skipped.values()), time.monotonic() - began)

    outcomes: dict[dt.date, DayOutcome] = dict(skipped)
    for outcome in skipped.values():
        print(outcome.line(), file=out, flush=True)
    if to_run:
        if spark.sparkContext.getConf().get("spark.scheduler.mode", "FIFO") != "FAIR" and parallelism > 1:
            log.info("spark.scheduler.mode is not FAIR: dates share executors first come, first served")
        # Created once, before any thread starts: concurrent creation is a metadata conflict, and
        # Delta only checks replaceWhere rows against an existing table.
        delta.ensure_tables(spark, config, BATCH_TABLES)
        backfill_id = new_run_id("backfill")
        backfill = _Backfill(spark, config, backfill_id, max_attempts, backoff_seconds, request.allow_shrink)
        progress = _Progress(len(to_run), err)
        for outcome in _run_passes(backfill, to_run, parallelism):
            outcomes[outcome.run_date] = outcome
            print(outcome.line(), file=out, flush=True)
            progress.finished(outcome)
        checks = [check for outcome in outcomes.values() for check in outcome.checks]
        if checks:
            # One alert per cause for the whole backfill, naming every date it hit.
            process_alerts(spark, config, checks, job="backfill", run_id=backfill_id)
    return BackfillResult(
        start, end, parallelism, tuple(outcomes[d] for d in sorted(outcomes)), time.monotonic() - began
    )


def _run_passes(backfill: _Backfill, plans: Sequence[DayPlan], parallelism: int) -> Iterator[DayOutcome]:
    """Outcomes of the dates of ``plans``, in date order: consecutive dates in passes
    (``passes.run_pass``) within the configured input cap; the other dates as isolated runs,
    ``parallelism`` at a time: dates alone in their pass, dates whose input could not be listed
    (they fail with that reason), and the dates of a pass that failed (a corrupt file then fails
    only the dates that read it). Date order keeps what a date's checks see (the volume check's
    earlier weeks) what a date-by-date backfill would have recorded before it."""
    cap = int(backfill.config.daily.backfill_pass_mb * 1024 * 1024)
    listed = [PassDay(p.run_date, p.listing, p.fingerprint) for p in plans if p.listing and p.fingerprint]
    groups = [g for g in (pass_days(listed, cap) if cap else []) if len(g) > 1]
    in_passes = {day.run_date for group in groups for day in group}
    alone = sorted({p.run_date for p in plans} - in_passes)
    for group in groups:
        before = [d for d in alone if d < group[0].run_date]
        alone = alone[len(before) :]
        yield from _run_all(backfill, before, parallelism)
        outcomes = _run_one_pass(backfill, group)
        if outcomes is None:
            outcomes = list(_run_all(backfill, [day.run_date for day in group], parallelism))
        yield from outcomes
    yield from _run_all(backfill, alone, parallelism)


def _run_one_pass(backfill: _Backfill, group: Sequence[PassDay]) -> list[DayOutcome] | None:
    """The outcomes of one pass, or None when it failed (its dates then run isolated)."""
    first, last = group[0].run_date, group[-1].run_date
    sc = backfill.spark.sparkContext
    sc.setLocalProperty("spark.scheduler.pool", "backfill-0")
    sc.setLocalProperty("spark.job.description", f"backfill pass {first}..{last}")
    started = time.monotonic()
    try:
        ends = run_pass(
            backfill.spark,
            backfill.config,
            group,
            run_id=f"{backfill.backfill_id}-{first}..{last}",
            allow_shrink=backfill.allow_shrink,
        )
    except Exception as exc:  # the fallback decides per date
        log.warning(
            "backfill pass %s..%s failed (%s): running its %d dates one by one", first, last, describe(exc), len(group)
        )
        log.debug("backfill pass %s..%s failed", first, last, exc_info=True)
        return None
    finally:
        for key in ("spark.scheduler.pool", "spark.job.description"):
            sc.setLocalProperty(key, None)  # type: ignore[arg-type]  # None clears it; the stub says str
    share = (time.monotonic() - started) / len(group)
    return [_pass_outcome(end, share, len(group)) for end in ends]


def _pass_outcome(end: DayEnd, seconds: float, dates: int) -> DayOutcome:
    if end.result is not None:
        result = end.result
        return DayOutcome(
            end.run_date,
            SUCCEEDED,
            seconds,
            1,
            rows_written=result.counts.rows_written,
            table_version=result.table_version,
            run_id=result.run_id,
            checks=result.checks,
            pass_dates=dates,
        )
    if end.failed is None:
        raise ValueError(f"pass outcome of {end.run_date} is neither published nor refused")
    error = describe(end.failed, 500)
    return DayOutcome(end.run_date, FAILED, seconds, 1, error=error, checks=tuple(end.failed.results), pass_dates=dates)


def _run_day_in_pool(backfill: _Backfill, run_date: dt.date, pool_name: Callable[[], str]) -> DayOutcome:
    return _run_day(backfill, run_date, pool_name())


def _run_all(backfill: _Backfill, dates: Sequence[dt.date], parallelism: int) -> Iterator[DayOutcome]:
    """Outcomes in the order the dates finish. Each worker thread owns one scheduler pool."""
    if not dates:
        return
    if parallelism == 1 or len(dates) == 1:
        for run_date in dates:
            yield _run_day(backfill, run_date, "backfill-0")
        return
    slots = threading.local()
    counter = iter(range(parallelism))
    counter_lock = threading.Lock()

    def pool_name() -> str:
        if not hasattr(slots, "name"):
            with counter_lock:
                slots.name = f"backfill-{next(counter)}"
        return str(slots.name)

    executor = ThreadPoolExecutor(max_workers=min(parallelism, len(dates)), thread_name_prefix="backfill")
    try:
        futures = [executor.submit(_run_day_in_pool, backfill, d, pool_name) for d in dates]
        for future in as_completed(futures):
            yield future.result()
    finally:
        # On Ctrl-C, dates not started yet are dropped (the ledger lets a rerun resume); the
        # running ones finish their atomic commit first.
        executor.shutdown(wait=True, cancel_futures=True)
