"""``shipments slo``: are the service levels met now, and how fast is each error budget burning?

The objectives come from the ``slo`` config section (``ops_config.SloConfig``):

- **daily publication** (``daily_sla``, the external promise, and ``daily_slo``, the internal
  objective on ``daily_target`` of days): run date D is published when its first SUCCEEDED
  ``daily`` run in ``pipeline_runs`` ended; met when that is at or before the clock time (UTC)
  on day D + ``daily_offset_days``. A date with no success yet is pending until its deadline
  passes, then missed. Dates before the first daily run the ledger knows are not judged: a new
  lake has no missed history.
- **stream latency** (``stream_target`` of micro-batches): a batch is good when its
  ``latency_seconds`` in ``pipeline_metrics`` (the batch's p95 event -> visible time) is at
  most ``stream_latency_seconds``; windows are hours of ``recorded_at``.

A day counts in the window that holds its deadline; a batch in the window that holds its
``recorded_at``; nothing after ``--now`` counts. Error budget over the last 7 and ``--days`` days:
bad / allowed, allowed = (1 - target) x what was judged. Burn rate over a window: the bad share
divided by (1 - target), 1.0 spending the budget exactly by the end of the period; above
``fast_burn`` over ``fast_window_days`` pages, above ``slow_burn`` over ``slow_window_days``
opens a ticket (``burn_rate_results`` turns them into check results for the alerts).

State now: the daily objectives judge the date due today (D = today - offset): met (published
in time), at risk (not yet published, deadline ahead: the time left is shown) or breached; the
stream objective is breached when its ``--days`` budget is spent. Exit status: 0 when no
objective is breached and no burn-rate alert fires (at risk and "no data" included), 1
(``EXIT_FAILED``) otherwise. Read-only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.batch.ledger import SUCCEEDED, utc_now
from shipments.config import Config
from shipments.errors import EXIT_FAILED, EXIT_OK
from shipments.model.tables import PIPELINE_METRICS, PIPELINE_RUNS
from shipments.observe.alerts import process_alerts
from shipments.ops_config import SLO, CheckSpec, SloConfig
from shipments.quality.results import CheckResult
from shipments.storage import delta

DAILY_JOB = "daily"
STREAM_JOB = "stream"
LATENCY_METRIC = "latency_seconds"
SHORT_WINDOW_DAYS = 7  # the budget is shown over this many days and over --days
BURN_CHECK = "slo_burn"

MET = "met"
AT_RISK = "at risk"
BREACHED = "breached"
NO_DATA = "no data"

# A day's verdict.
DAY_MET = "met"
DAY_LATE = "late"  # published after the deadline
DAY_MISSED = "missed"  # deadline passed, not published
DAY_PENDING = "pending"  # not published, deadline ahead

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class SloRequest:
    """``shipments slo [--now T] [--days N] [--json] [--alert]``; ``now`` None is the current
    instant. ``alert``: route the burn-rate alerts through the alerts (``alert_state``, SNS)."""

    now: dt.datetime | None = None
    days: int = 28
    as_json: bool = False
    alert: bool = False


# --------------------------------------------------------------------------- reads


@dataclasses.dataclass(frozen=True)
class Publications:
    """When each run date was first published (its first SUCCEEDED daily run ended)."""

    first_date: dt.date | None  # the earliest run date of any daily run (see read_publications)
    published_at: Mapping[dt.date, dt.datetime]


def read_publications(spark: SparkSession, config: Config, start: dt.date, end: dt.date) -> Publications:
    """The publication time of each run date in ``start..end`` that has a successful daily run,
    and the ledger's first daily date (any date before ``start`` reads as ``start`` - 1 day: all
    that matters is that the window's dates all come after it).

    One small aggregate of ``pipeline_runs`` (every date before ``start`` folds into one group);
    times come back as epoch microseconds so the driver's time zone plays no part.
    """
    runs = delta.read_table(spark, config, PIPELINE_RUNS)
    if runs is None:
        return Publications(None, {})
    before = start - dt.timedelta(days=1)
    published = F.when(F.col("status") == F.lit(SUCCEEDED), F.unix_micros("ended_at"))
    rows = (
        runs.filter((F.col("job") == F.lit(DAILY_JOB)) & (F.col("run_date") <= F.lit(end)))
        .groupBy(F.greatest(F.col("run_date"), F.lit(before)).alias("run_date"))
        .agg(F.min(published).alias("published_us"))
        .collect()
    )
    first = min((row["run_date"] for row in rows), default=None)
    return Publications(
        first,
        {
            row["run_date"]: from_micros(int(row["published_us"]))
            for row in rows
            if row["run_date"] >= start and row["published_us"] is not None
        },
    )


def read_latency_counts(
    spark: SparkSession, config: Config, now: dt.datetime, windows: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """(batches, slow batches) of the stream per window of ``windows`` days ending at ``now``."""
    metrics = delta.read_table(spark, config, PIPELINE_METRICS)
    if metrics is None:
        return {days: (0, 0) for days in windows}
    limit = config.slo.stream_latency_seconds
    latency = metrics.filter(
        (F.col("job") == F.lit(STREAM_JOB))
        & (F.col("metric") == F.lit(LATENCY_METRIC))
        & F.col("value").isNotNull()
        & (F.col("recorded_at") <= F.lit(now))
        & (F.col("recorded_at") > F.lit(now - dt.timedelta(days=max(windows))))
    )
    aggregates = []
    for days in windows:
        inside = F.col("recorded_at") > F.lit(now - dt.timedelta(days=days))
        aggregates += [
            F.count(F.when(inside, 1)).alias(f"batches_{days}"),
            F.count(F.when(inside & (F.col("value") > F.lit(limit)), 1)).alias(f"slow_{days}"),
        ]
    row = latency.agg(*aggregates).first()
    if row is None:
        return {days: (0, 0) for days in windows}
    return {days: (int(row[f"batches_{days}"]), int(row[f"slow_{days}"])) for days in windows}


def from_micros(micros: int) -> dt.datetime:
    """An aware UTC instant from epoch microseconds."""
    return _EPOCH + dt.timedelta(microseconds=micros)


# --------------------------------------------------------------------------- judging


def deadline(run_date: dt.date, clock: str, offset_days: int) -> dt.datetime:
    """The instant by which ``run_date`` must be published: ``clock`` (HH:MM UTC) on D + offset."""
    hours, minutes = (int(part) for part in clock.split(":"))
    return dt.datetime.combine(run_date + dt.timedelta(days=offset_days), dt.time(hours, minutes), dt.UTC)


@dataclasses.dataclass(frozen=True)
class DayVerdict:
    run_date: dt.date
    deadline: dt.datetime
    published_at: dt.datetime | None  # only when at or before now
    state: str  # DAY_MET, DAY_LATE, DAY_MISSED or DAY_PENDING

    @property
    def bad(self) -> bool:
        return self.state in (DAY_LATE, DAY_MISSED)


def judge_day(run_date: dt.date, publications: Publications, clock: str, offset: int, now: dt.datetime) -> DayVerdict:
    due = deadline(run_date, clock, offset)
    published = publications.published_at.get(run_date)
    if published is not None and published > now:
        published = None  # judged as of --now: a later publication has not happened yet
    if published is not None:
        state = DAY_MET if published <= due else DAY_LATE
    else:
        state = DAY_MISSED if due <= now else DAY_PENDING
    return DayVerdict(run_date, due, published, state)


def judged_days(publications: Publications, clock: str, offset: int, now: dt.datetime, days: int) -> list[DayVerdict]:
    """The verdicts of the dates whose deadline falls in the ``days`` days up to ``now``
    (never before the ledger's first daily date), oldest first."""
    if publications.first_date is None:
        return []
    last = now.date() - dt.timedelta(days=offset)
    dates = (last - dt.timedelta(days=back) for back in range(days + 1, -1, -1))
    start = now - dt.timedelta(days=days)
    return [
        judge_day(d, publications, clock, offset, now)
        for d in dates
        if d >= publications.first_date and start < deadline(d, clock, offset) <= now
    ]


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class Budget:
    """The error budget over the last ``days`` days: ``bad`` of ``judged`` days (or batches).
    ``allowed`` None: a promise (the SLA), with no budget."""

    days: int
    judged: int
    bad: int
    allowed: float | None

    @property
    def spent(self) -> float | None:
        """Share of the budget spent (1.0 = all of it); None when nothing is allowed."""
        return self.bad / self.allowed if self.allowed else None

    def describe(self, unit: str) -> str:
        if self.allowed is None:
            return f"{self.days}d: {self.bad} of {self.judged} {unit} bad"
        spent = "" if self.spent is None else f", {self.spent:.0%} spent"
        return f"{self.days}d: {self.bad} bad of {self.allowed:.2f} allowed ({self.judged} {unit}{spent})"

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "spent": self.spent}


