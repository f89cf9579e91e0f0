"""Measure a daily run: the counts that must conserve records, and what its checks judge.

Everything comes from one aggregation per cached frame of the plan (records by file and
reason, latest versions, totals); the few extra reads a check needs (the partition a run would
replace, the same-weekday history in ``pipeline_runs``, the first record of a few input files)
are small and made only when that check is configured.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from shipments.batch import audit
from shipments.batch.plan import DailyPlan, raw_layout
from shipments.config import Config
from shipments.errors import DataQualityError
from shipments.model.fields import RAW_SHIPMENT_FIELDS
from shipments.model.layouts import JSON_LINES
from shipments.model.shipments import REQUIRED_SHIPMENT_FIELDS
from shipments.model.tables import DAILY_TOTALS, PIPELINE_RUNS
from shipments.ops_config import RECORDS, TOTALS, CheckSpec
from shipments.quality.judge import DayObservations
from shipments.quality.rules import broken, row_rules, rule_counts
from shipments.storage import delta, fs
from shipments.storage.raw import RawFile

# New fields are looked for in the first record of this many of D's input files.
SCHEMA_SAMPLE_FILES = 5
_SAMPLES = 5


@dataclasses.dataclass(frozen=True)
class DailyCounts:
    """Where every record read ended up:
    ``read == kept + other_dates + duplicates + quarantined + deleted`` (deleted: shipments
    whose latest version is a DMS delete)."""

    read: int
    kept: int
    other_dates: int
    duplicates: int
    quarantined: int
    deleted: int
    unknown_customers: int
    unknown_customer_rows: int
    dimension_duplicates: int
    rows_written: int
    early: int = 0
    late: int = 0

    @property
    def conserved(self) -> bool:
        return self.read == self.kept + self.other_dates + self.duplicates + self.quarantined + self.deleted

    def ledger_values(self) -> dict[str, int]:
        """The counts under their ``pipeline_runs`` column names."""
        return {
            "rows_read": self.read,
            "rows_duplicates": self.duplicates,
            "rows_quarantined": self.quarantined,
            "rows_deleted": self.deleted,
            "rows_other_dates": self.other_dates,
            "rows_kept": self.kept,
            "unknown_customers": self.unknown_customers,
            "unknown_customer_rows": self.unknown_customer_rows,
            "dimension_duplicates": self.dimension_duplicates,
            "rows_written": self.rows_written,
            "rows_early": self.early,
            "rows_late": self.late,
        }


@dataclasses.dataclass(frozen=True)
class Measured:
    counts: DailyCounts
    seen: DayObservations
    newest_event: dt.datetime | None

    def reasons_json(self) -> str:
        """The invalid records read, by reason: ``pipeline_runs.quarantine_reasons``."""
        return json.dumps(dict(sorted(self.seen.reasons.items())), separators=(",", ":"))


def measure_day(
    spark: SparkSession,
    config: Config,
    plan: DailyPlan,
    run_date: dt.date,
    files: Sequence[RawFile],
    landed: dict[str, int],
) -> Measured:
    """All of a run's counts and check observations, checked before any write; ``landed``: the
    records each input file holds, counted apart from the parse (``audit.landed_records``).

    Raises:
        DataQualityError: the parse lost or gained records, the counts do not conserve records,
            or a total overflowed.
        ConfigError: a row rule names a column its table does not have.
    """
    if plan.totals is None or plan.customers is None:
        raise ValueError("the daily plan was built without customers")
    specs = config.quality.daily
    record_rules = row_rules(specs, RECORDS, ("warn", "fail"))
    totals_rules = row_rules(specs, TOTALS, ("warn", "fail"))
    validated = plan.validated

    # Records per file and reason, in one pass: their sums are the run's read and quarantined
    # counts, the audit compares them per file with what the files hold, and a required field
    # missing from every record of a file is schema drift.
    by_file = validated.groupBy("source_file", "reason").agg(
        F.count(F.lit(1)).alias("records"), *rule_counts(record_rules, validated, F.col("reason").isNull())
    )
    groups = by_file.collect()
    per_file: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    rule_failures: Counter[str] = Counter()
    for row in groups:
        per_file[row["source_file"]] += row["records"]
        if row["reason"] is not None:
            rejected[row["source_file"]] += row["records"]
            reasons[row["reason"]] += row["records"]
        for spec in record_rules:
            rule_failures[spec.name] += row[f"rule_{spec.name}"]
    audit.check_read(landed, dict(per_file), run_date)
    read, quarantined = sum(per_file.values()), sum(rejected.values())

    on_day = F.col("ship_date") == F.lit(run_date)
    live_on_day = on_day & ~F.col("deleted")
    latest = plan.latest.agg(
        *latest_stage_counts(run_date), F.max(F.when(live_on_day, F.col("updated_at"))).alias("newest")
    ).collect()[0]
    unique = [s for s in specs if s.check == "unique"]
    sums = plan.totals.agg(
        *totals_stage_counts(run_date),
        F.count(F.when(F.col("total_charge_usd").isNull(), True)).alias("overflows"),
        *rule_counts(totals_rules, plan.totals, on_day),
        *[_repeats(spec, on_day) for spec in unique],
    ).collect()[0]
    dimension_duplicates = plan.customers.filter(F.col("copies") > 1).count()

    counts = DailyCounts(
        read=read,
        kept=sums["kept"],
        other_dates=sums["other_dates"],
        duplicates=read - quarantined - latest["shipments"],
        quarantined=quarantined,
        deleted=latest["deleted"],
        unknown_customers=sums["unknown_customers"],
        unknown_customer_rows=sums["unknown_rows"],
        dimension_duplicates=dimension_duplicates,
        rows_written=sums["rows_written"],
        early=latest["early"],
        late=latest["late"],
    )
    _check_invariants(counts, sums["overflows"], run_date)
    for spec in totals_rules:
        rule_failures[spec.name] += sums[f"rule_{spec.name}"]
    samples = {
        spec.name: _rule_samples(spec, validated, plan.totals, on_day)
        for spec in (*record_rules, *totals_rules)
        if rule_failures[spec.name]
    }
    vanished = _vanished(groups, per_file, specs)
    drifted = {path for paths in vanished.values() for path in paths}
    seen = DayObservations(
        run_date=run_date,
        read=read,
        quarantined=quarantined,
        kept=counts.kept,
        unknown_rows=counts.unknown_customer_rows,
        reasons=dict(reasons),
        worst_files=tuple(fs.file_name(path) for path, _ in rejected.most_common(_SAMPLES)),
        drifted_records=sum(per_file[path] for path in drifted),
        drifted_files=len(drifted),
        vanished={field: tuple(fs.file_name(p) for p in paths) for field, paths in vanished.items()},
        new_fields=_new_fields(spark, config, files, run_date) if _has(specs, "schema") else {},
        rule_failures=dict(rule_failures),
        rule_rows={RECORDS: read - quarantined, TOTALS: counts.rows_written},
        rule_samples=samples,
        duplicate_keys={spec.name: sums[f"repeats_{spec.name}"] for spec in unique},
        published=_published(spark, config, run_date) if _has(specs, "shrink") else None,
        history=_history(spark, config, run_date, specs),
    )
    return Measured(counts, seen, latest["newest"])


def latest_stage_counts(run_date: dt.date) -> list[Column]:
    """Aggregates over the latest versions: ``shipments``, ``deleted``, and D's live shipments
    whose winning version landed in an earlier (``early``) or later (``late``) ingest folder."""
    live_on_day = (F.col("ship_date") == F.lit(run_date)) & ~F.col("deleted")
    return [
        F.count(F.lit(1)).alias("shipments"),
        F.count(F.when(F.col("deleted"), True)).alias("deleted"),
        F.count(F.when(live_on_day & (F.col("ingest_date") < F.lit(run_date)), True)).alias("early"),
        F.count(F.when(live_on_day & (F.col("ingest_date") > F.lit(run_date)), True)).alias("late"),
    ]


def totals_stage_counts(run_date: dt.date) -> list[Column]:
    """Aggregates over the totals of every ship date seen: D's shipments (``kept``), the other
    dates' (``other_dates``), D's rows (``rows_written``), its unknown customers and their
    shipments (``unknown_customers``, ``unknown_rows``)."""
    on_day = F.col("ship_date") == F.lit(run_date)
    unknown = on_day & ~F.col("customer_known")
    return [
        F.coalesce(F.sum(F.when(on_day, F.col("shipment_count"))), F.lit(0)).alias("kept"),
        F.coalesce(F.sum(F.when(~on_day, F.col("shipment_count"))), F.lit(0)).alias("other_dates"),
        F.count(F.when(on_day, True)).alias("rows_written"),
        F.count(F.when(unknown, True)).alias("unknown_customers"),
        F.coalesce(F.sum(F.when(unknown, F.col("shipment_count"))), F.lit(0)).alias("unknown_rows"),
    ]


def _has(specs: Sequence[CheckSpec], kind: str) -> bool:
    return any(s.check == kind for s in specs)


def _repeats(spec: CheckSpec, on_day: Column) -> Column:
    key = F.struct(*[F.col(c) for c in spec.columns])
    return (F.count(F.when(on_day, True)) - F.countDistinct(F.when(on_day, key))).alias(f"repeats_{spec.name}")


def _rule_samples(spec: CheckSpec, validated: DataFrame, totals: DataFrame, on_day: Column) -> tuple[str, ...]:
    """A few keys of rows breaking a rule (only asked for rules that failed)."""
    if spec.table == RECORDS:
        rows = validated.filter(F.col("reason").isNull() & broken(spec, validated)).select("shipment_id")
    else:
        rows = totals.filter(on_day & broken(spec, totals)).select("customer_id")
    return tuple(sorted(str(r[0]) for r in rows.limit(_SAMPLES).collect()))


def _vanished(groups: Sequence[Row], per_file: Counter[str], specs: Sequence[CheckSpec]) -> dict[str, tuple[str, ...]]:
    """Required field -> files in which no record has it: at least ``min_rows`` records lack it
    (one at the least: a single bad line is an invalid record, not a schema change) and every
    other record failed a rule checked before it (malformed, or an earlier field missing), so
    nothing in the file shows the field."""
    schema = next((s for s in specs if s.check == "schema"), None)
    if schema is None:
        return {}
    least = max(schema.min_rows, 1)
    by_file: dict[str, Counter[str]] = {}
    for row in groups:
        by_file.setdefault(row["source_file"], Counter())[row["reason"] or ""] += row["records"]
    missing: dict[str, list[str]] = {}
    for position, name in enumerate(REQUIRED_SHIPMENT_FIELDS):
        before = {f"missing_field:{earlier}" for earlier in REQUIRED_SHIPMENT_FIELDS[: position + 1]}
        for path, reasons in by_file.items():
            hidden = sum(n for reason, n in reasons.items() if reason in before or reason.startswith("malformed_"))
            if reasons[f"missing_field:{name}"] >= least and hidden == per_file[path]:
                missing.setdefault(name, []).append(path)
    return {name: tuple(sorted(paths)) for name, paths in missing.items()}


def _new_fields(
    spark: SparkSession, config: Config, files: Sequence[RawFile], run_date: dt.date
) -> dict[str, tuple[str, ...]]:
    """Fields the contract does not name, in the first record of a few of D's JSON-lines files
    (other formats: their readers map columns by name and report nothing here)."""
    formats = {kind.name: kind.format for kind in raw_layout(config).kinds}
    sample = [f for f in files if f.ingest_date == run_date and formats.get(f.kind) == JSON_LINES]
    known = {name.lower() for name in RAW_SHIPMENT_FIELDS}
    found: dict[str, list[str]] = {}
    for f in sorted(sample)[:SCHEMA_SAMPLE_FILES]:
        line = fs.read_first_line(spark, f.path)
        try:
            record = json.loads(line) if line else None
        except ValueError:
            continue
        if isinstance(record, dict):
            for name in sorted(set(record) - known):
                found.setdefault(str(name), []).append(fs.file_name(f.path))
    return {name: tuple(paths) for name, paths in found.items()}


def _published(spark: SparkSession, config: Config, run_date: dt.date) -> int | None:
    """The shipments partition D of the totals holds now (None when it holds none)."""
    totals = delta.read_table(spark, config, DAILY_TOTALS)
    if totals is None:
        return None
    value = totals.filter(F.col("ship_date") == F.lit(run_date)).agg(F.sum("shipment_count")).collect()[0][0]
    return None if value is None else int(value)


def _history(spark: SparkSession, config: Config, run_date: dt.date, specs: Sequence[CheckSpec]) -> dict[dt.date, int]:
    """D's weekday in the trailing weeks: the shipments each date's latest successful daily run
    kept (what it published)."""
    volume = [s for s in specs if s.check == "volume"]
    runs = delta.read_table(spark, config, PIPELINE_RUNS) if volume else None
    if runs is None:
        return {}
    weeks = max(s.weeks for s in volume)
    dates = [run_date - dt.timedelta(weeks=w) for w in range(1, weeks + 1)]
    rows = (
        runs.filter((F.col("job") == F.lit("daily")) & (F.col("status") == F.lit("SUCCEEDED")))
        .filter(F.col("run_date").isin(*dates))
        .groupBy("run_date")
        .agg(F.max_by("rows_kept", F.struct("started_at", "ended_at")).alias("kept"))
        .collect()
    )
    return {row["run_date"]: int(row["kept"]) for row in rows if row["kept"] is not None}


def _check_invariants(counts: DailyCounts, overflows: int, run_date: dt.date) -> None:
    if overflows:
        raise DataQualityError(f"{overflows} total_charge_usd sum(s) overflow decimal(18,2); nothing was written")
    if not counts.conserved:
        raise DataQualityError(
            f"records do not conserve for {run_date}: read {counts.read} != kept {counts.kept} + other dates "
            f"{counts.other_dates} + duplicates {counts.duplicates} + quarantined {counts.quarantined} "
            f"+ deleted {counts.deleted} "
            f"(the customer join gained or lost rows); nothing was written"
        )
