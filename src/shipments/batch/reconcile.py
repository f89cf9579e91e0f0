"""``shipments reconcile --date D``: does the table still say what the raw zone says, and if not, why?

The raw zone is read again with the daily job's own rules (the same pure transforms) and
compared, customer by customer, with partition D of ``shipment_daily_totals``. Differences are
explained from what can be observed: files that landed or changed after the last successful run,
shipments of D that landed after the lookback window, a partition holding a customer twice
(fan-out), a partition written by something other than the last run (a restore, a manual
write), and the shipment ids behind each difference. Read-only: it writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments.batch.ledger import SUCCEEDED, last_runs
from shipments.batch.plan import daily_plan, ingest_dates, raw_layout
from shipments.config import Config
from shipments.errors import EXIT_DISAGREE, EXIT_OK, InputError
from shipments.model.tables import DAILY_TOTALS, DAILY_TOTALS_SCHEMA
from shipments.storage import delta, raw
from shipments.storage.raw import RawFile

# How far past the lookback window to look for shipments of D that landed too late to count.
LATE_HORIZON_DAYS = 7
SAMPLE = 10
_MEASURES = (
    "customer_name",
    "segment",
    "region",
    "shipment_count",
    "cancelled_count",
    "total_weight_kg",
    "total_charge_usd",
)


@dataclasses.dataclass(frozen=True)
class ReconcileRequest:
    """``shipments reconcile --date D``."""

    run_date: dt.date


@dataclasses.dataclass
class Report:
    """What reconcile found: findings make it disagree, notes explain."""

    run_date: dt.date
    findings: list[str] = dataclasses.field(default_factory=list)
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
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def run_reconcile(spark: SparkSession, config: Config, request: ReconcileRequest) -> Report:
    """Compare raw vs ``shipment_daily_totals`` for D and explain the differences. Writes nothing.

    Raises:
        InputError: the day's raw folder or the customer dimension is missing.
    """
    run_date = request.run_date
    report = Report(run_date)
    window = ingest_dates(run_date, config)
    files = raw.list_raw_files(spark, config.raw, window, raw_layout(config), required=run_date, checksums=False).files
    on_day = F.col("ship_date") == F.lit(run_date)
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
        else:
            actual = table.filter(on_day)
        _explain_runs(spark, config, run_date, files, report)
        _compare(expected, actual, expected_shipments, report)
        _late_beyond_window(spark, config, run_date, expected_shipments, report)
    return report


def _explain_runs(spark: SparkSession, config: Config, run_date: dt.date, files: list[RawFile], report: Report) -> None:
    last = last_runs(spark, config, "daily", run_date, run_date).get(run_date)
    if last is None:
        report.notes.append("no daily run of this date is recorded in pipeline_runs")
        return
    if last.status != SUCCEEDED:
        report.notes.append(f"the last daily run {last.run_id} ended {last.status}")
    newer = [f for f in files if f.modified_ms >= last.started_ms]
    if newer:
        names = ", ".join(f.path.rsplit("/", 1)[-1] + f" (ingest {f.ingest_date})" for f in newer[:SAMPLE])
        report.notes.append(
            f"{len(newer)} input file(s) landed or changed after the last run {last.run_id} started "
            f"({dt.datetime.fromtimestamp(last.started_ms / 1000, dt.UTC):%Y-%m-%d %H:%M:%S} UTC): {names}; "
            f"rerun `shipments daily --date {run_date}`"
        )


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
    totals = expected.agg(F.coalesce(F.sum("shipment_count"), F.lit(0)).alias("n")).collect()[0].n
    in_table = actual.agg(F.coalesce(F.sum("shipment_count"), F.lit(0)).alias("n")).collect()[0].n
    report.notes.append(f"raw (by the job's rules) has {totals} shipments on this date, the table {in_table}")
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