@dataclasses.dataclass(frozen=True)
class Burn:
    """The burn rate over a window: the bad share / (1 - target); None when nothing was judged."""

    speed: str  # fast | slow
    days: int
    judged: int
    bad: int
    rate: float | None
    threshold: float
    level: str  # page | ticket

    @property
    def firing(self) -> bool:
        return self.rate is not None and self.rate > self.threshold

    def describe(self) -> str:
        rate = "-" if self.rate is None else f"{self.rate:.1f}x"
        flag = " FIRING" if self.firing else ""
        return f"{self.days}d {rate} ({self.level} above {self.threshold:g}x){flag}"

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "firing": self.firing}


@dataclasses.dataclass(frozen=True)
class Objective:
    """One objective as of ``now``: its state, budgets and burn rates."""

    name: str  # daily_sla | daily_slo | stream_latency
    title: str
    state: str  # MET, AT_RISK, BREACHED or NO_DATA
    detail: str
    unit: str  # what is judged: days, batches
    budgets: tuple[Budget, ...]
    burns: tuple[Burn, ...] = ()
    due_date: dt.date | None = None
    deadline: dt.datetime | None = None
    time_left_seconds: float | None = None
    # the bad days in each burn window (by window days), newest first: an alert's samples
    bad_keys: Mapping[int, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def failing(self) -> bool:
        return self.state == BREACHED or any(b.firing for b in self.burns)

    def line(self) -> str:
        parts = [f"{self.name} ({self.title}): {self.state} - {self.detail}"]
        if self.state == NO_DATA:
            return parts[0]
        if self.budgets:
            word = "budget" if any(b.allowed is not None for b in self.budgets) else "missed"
            parts.append(f"{word} " + ", ".join(b.describe(self.unit) for b in self.budgets))
        if self.burns:
            parts.append("burn " + ", ".join(b.describe() for b in self.burns))
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "state": self.state,
            "detail": self.detail,
            "failing": self.failing,
            "due_date": None if self.due_date is None else self.due_date.isoformat(),
            "deadline": None if self.deadline is None else iso(self.deadline),
            "time_left_seconds": self.time_left_seconds,
            "unit": self.unit,
            "budgets": [b.as_dict() for b in self.budgets],
            "burns": [b.as_dict() for b in self.burns],
        }


