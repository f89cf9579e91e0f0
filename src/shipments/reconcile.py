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

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments import io
from shipments.backfill import last_daily_runs
from shipments.config import Config
from shipments.daily import ingest_dates, read_shipment_lines
from shipments.errors import InputError
from shipments.ledger import SUCCEEDED
from shipments.schemas import DAILY_TOTALS_SCHEMA
from shipments.tables import DAILY_TOTALS
from shipments.transforms.aggregate import to_daily_totals
from shipments.transforms.dedup import to_latest_versions
from shipments.transforms.enrich import to_customer_dimension, with_customer
from shipments.transforms.validate import filter_valid, with_validation

EXIT_AGREE = 0
EXIT_DISAGREE = 3
# How far past the lookback window to look for shipments of D that landed too late to count.
LATE_HORIZON_DAYS = 7
SAMPLE = 10
_MEASURES = ("customer_name", "segment", "region", "shipment_count", "cancelled_count", "total_weight_kg", "total_charge_usd")


@dataclasses.dataclass
class Report:
    run_date: dt.date
    findings: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.findings

    def render(self) -> str:
        verdict = "AGREE" if self.agrees else f"DISAGREE ({len(self.findings)} finding(s))"
        lines = [f"reconcile {self.run_date}: {verdict}"]
        lines += [f"  - {finding}" for finding in self.findings]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _valid_latest(spark: SparkSession, config: Config, files: list[io.RawFile], cached: list[DataFrame]) -> DataFrame:
    """Latest valid version per shipment; the frames it caches are added to ``cached``.

    Cached, like in the daily job: uncached, Spark pushes the ``reason`` filter below the parse
    and evaluates ``from_json`` once per reference (about 30 times a line).
    """
    validated = read_shipment_lines(spark, config, files).transform(with_validation).persist(StorageLevel.MEMORY_AND_DISK_DESER)
    latest = validated.transform(filter_valid).transform(to_latest_versions).persist(StorageLevel.MEMORY_AND_DISK_DESER)
    cached += [validated, latest]
    return latest


def reconcile(spark: SparkSession, config: Config, run_date: dt.date) -> Report:
    """Compare raw vs ``shipment_daily_totals`` for ``run_date`` and explain the differences.

    Raises:
        InputError: the day's raw folder or the customer dimension is missing.
    """
    report = Report(run_date)
    window = ingest_dates(run_date, config.daily.lookback_days)
    files = io.list_raw_files(spark, config.raw, window, config.daily.raw_format)
    customers = io.read_customers(spark, config.raw).transform(to_customer_dimension)
    on_day = F.col("ship_date") == F.lit(run_date)
    cached: list[DataFrame] = []
    expected_shipments = _valid_latest(spark, config, files, cached).filter(on_day)
    expected = (
        expected_shipments.transform(with_customer, customers).transform(to_daily_totals).select(*DAILY_TOTALS_SCHEMA.fieldNames())
    )

    table_path = DAILY_TOTALS.path(config)
    if not DeltaTable.isDeltaTable(spark, table_path):
        report.findings.append(f"table {table_path} does not exist: run `shipments daily --date {run_date}`")
        actual = spark.createDataFrame([], DAILY_TOTALS_SCHEMA)
    else:
        actual = spark.read.format("delta").load(table_path).filter(on_day)

    _explain_runs(spark, config, run_date, files, report)
    _compare(expected, actual, expected_shipments, report)
    _late_beyond_window(spark, config, run_date, expected_shipments, report, cached)
    for frame in cached:
        frame.unpersist()
    return report


def _explain_runs(spark: SparkSession, config: Config, run_date: dt.date, files: list[io.RawFile], report: Report) -> None:
    last = last_daily_runs(spark, config, run_date, run_date).get(run_date)
    if last is None:
        report.notes.append("no daily run of this date is recorded in pipeline_runs")
        return
    if last.status != SUCCEEDED:
        report.notes.append(f"the last daily run {last.run_id} ended {last.status}")
    started_ms = int(last.started_at.replace(tzinfo=dt.UTC).timestamp() * 1000)
    newer = [f for f in files if f.modified_ms >= started_ms]
    if newer:
        names = ", ".join(f.path.rsplit("/", 1)[-1] + f" (ingest {f.ingest_date})" for f in newer[:SAMPLE])
        report.notes.append(
            f"{len(newer)} input file(s) landed or changed after the last run {last.run_id} started "
            f"({last.started_at:%Y-%m-%d %H:%M:%S} UTC): {names}; rerun `shipments daily --date {run_date}`"
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
        parts = [f"{m} raw {r[f'exp_{m}']} vs table {r[f'act_{m}']}" for m in _MEASURES if r[f"exp_{m}"] != r[f"act_{m}"]]
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
    cached: list[DataFrame],
) -> None:
    first_late = run_date + dt.timedelta(days=config.daily.lookback_days + 1)
    later = [first_late + dt.timedelta(days=i) for i in range(LATE_HORIZON_DAYS)]
    landed = [d for d in later if io.path_exists(spark, io.ingest_folder(config.raw, d))]
    files: list[io.RawFile] = []
    for day in landed:
        try:
            files += io.list_raw_files(spark, config.raw, [day], config.daily.raw_format)
        except InputError:  # a folder without data files: nothing landed there
            continue
    if not files:
        return
    late = (
        _valid_latest(spark, config, files, cached)
        .filter(F.col("ship_date") == F.lit(run_date))
        .join(expected_shipments.select("shipment_id"), on="shipment_id", how="left_anti")
    )
    rows = late.select("shipment_id").orderBy("shipment_id").collect()
    if rows:
        report.findings.append(
            f"{len(rows)} shipment(s) of {run_date} landed after the lookback window "
            f"(ingest dates {landed[0]}..{landed[-1]}; daily.lookback_days is {config.daily.lookback_days}): "
            f"{', '.join(r.shipment_id for r in rows[:SAMPLE])}; raise the lookback or reprocess with a wider one"
        )


def run_reconcile_command(spark: SparkSession, config: Config, run_date: dt.date) -> int:
    report = reconcile(spark, config, run_date)
    print(report.render())
    return EXIT_AGREE if report.agrees else EXIT_DISAGREE
