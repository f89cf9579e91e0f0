"""Backfill: one isolated daily run per date, N at a time, resumable through the ledger.

Read top to bottom, a backfill is: plan (list each date's input, compare its fingerprint with
the date's last run in ``pipeline_runs``) -> create the tables once -> run the dates that need
it on a thread pool inside ONE Spark application, each thread in its own scheduler pool ->
retry a date whose commit lost a Delta conflict -> report one line per date and a summary.

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
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TextIO

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.config import Config
from shipments.daily import DailyResult, daily_inputs, run_daily
from shipments.dates import date_range
from shipments.errors import ConfigError, ShipmentsError, describe
from shipments.ledger import FAILED, SUCCEEDED, new_run_id
from shipments.tables import PIPELINE_RUNS, ensure_tables

log = logging.getLogger(__name__)

RUN = "RUN"
SKIP = "SKIP"
SKIPPED = "SKIPPED"

# Delta's commit-conflict exceptions (Scala and Java-friendly classes share these simple names).
CONFLICT_EXCEPTIONS = frozenset(
    {
        "DeltaConcurrentModificationException",
        "ConcurrentWriteException",
        "ConcurrentAppendException",
        "ConcurrentDeleteReadException",
        "ConcurrentDeleteDeleteException",
        "ConcurrentTransactionException",
        "MetadataChangedException",
        "ProtocolChangedException",
    }
)

DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BACKOFF_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class LastRun:
    """The latest ``daily`` run recorded for a date."""

    run_id: str
    status: str
    started_at: dt.datetime
    input_fingerprint: str | None
    rows_written: int | None


@dataclasses.dataclass(frozen=True)
class DayPlan:
    """What the backfill will do for one date, and why."""

    run_date: dt.date
    action: str  # RUN or SKIP
    reason: str
    fingerprint: str | None = None
    last_rows: int | None = None

    def line(self) -> str:
        return f"{self.run_date}  {'run ' if self.action == RUN else 'skip'}  {self.reason}"


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

    def line(self) -> str:
        rows = f"rows {self.rows_written}" if self.rows_written is not None else "rows -"
        head = f"{self.run_date}  {self.status:<9}  {rows:<10}  {self.seconds:6.1f}s"
        if self.status == SUCCEEDED:
            retried = f", after {self.attempts} attempts" if self.attempts > 1 else ""
            return f"{head}  table version {self.table_version}{retried}"
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


# --------------------------------------------------------------------------------------- plan


def day_fingerprint(spark: SparkSession, config: Config, run_date: dt.date) -> str:
    """The input fingerprint ``run_daily`` records for ``run_date`` on today's input.

    Raises:
        InputError: the date's raw folder is missing or empty, or the customer dimension is.
    """
    return daily_inputs(spark, config, run_date)[1]


def last_daily_runs(spark: SparkSession, config: Config, start: dt.date, end: dt.date) -> dict[dt.date, LastRun]:
    """The latest ``daily`` run per date in ``start..end`` from ``pipeline_runs`` (empty when it
    does not exist yet). Reads only; one small collect."""
    path = PIPELINE_RUNS.path(config)
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    rows = (
        spark.read.format("delta")
        .load(path)
        .filter((F.col("job") == F.lit("daily")) & F.col("run_date").between(F.lit(start), F.lit(end)))
        .select("run_date", "run_id", "status", "started_at", "ended_at", "input_fingerprint", "rows_written")
        .collect()
    )
    latest: dict[dt.date, tuple[tuple[dt.datetime, dt.datetime], LastRun]] = {}
    for row in rows:
        key = (row["started_at"], row["ended_at"])
        if row["run_date"] not in latest or key > latest[row["run_date"]][0]:
            latest[row["run_date"]] = (
                key,
                LastRun(row["run_id"], row["status"], row["started_at"], row["input_fingerprint"], row["rows_written"]),
            )
    return {day: run for day, (_, run) in latest.items()}


def plan_backfill(
    spark: SparkSession, config: Config, start: dt.date, end: dt.date, *, force: bool = False
) -> list[DayPlan]:
    """Decide, per date, whether to run it: skip only when the latest ``daily`` run of that date
    SUCCEEDED on an input with today's fingerprint (unless ``force``). Writes nothing."""
    last = last_daily_runs(spark, config, start, end)
    plans: list[DayPlan] = []
    for run_date in date_range(start, end):
        try:
            fingerprint: str | None = day_fingerprint(spark, config, run_date)
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
        plans.append(DayPlan(run_date, RUN, reason, fingerprint))
    return plans


# ---------------------------------------------------------------------------------------- run


