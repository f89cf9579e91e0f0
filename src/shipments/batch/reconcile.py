"""``shipments reconcile --date D``: does the table still say what the raw zone says, and if not, why?

First from the numbers the runs recorded: which run wrote what partition D holds now (a daily
run, or a restore that put back what an earlier daily run published, found by the run ids the
commits of the table's log are tagged with), and that daily run's ledger in ``pipeline_runs``
stage by stage (read -> invalid -> duplicates -> deleted -> other dates -> kept -> unknown
customers -> written), its conservation and its failed checks (``dq_results``). Then that
ledger against the table as it is now and against the raw zone read again with the daily job's
own rules (the same pure transforms): the first stage where they part says where a difference
comes from. Then customer by customer, with what can be observed: files that landed or changed
after the run, shipments of D that landed after the lookback window, a customer held twice
(fan-out), and the shipment ids behind each difference. Read-only: it writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments.batch.ledger import SUCCEEDED, RunRecord, recorded_runs
from shipments.batch.measure import check_placed, latest_stage_counts, totals_stage_counts
from shipments.batch.plan import DailyPlan, daily_plan, ingest_dates, raw_layout
from shipments.config import Config
from shipments.errors import EXIT_DISAGREE, EXIT_OK, InputError
from shipments.model.tables import DAILY_TOTALS, DAILY_TOTALS_SCHEMA, DQ_RESULTS
from shipments.storage import delta, raw
from shipments.storage.delta import Commit
from shipments.storage.raw import RawFile

# How far past the lookback window to look for shipments of D that landed too late to count.
LATE_HORIZON_DAYS = 7
SAMPLE = 10
# Quarantine reasons shown per ledger line (the most frequent first).
TOP_REASONS = 3
_MEASURES = (
    "customer_name",
    "segment",
    "region",
    "shipment_count",
    "cancelled_count",
    "total_weight_kg",
    "total_charge_usd",
)
NOT_RECORDED = "not recorded"
# A restore records where it came from as its input fingerprint (batch.restore).
_RESTORED_FROM = re.compile(r"^restore:.*@v(\d+)$")
# batch.audit tags the commit that puts a partition back after a failed write check.
_PUT_BACK = ":put-back"
# Restores of restores are followed this far back, no further.
_MAX_HOPS = 20


@dataclasses.dataclass(frozen=True)
class ReconcileRequest:
    """``shipments reconcile --date D``."""

    run_date: dt.date


@dataclasses.dataclass
class Report:
    """What reconcile found: findings make it disagree; ``explained`` says where the first
    difference comes from, ``ledger`` shows the recorded numbers beside today's, notes add
    what helps."""

    run_date: dt.date
    findings: list[str] = dataclasses.field(default_factory=list)
    explained: list[str] = dataclasses.field(default_factory=list)
    ledger: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.findings

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.agrees else EXIT_DISAGREE

    def summary(self) -> str:
        verdict = "AGREE" if self.agrees else f"DISAGREE ({len(self.findings)} finding(s))"
        lines = [f"reconcile {self.run_date}: {verdict}"]
        lines += [f"  - {finding}" for finding in self.findings]
        lines += [f"  explained: {line}" for line in self.explained]
        lines += [f"  {line}" for line in self.ledger]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Stages:
    """A day's records stage by stage, as a run recorded them (None: not recorded, e.g. by a
    release older than the column) or as the raw zone gives them now."""

    read: int | None
    invalid: int | None
    duplicates: int | None
    deleted: int | None
    other_dates: int | None
    kept: int | None
    unknown_customers: int | None
    unknown_rows: int | None
    written: int | None
    early: int | None
    late: int | None
    reasons: Mapping[str, int] | None

    @classmethod
    def recorded(cls, run: RunRecord | None) -> Stages:
        if run is None:
            return cls(None, None, None, None, None, None, None, None, None, None, None, None)
        return cls(
            read=run.rows_read,
            invalid=run.rows_quarantined,
            duplicates=run.rows_duplicates,
            deleted=run.rows_deleted,
            other_dates=run.rows_other_dates,
            kept=run.rows_kept,
            unknown_customers=run.unknown_customers,
            unknown_rows=run.unknown_customer_rows,
            written=run.rows_written,
            early=run.rows_early,
            late=run.rows_late,
            reasons=_reasons(run.quarantine_reasons),
        )

    def conservation(self) -> str:
        """The identity every run checks: read = invalid + duplicates + deleted + other dates + kept."""
        read, invalid, duplicates, other, kept = self.read, self.invalid, self.duplicates, self.other_dates, self.kept
        if read is None or invalid is None or duplicates is None or other is None or kept is None:
            return f"conservation: {NOT_RECORDED}"
        # Runs older than the DMS layouts recorded no deletes: there were none to record.
        deleted, caveat = (0, " (deleted not recorded, taken as 0)") if self.deleted is None else (self.deleted, "")
        accounted = invalid + duplicates + deleted + other + kept
        verdict = "holds" if accounted == read else f"DOES NOT HOLD (off by {read - accounted})"
        return (
            f"conservation: read {read} = invalid {invalid} + duplicates {duplicates} + deleted {deleted} "
            f"+ other dates {other} + kept {kept}{caveat}: {verdict}"
        )


# (label, field) in the order records flow through a run; the first that differs explains.
_STAGES = (
    ("read", "read"),
    ("invalid", "invalid"),
    ("duplicates", "duplicates"),
    ("deleted", "deleted"),
    ("other dates", "other_dates"),
    ("kept", "kept"),
    ("unknown customers", "unknown_customers"),
    ("unknown shipments", "unknown_rows"),
    ("written", "written"),
)


@dataclasses.dataclass(frozen=True)
class Trace:
    """Who wrote what partition D holds: the daily run whose publication it is (None when no
    recorded daily run can be found), its commit, how the partition got from that commit to
    now (restores, put-backs, writes no run recorded; newest first) and those writes."""

    publisher: RunRecord | None
    version: int | None
    steps: tuple[str, ...]
    unrecorded: tuple[Commit, ...]


def run_reconcile(spark: SparkSession, config: Config, request: ReconcileRequest) -> Report:
    """Compare raw vs ``shipment_daily_totals`` for D and explain the differences, from the
    recorded ledger first and the raw zone second. Writes nothing.

    Raises:
        InputError: the day's raw folder or the customer dimension is missing.
    """
    run_date = request.run_date
    report = Report(run_date)
    window = ingest_dates(run_date, config)
    files = raw.list_raw_files(spark, config.raw, window, raw_layout(config), required=run_date, checksums=False).files
    on_day = F.col("ship_date") == F.lit(run_date)
    runs = recorded_runs(spark, config, run_date)
    with daily_plan(spark, config, files, raw.read_customers(spark, config.raw)) as plan:
        if plan.totals is None:
            raise ValueError("the daily plan was built without customers")
        expected_shipments = plan.latest.filter(on_day)
        expected = plan.totals.filter(on_day).select(*DAILY_TOTALS_SCHEMA.fieldNames())
        table = delta.read_table(spark, config, DAILY_TOTALS)
        if table is None:
            report.findings.append(
                f"table {DAILY_TOTALS.path(config)} does not exist: run `shipments daily --date {run_date}`"
            )
            actual = spark.createDataFrame([], DAILY_TOTALS_SCHEMA)
            trace = Trace(None, None, (), ())
        else:
            actual = table.filter(on_day)
            trace = _trace(spark, config, run_date, runs)
        held = None if table is None else _held(actual)
        _explain(spark, config, report, runs, trace, _recount(plan, run_date), held, files)
        _compare(expected, actual, expected_shipments, report)
        _late_beyond_window(spark, config, run_date, expected_shipments, report)
    return report


def _trace(spark: SparkSession, config: Config, run_date: dt.date, runs: Sequence[RunRecord]) -> Trace:
    """Follow partition D back from its last commit: a daily run's commit ends the trace; a
    restore (or an audit's put-back) continues from the version it put back; a commit no run
    recorded (a manual write) is kept and the trace continues beneath it."""
    by_id = {run.run_id: run for run in runs}
    recorded_versions = [run.table_version for run in runs if run.table_version is not None]
    # Nothing older than the first recorded commit of D can be what a recorded run wrote.
    since = min(recorded_versions, default=0)
    commits = delta.partition_commits(spark, DAILY_TOTALS.path(config), "ship_date", run_date, since=since)
    tagged = {commit.note: commit.version for commit in commits if commit.note}
    steps: list[str] = []
    unrecorded: list[Commit] = []
    limit: int | None = None
    for _ in range(_MAX_HOPS):
        below = [commit for commit in commits if limit is None or commit.version <= limit]
        if not below:
            break
        commit = below[-1]
        when = _when(commit.timestamp_ms)
        run = by_id.get(commit.note or "")
        if run is not None and run.job == "daily":
            return Trace(run, commit.version, tuple(steps), tuple(unrecorded))
        source = _restored_from(run) if run is not None and run.job == "restore" else None
        if run is not None and source is not None:
            steps.append(
                f"restore {run.run_id} at {when} (table version {commit.version}) put back table version {source}"
            )
            limit = source
            continue
        failed = (commit.note or "").removesuffix(_PUT_BACK)
        if (commit.note or "").endswith(_PUT_BACK) and failed in tagged:
            steps.append(
                f"table version {commit.version} at {when} put it back as of table version {tagged[failed] - 1} "
                f"after run {failed}'s write failed its check"
            )
            limit = tagged[failed] - 1
            continue
        tag = f", tagged {commit.note!r}" if commit.note else ""
        steps.append(
            f"table version {commit.version} ({commit.operation} at {when}{tag}) changed it, recorded by no run"
        )
        unrecorded.append(commit)
        limit = commit.version - 1
    return Trace(None, None, tuple(steps), tuple(unrecorded))


def _explain(
    spark: SparkSession,
    config: Config,
    report: Report,
    runs: Sequence[RunRecord],
    trace: Trace,
    now: Stages,
    held: tuple[int, int] | None,
    files: Sequence[RawFile],
) -> None:
    """The ledger of the run that published partition D beside the raw zone now, and which
    stage explains a difference first: the table against the run's record, then the run's
    record against raw."""
    run_date = report.run_date
    daily = [run for run in runs if run.job == "daily"]
    succeeded = [run for run in daily if run.status == SUCCEEDED]
    run = trace.publisher
    if run is None and succeeded:
        run = succeeded[-1]
        report.notes.append(
            f"the table's log does not show which run wrote partition {run_date} (its commits were cleaned up, "
            f"or it was written by none recorded): the ledger shown is the last successful daily run's"
        )
    if daily and daily[-1].status != SUCCEEDED and daily[-1] is not run:
        last = daily[-1]
        report.notes.append(
            f"the last daily run {last.run_id} ended {last.status}: {last.error or 'no error recorded'}"
        )
    recorded = Stages.recorded(run)

    if run is None:
        if not daily:
            report.notes.append("no daily run of this date is recorded in pipeline_runs")
        report.ledger.append(f"no ledger of a daily run of {run_date} to show; raw now by the job's rules:")
    else:
        report.ledger.append(_written_by(run_date, run, trace))
        status = "" if run.status == SUCCEEDED else f", ended {run.status}"
        report.ledger.append(
            f"ledger of daily run {run.run_id} (started {_when_dt(run.started_at)}{status}) "
            f"beside raw now by the job's rules:"
        )
    report.ledger += _ledger_lines(recorded, now)
    if run is not None:
        report.ledger.append(f"  {recorded.conservation()}")
        report.ledger.append(f"  {_checks(spark, config, run)}")
    if held is not None:
        report.ledger.append(f"table now: partition {run_date} holds {held[0]} customer rows, {held[1]} shipments")

    newer = [] if run is None else [f for f in files if f.modified_ms >= _millis(run.started_at)]
    if run is not None and held is not None:
        table_line = _table_against_run(held, recorded, trace)
        if table_line:
            report.explained.append(table_line)
    raw_line = _run_against_raw(recorded, now, newer, run_date)
    if raw_line:
        report.explained.append(raw_line)


def _written_by(run_date: dt.date, run: RunRecord, trace: Trace) -> str:
    how = "; before that ".join(trace.steps)
    if trace.publisher is None:
        return (
            f"partition {run_date}: {how or 'no commit of it is left in the table log'}; no recorded daily run beneath"
        )
    at = f" (table version {trace.version})"
    if not trace.steps:
        return f"partition {run_date} was last written by daily run {run.run_id}{at}"
    since = ", changed since by writes no run recorded" if trace.unrecorded else ""
    return f"partition {run_date}: {how}; so it holds what daily run {run.run_id} published{at}{since}"


def _ledger_lines(recorded: Stages, now: Stages) -> list[str]:
    lines = [f"  {'stage':<18}{'run':>13}{'raw now':>10}"]
    for label, field in _STAGES:
        if field == "unknown_rows":
            continue  # shown beside the unknown customers
        then, today = getattr(recorded, field), getattr(now, field)
        detail = _detail(field, recorded, now)
        shown = NOT_RECORDED if then is None else str(then)
        lines.append(f"  {label:<18}{shown:>13}{today:>10}{'   ' + detail if detail else ''}".rstrip())
    return lines


def _detail(field: str, recorded: Stages, now: Stages) -> str:
    """What a ledger line adds: the top quarantine reasons, early and late arrivals, the
    shipments of unknown customers; raw's own when they differ from the run's."""
    if field == "invalid":
        return _beside(_top_reasons(recorded.reasons, "reasons"), _top_reasons(now.reasons, "reasons"))
    if field == "kept":
        return _beside(_arrivals(recorded), _arrivals(now))
    if field == "unknown_customers":
        return _beside(_shipments(recorded.unknown_rows), _shipments(now.unknown_rows))
    if field == "written":
        return "customer rows"
    return ""


def _beside(run: str, today: str) -> str:
    return run if run == today else f"{run} (raw now: {today})"


def _top_reasons(reasons: Mapping[str, int] | None, what: str) -> str:
    if reasons is None:
        return f"{what} {NOT_RECORDED}"
    ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{reason} {count}" for reason, count in ranked[:TOP_REASONS])
    more = f", +{len(ranked) - TOP_REASONS} more reason(s)" if len(ranked) > TOP_REASONS else ""
    return f"{shown}{more}" if ranked else "none"


def _arrivals(stages: Stages) -> str:
    if stages.early is None or stages.late is None:
        return f"early/late arrivals {NOT_RECORDED}"
    return f"of which early {stages.early}, late {stages.late}"


def _shipments(rows: int | None) -> str:
    return f"shipments {NOT_RECORDED}" if rows is None else f"{rows} shipment(s)"


def _checks(spark: SparkSession, config: Config, run: RunRecord) -> str:
    """The run's checks as ``dq_results`` holds them, the failed ones named (a backfill pass's
    dates share its run id: only the run's own date)."""
    results = delta.read_table(spark, config, DQ_RESULTS)
    rows = (
        []
        if results is None
        else results.filter((F.col("run_id") == F.lit(run.run_id)) & F.col("run_date").eqNullSafe(F.lit(run.run_date)))
        .select("check_name", "severity", "passed", "detail")
        .orderBy("check_name")
        .collect()
    )
    failed = [row for row in rows if not row["passed"]]
    if not rows:
        if run.checks_failed is None:
            return f"checks: {NOT_RECORDED}"
        return (
            "checks: none judged"
            if run.checks_failed == 0
            else f"checks: {run.checks_failed} failed (not in dq_results)"
        )
    if not failed:
        return f"checks: {len(rows)} judged, none failed"
    named = "; ".join(f"{row['check_name']} ({row['severity']}): {row['detail']}" for row in failed[:SAMPLE])
    return f"checks: {len(rows)} judged, {len(failed)} failed: {named}"


def _table_against_run(held: tuple[int, int], recorded: Stages, trace: Trace) -> str | None:
    rows, shipments = held
    if recorded.kept is None or recorded.written is None:
        return None
    if (rows, shipments) == (recorded.written, recorded.kept):
        return None
    if trace.unrecorded:
        newest = trace.unrecorded[0]
        cause = (
            f"the partition changed after the run (table version {newest.version}: {newest.operation} at "
            f"{_when(newest.timestamp_ms)}, recorded by no run)"
        )
    else:
        cause = "no later commit in the table's log explains it"
    return (
        f"table holds {shipments} shipments in {rows} customer rows, the run recorded {recorded.kept} kept "
        f"in {recorded.written} rows: {cause}"
    )


def _run_against_raw(recorded: Stages, now: Stages, newer: Sequence[RawFile], run_date: dt.date) -> str | None:
    """The first stage where the run's record and raw now part, and what that says."""
    landed = _files(newer)
    agreed: list[str] = []
    for label, field in _STAGES:
        then, today = getattr(recorded, field), getattr(now, field)
        if then is None or then == today:
            agreed += [] if then is None else [label]
            continue
        if field == "read":
            if today > then:
                rerun = f"rerun `shipments daily --date {run_date}`"
                cause = (
                    f"{today - then} record(s) landed after the run ({landed}); {rerun}"
                    if newer
                    else f"{today - then} record(s) more, yet no input file is newer than the run "
                    f"(the window or layout differs from the run's?)"
                )
            else:
                cause = f"{then - today} record(s) fewer: input files were removed or rewritten after the run"
                cause += f" ({landed})" if newer else ""
            return f"raw now holds {today} records, the run read {then}: {cause}"
        if field in ("unknown_customers", "unknown_rows", "written"):
            cause = "the customer dimension changed after the run"
        elif newer:
            cause = f"input changed in place after the run ({landed})"
        else:
            cause = "the same input gives other counts: the job's rules changed since the run (a new release?)"
        alike = f" ({', '.join(agreed)} agree)" if agreed else ""
        return f"{label} differs first: the run recorded {then}, raw now gives {today}{alike}: {cause}"
    if newer:
        return (
            f"every recorded stage counts as raw now does, but {len(newer)} input file(s) landed or changed "
            f"after the run ({landed})"
        )
    return None


def _files(files: Sequence[RawFile]) -> str:
    names = ", ".join(f.path.rsplit("/", 1)[-1] + f" (ingest {f.ingest_date})" for f in files[:SAMPLE])
    more = f", and {len(files) - SAMPLE} more" if len(files) > SAMPLE else ""
    return f"{len(files)} file(s): {names}{more}"


def _recount(plan: DailyPlan, run_date: dt.date) -> Stages:
    """The stages of a run, counted on today's raw zone by the daily job's own plan (the same
    definitions as ``batch.measure``): one aggregation per cached frame."""
    if plan.totals is None:
        raise ValueError("the daily plan was built without customers")
    unplaced = F.when(F.col("ingest_date").isNull(), F.col("source_file")).alias("unplaced")
    groups = plan.validated.groupBy("reason", unplaced).count().collect()
    check_placed(row["unplaced"] for row in groups)
    by_reason: Counter[str | None] = Counter()
    for row in groups:
        by_reason[row["reason"]] += int(row["count"])
    read = sum(by_reason.values())
    reasons = {reason: count for reason, count in by_reason.items() if reason is not None}
    latest = plan.latest.agg(*latest_stage_counts(F.lit(run_date))).collect()[0]
    sums = plan.totals.agg(*totals_stage_counts(F.lit(run_date))).collect()[0]
    invalid = sum(reasons.values())
    return Stages(
        read=read,
        invalid=invalid,
        duplicates=read - invalid - latest["shipments"],
        deleted=latest["deleted"],
        other_dates=sums["other_dates"],
        kept=sums["kept"],
        unknown_customers=sums["unknown_customers"],
        unknown_rows=sums["unknown_rows"],
        written=sums["rows_written"],
        early=latest["early"],
        late=latest["late"],
        reasons=reasons,
    )


def _held(partition: DataFrame) -> tuple[int, int]:
    """(customer rows, shipments) a partition of the totals holds."""
    row = partition.agg(
        F.count(F.lit(1)).alias("rows"), F.coalesce(F.sum("shipment_count"), F.lit(0)).alias("shipments")
    ).collect()[0]
    return int(row["rows"]), int(row["shipments"])


def _reasons(text: str | None) -> dict[str, int] | None:
    """A run's ``quarantine_reasons`` (a JSON object reason -> count); None when not recorded."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else None


def _restored_from(run: RunRecord) -> int | None:
    found = _RESTORED_FROM.match(run.input_fingerprint or "")
    return int(found.group(1)) if found else None


def _millis(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


def _when(epoch_ms: int) -> str:
    return _when_dt(dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC))


def _when_dt(instant: dt.datetime) -> str:
    return f"{instant.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _compare(expected: DataFrame, actual: DataFrame, expected_shipments: DataFrame, report: Report) -> None:
    duplicated = actual.groupBy("customer_id").count().filter(F.col("count") > 1)
    fanned = [r.customer_id for r in duplicated.limit(SAMPLE).collect()]
    if fanned:
        report.findings.append(f"fan-out: customer_id(s) {', '.join(fanned)} appear more than once in the partition")

    exp = expected.select("customer_id", *[F.col(m).alias(f"exp_{m}") for m in _MEASURES])
    act = actual.groupBy("customer_id").agg(*[F.first(m).alias(f"act_{m}") for m in _MEASURES])
    joined = exp.join(act, on="customer_id", how="full_outer")
    differs = F.lit(False)
    for m in _MEASURES:
        differs = differs | ~F.col(f"exp_{m}").eqNullSafe(F.col(f"act_{m}"))
    diff_rows = joined.filter(differs).orderBy("customer_id").collect()
    if not diff_rows:
        return
    missing = [r.customer_id for r in diff_rows if r.act_shipment_count is None]
    extra = [r.customer_id for r in diff_rows if r.exp_shipment_count is None]
    changed = [r for r in diff_rows if r.act_shipment_count is not None and r.exp_shipment_count is not None]
    if missing:
        report.findings.append(f"{len(missing)} customer(s) in raw but not in the table: {', '.join(missing[:SAMPLE])}")
    if extra:
        report.findings.append(f"{len(extra)} customer(s) in the table but not in raw: {', '.join(extra[:SAMPLE])}")
    for r in changed[:SAMPLE]:
        parts = [
            f"{m} raw {r[f'exp_{m}']} vs table {r[f'act_{m}']}" for m in _MEASURES if r[f"exp_{m}"] != r[f"act_{m}"]
        ]
        report.findings.append(f"customer {r.customer_id}: {'; '.join(parts)}")
    if len(changed) > SAMPLE:
        report.findings.append(f"... and {len(changed) - SAMPLE} more customer(s) differ")
    affected = missing + [r.customer_id for r in changed]
    if affected:
        ids = [
            r.shipment_id
            for r in expected_shipments.filter(F.col("customer_id").isin(affected[: SAMPLE * 10]))
            .select("shipment_id")
            .orderBy("shipment_id")
            .limit(SAMPLE)
            .collect()
        ]
        report.notes.append(f"shipments behind the differences include: {', '.join(ids)}")


def _late_beyond_window(
    spark: SparkSession,
    config: Config,
    run_date: dt.date,
    expected_shipments: DataFrame,
    report: Report,
) -> None:
    first_late = run_date + dt.timedelta(days=config.daily.lookback_days + 1)
    later = [first_late + dt.timedelta(days=i) for i in range(LATE_HORIZON_DAYS)]
    chosen = raw_layout(config)
    files: list[RawFile] = []
    landed: list[dt.date] = []
    for day in later:
        try:
            files += raw.list_raw_files(spark, config.raw, [day], chosen, required=day, checksums=False).files
        except InputError:  # nothing landed that day
            continue
        landed.append(day)
    if not files:
        return
    with daily_plan(spark, config, files) as later_plan:
        late = later_plan.latest.filter(F.col("ship_date") == F.lit(run_date)).join(
            expected_shipments.select("shipment_id"), on="shipment_id", how="left_anti"
        )
        rows = late.select("shipment_id").orderBy("shipment_id").collect()
    if rows:
        report.findings.append(
            f"{len(rows)} shipment(s) of {run_date} landed after the lookback window "
            f"(ingest dates {landed[0]}..{landed[-1]}; daily.lookback_days is {config.daily.lookback_days}): "
            f"{', '.join(r.shipment_id for r in rows[:SAMPLE])}; raise the lookback or reprocess with a wider one"
        )