@dataclasses.dataclass(frozen=True)
class SloResult:
    now: dt.datetime
    days: int
    objectives: tuple[Objective, ...]
    as_json: bool = False

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if any(o.failing for o in self.objectives) else EXIT_OK

    def summary(self) -> str:
        if self.as_json:
            document = {
                "now": iso(self.now),
                "days": self.days,
                "exit_code": self.exit_code,
                "objectives": [o.as_dict() for o in self.objectives],
            }
            return json.dumps(document, sort_keys=True)
        failing = [o.name for o in self.objectives if o.failing]
        verdict = f"FAILING ({', '.join(failing)})" if failing else "OK"
        return "\n".join([f"slo at {iso(self.now)}: {verdict}", *(o.line() for o in self.objectives)])


def iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _percent(share: float) -> str:
    return f"{share * 100:.10g}%"


def _span(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def budget_windows(days: int) -> tuple[int, ...]:
    """The budget windows: the last 7 days and the last ``days`` (just ``days`` when shorter)."""
    return tuple(sorted({min(SHORT_WINDOW_DAYS, days), days}))


def _burns(slo: SloConfig, counts: Mapping[int, tuple[int, int]], target: float) -> tuple[Burn, ...]:
    burns = []
    for speed, days, factor, level in (
        ("fast", slo.fast_window_days, slo.fast_burn, "page"),
        ("slow", slo.slow_window_days, slo.slow_burn, "ticket"),
    ):
        judged, bad = counts[days]
        rate = bad / judged / (1 - target) if judged else None
        burns.append(Burn(speed, days, judged, bad, rate, factor, level))
    return tuple(burns)


def _daily_objective(
    name: str, clock: str, target: float | None, slo: SloConfig, publications: Publications, now: dt.datetime, days: int
) -> Objective:
    offset = slo.daily_offset_days
    windows = budget_windows(days)
    span = {*windows, slo.fast_window_days, slo.slow_window_days}
    verdicts = {w: judged_days(publications, clock, offset, now, w) for w in span}
    counts = {w: (len(v), sum(d.bad for d in v)) for w, v in verdicts.items()}
    budgets = tuple(
        Budget(w, counts[w][0], counts[w][1], None if target is None else (1 - target) * counts[w][0]) for w in windows
    )
    burns = () if target is None else _burns(slo, counts, target)
    bad_keys = {w: tuple(d.run_date.isoformat() for d in reversed(v) if d.bad) for w, v in verdicts.items()}
    objective = "" if target is None else f" on {_percent(target)} of days"
    when = f"D+{offset}" if offset else "D"
    title = f"published by {clock} UTC on {when}{objective}"
    due = now.date() - dt.timedelta(days=offset)
    base = Objective(name, title, NO_DATA, "no daily run recorded yet", "days", budgets, burns, bad_keys=bad_keys)
    if publications.first_date is None or due < publications.first_date:
        return base
    day = judge_day(due, publications, clock, offset, now)
    left = (day.deadline - now).total_seconds()
    published = "" if day.published_at is None else iso(day.published_at)
    state, detail = {
        DAY_MET: (MET, f"{due} published at {published}, deadline {iso(day.deadline)}"),
        DAY_PENDING: (AT_RISK, f"{due} not published yet, {_span(left)} left before {iso(day.deadline)}"),
        DAY_LATE: (BREACHED, f"{due} published late at {published}, deadline {iso(day.deadline)}"),
        DAY_MISSED: (BREACHED, f"{due} not published by its deadline {iso(day.deadline)}"),
    }[day.state]
    time_left = left if day.state == DAY_PENDING else None
    return dataclasses.replace(
        base, state=state, detail=detail, due_date=due, deadline=day.deadline, time_left_seconds=time_left
    )


def _stream_objective(spark: SparkSession, config: Config, now: dt.datetime, days: int) -> Objective:
    slo = config.slo
    windows = budget_windows(days)
    counts = read_latency_counts(spark, config, now, sorted({*windows, slo.fast_window_days, slo.slow_window_days}))
    target = slo.stream_target
    budgets = tuple(Budget(w, counts[w][0], counts[w][1], (1 - target) * counts[w][0]) for w in windows)
    limit = f"p{slo.stream_percentile} latency <= {slo.stream_latency_seconds:g}s"
    title = f"{limit} on {_percent(target)} of micro-batches"
    none = f"no micro-batch in the last {days} days"
    objective = Objective("stream_latency", title, NO_DATA, none, "batches", budgets, _burns(slo, counts, target))
    judged, slow = counts[days]
    if not judged:
        return objective
    allowed = (1 - target) * judged
    state = BREACHED if slow > allowed else MET
    detail = f"{slow} of {judged} micro-batches slower than {slo.stream_latency_seconds:g}s in {days}d"
    return dataclasses.replace(objective, state=state, detail=detail)


def publication_range(slo: SloConfig, now: dt.datetime, days: int) -> tuple[dt.date, dt.date]:
    """The run dates ``evaluate`` needs the publications of: every window's, up to the date due."""
    longest = max(days, slo.fast_window_days, slo.slow_window_days)
    last = now.date() - dt.timedelta(days=slo.daily_offset_days)
    return last - dt.timedelta(days=longest + 1), last


def evaluate(
    spark: SparkSession, config: Config, now: dt.datetime, days: int, publications: Publications | None = None
) -> tuple[Objective, ...]:
    """The daily SLA, the daily SLO and the stream latency SLO as of ``now``. ``publications``
    (read when not given) must cover ``publication_range``."""
    slo = config.slo
    if publications is None:
        publications = read_publications(spark, config, *publication_range(slo, now, days))
    return (
        _daily_objective("daily_sla", slo.daily_sla, None, slo, publications, now, days),
        _daily_objective("daily_slo", slo.daily_slo, slo.daily_target, slo, publications, now, days),
        _stream_objective(spark, config, now, days),
    )


def run_slo(spark: SparkSession, config: Config, request: SloRequest) -> SloResult:
    """Judge every objective as of ``request.now`` (default: now). Reads only, unless
    ``request.alert``: then the burn-rate alerts are raised (or resolved) through the alerts."""
    now = (request.now or utc_now()).astimezone(dt.UTC)
    if request.alert:
        process_alerts(spark, config, burn_rate_results(spark, config, now), job="slo", run_id=f"slo-{iso(now)}")
    return SloResult(now, request.days, evaluate(spark, config, now, request.days), request.as_json)


def burn_rate_results(spark: SparkSession, config: Config, now: dt.datetime) -> list[CheckResult]:
    """The burn-rate alerts as check results, for the alert system.

    One result per objective with a budget (``daily_slo``, ``stream_latency``) and window: check
    ``slo.<objective>_fast_burn`` (alert level page) and ``slo.<objective>_slow_burn`` (ticket),
    severity ``warn`` (they block nothing). A result passes when the rate is within its factor
    (or nothing was judged in the window), so an open alert resolves once the burn slows down.
    ``sample_keys`` are the bad days in the window (daily objective), newest first.
    """
    now = now.astimezone(dt.UTC)
    slo = config.slo
    objectives = evaluate(spark, config, now, max(slo.fast_window_days, slo.slow_window_days))
    results = []
    for objective in objectives:
        for burn in objective.burns:
            spec = CheckSpec(
                name=f"{objective.name}_{burn.speed}_burn",
                check=BURN_CHECK,
                table=SLO,
                severity="warn",
                alert=burn.level,
                runbook="README.md#slos",
            )
            if burn.rate is None:
                detail = f"{objective.name}: nothing judged in the last {burn.days}d"
            else:
                detail = (
                    f"{objective.name} ({objective.title}): {burn.bad} of {burn.judged} {objective.unit} bad in the "
                    f"last {burn.days}d, burning the error budget at {burn.rate:.1f}x (alert above {burn.threshold:g}x)"
                )
            samples = objective.bad_keys.get(burn.days, ())[: config.alerts.samples]
            results.append(
                CheckResult(
                    spec, not burn.firing, burn.rate, burn.threshold, detail, f"{burn.speed}_burn", tuple(samples)
                )
            )
    return results