def is_commit_conflict(exc: BaseException) -> bool:
    """True when ``exc`` (or anything it wraps, Python or Java) is a Delta commit conflict.

    Detected by class name because the error can arrive as delta-spark's Python class, as a
    ``Py4JJavaError`` holding the Java exception, or wrapped in another Java exception.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if any(cls.__name__ in CONFLICT_EXCEPTIONS for cls in type(current).__mro__):
            return True
        java = getattr(current, "java_exception", None) or getattr(current, "_origin", None)
        if java is not None and _java_is_conflict(java):
            return True
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


def _java_is_conflict(java: object) -> bool:
    try:
        throwable, depth = java, 0
        while throwable is not None and depth < 20:
            cls = throwable.getClass()  # type: ignore[attr-defined]
            while cls is not None:
                if cls.getSimpleName() in CONFLICT_EXCEPTIONS:
                    return True
                cls = cls.getSuperclass()
            throwable, depth = throwable.getCause(), depth + 1  # type: ignore[attr-defined]
    except Exception:  # a dead gateway or a non-Java object: not something we can classify
        return False
    return False


def run_with_retry(
    action: Callable[[int], DailyResult],
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[DailyResult, int]:
    """Call ``action(attempt)`` until it returns, retrying only Delta commit conflicts.

    Backoff is exponential with full jitter, so parallel days that collided do not collide
    again in lockstep. Any other error, or the last conflict, is raised.
    """
    for attempt in range(1, max_attempts + 1):
        try:
            return action(attempt), attempt
        except Exception as exc:
            if attempt == max_attempts or not is_commit_conflict(exc):
                raise
            delay = random.uniform(0, backoff_seconds * 2 ** (attempt - 1))
            log.warning("commit conflict on attempt %d/%d (%s); retrying in %.1fs", attempt, max_attempts, type(exc).__name__, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


class _Progress:
    """Days done / total, elapsed and an estimate, on stderr after each finished date."""

    def __init__(self, total: int, parallelism: int, stream: TextIO) -> None:
        self.total = total
        self.parallelism = parallelism
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
class _Batch:
    """Settings shared by every date of one backfill."""

    spark: SparkSession
    config: Config
    batch_id: str
    max_attempts: int
    backoff_seconds: float


def _run_day(batch: _Batch, run_date: dt.date, pool: str) -> DayOutcome:
    """One date, in the calling thread's own scheduler pool. Never raises: the outcome says."""
    sc = batch.spark.sparkContext
    # Jobs submitted from this thread go to `pool` (with spark.scheduler.mode FAIR the pools
    # share the executors instead of queueing behind each other's stages).
    sc.setLocalProperty("spark.scheduler.pool", pool)
    sc.setLocalProperty("spark.job.description", f"backfill {run_date}")
    started = time.monotonic()
    attempts = 0

    def attempt(number: int) -> DailyResult:
        nonlocal attempts
        attempts = number
        return run_daily(batch.spark, batch.config, run_date, run_id=f"{batch.batch_id}-{run_date}-a{number}")

    try:
        result, attempts = run_with_retry(attempt, max_attempts=batch.max_attempts, backoff_seconds=batch.backoff_seconds)
    except Exception as exc:  # a failing day must not stop the others: report it instead
        log.debug("backfill %s failed", run_date, exc_info=True)
        return DayOutcome(run_date, FAILED, time.monotonic() - started, attempts, error=describe(exc, 500))
    finally:
        # Thread-local properties outlive the task (pool threads are reused; with parallelism 1
        # this is the caller's thread): leave nothing behind.
        for key in ("spark.scheduler.pool", "spark.job.description"):
            sc.setLocalProperty(key, None)  # type: ignore[arg-type]
    return DayOutcome(
        run_date,
        SUCCEEDED,
        time.monotonic() - started,
        attempts,
        rows_written=result.counts.rows_written,
        table_version=result.table_version,
        run_id=result.run_id,
    )


def run_backfill(
    spark: SparkSession,
    config: Config,
    start: dt.date,
    end: dt.date,
    *,
    parallelism: int = 1,
    force: bool = False,
    dry_run: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
) -> BackfillResult:
    """Run the daily job for every date in ``start..end``, ``parallelism`` dates at a time.

    Prints one line per date to ``out`` as each finishes and progress to ``err``. With
    ``dry_run`` prints the plan and writes nothing.

    Raises:
        ConfigError: ``end`` before ``start`` or ``parallelism`` below 1.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    if end < start:
        raise ConfigError(f"end {end} is before start {start}")
    if parallelism < 1:
        raise ConfigError(f"parallelism must be at least 1, got {parallelism}")
    began = time.monotonic()
    plans = plan_backfill(spark, config, start, end, force=force)
    to_run = [p.run_date for p in plans if p.action == RUN]
    skipped = {
        p.run_date: DayOutcome(p.run_date, SKIPPED, rows_written=p.last_rows) for p in plans if p.action == SKIP
    }
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
        ensure_tables(spark, config)
        batch = _Batch(spark, config, new_run_id("backfill"), max_attempts, backoff_seconds)
        progress = _Progress(len(to_run), parallelism, err)
        for outcome in _run_all(batch, to_run, parallelism):
            outcomes[outcome.run_date] = outcome
            print(outcome.line(), file=out, flush=True)
            progress.finished(outcome)
    result = BackfillResult(
        start, end, parallelism, tuple(outcomes[d] for d in sorted(outcomes)), time.monotonic() - began
    )
    print(result.summary(), file=out, flush=True)
    return result


def _run_all(batch: _Batch, dates: Sequence[dt.date], parallelism: int) -> Iterator[DayOutcome]:
    """Outcomes in the order the dates finish. Each worker thread owns one scheduler pool."""
    if parallelism == 1 or len(dates) == 1:
        for run_date in dates:
            yield _run_day(batch, run_date, "backfill-0")
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
        futures = [executor.submit(lambda d=d: _run_day(batch, d, pool_name())) for d in dates]
        for future in as_completed(futures):
            yield future.result()
    finally:
        # On Ctrl-C, dates not started yet are dropped (the ledger lets a rerun resume); the
        # running ones finish their atomic commit first.
        executor.shutdown(wait=True, cancel_futures=True)


def run_backfill_command(
    spark_factory: Callable[[], SparkSession],
    config: Config,
    start: dt.date,
    end: dt.date,
    *,
    parallelism: int = 1,
    force: bool = False,
    dry_run: bool = False,
) -> int:
    """The ``shipments backfill`` command: exit 0 when no date failed, 1 otherwise."""
    result = run_backfill(
        spark_factory(), config, start, end, parallelism=parallelism, force=force, dry_run=dry_run
    )
    return 1 if result.failed else 0
