"""Measure a daily run: the counts that must conserve records, and what its checks judge.

Everything comes from one aggregation per cached frame of the plan (records by file and
reason, latest versions, totals); the few extra reads a check needs (the partition a run would
replace, the same-weekday history in ``pipeline_runs``, the first record of a few input files)
are small and made only when that check is configured.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from shipments.background import Background
from shipments.batch import audit
from shipments.batch.plan import RUN_DATE, DailyPlan, ingest_dates, raw_layout
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
from shipments.storage import landed as landed_files
from shipments.storage.raw import RawFile

# New fields are looked for in the first record of this many of D's input files.
SCHEMA_SAMPLE_FILES = 5
_SAMPLES = 5
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


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
    """``measure_days`` for the one date the plan was built for."""
    return measure_days(spark, config, plan, [run_date], files, landed)[run_date]


def measure_days(
    spark: SparkSession,
    config: Config,
    plan: DailyPlan,
    run_dates: Sequence[dt.date],
    files: Sequence[RawFile],
    landed: dict[str, int],
) -> dict[dt.date, Measured]:
    """All counts and check observations of the run of each of ``run_dates`` (the plan built
    for them), checked before any write; ``landed``: the records each input file holds, counted
    apart from the parse (``audit.landed_records``). The same few aggregations serve one date or
    a backfill pass of many, grouped by run date.

    Raises:
        DataQualityError: the parse lost or gained records, a record has no ingest date (its
            file not in the listing), the counts of a date do not conserve records, or a total
            overflowed.
        ConfigError: a row rule names a column its table does not have.
    """
    if plan.totals is None or plan.customers is None:
        raise ValueError("the daily plan was built without customers")
    specs = config.quality.daily
    record_rules = row_rules(specs, RECORDS, ("warn", "fail"))
    totals_rules = row_rules(specs, TOTALS, ("warn", "fail"))
    validated = plan.validated
    on_day = F.col("ship_date") == F.col(RUN_DATE)
    # The checks' reads of other tables need nothing of the plan: they overlap its aggregations.
    published_now = Background(
        lambda: _published(spark, config, run_dates) if _has(specs, "shrink") else {}, "measure-published"
    )
    history_now = Background(lambda: _history(spark, config, run_dates, specs), "measure-history")

    # Records per file and reason, in one pass: their sums are a run's read and quarantined
    # counts, the audit compares them per file with what the files hold, and a required field
    # missing from every record of a file is schema drift. A run date sums the files its window
    # reads.
    groups = (
        validated.groupBy("source_file", "ingest_date", "reason")
        .agg(F.count(F.lit(1)).alias("records"), *rule_counts(record_rules, validated, F.col("reason").isNull()))
        .collect()
    )
    check_placed(row["source_file"] for row in groups if row["ingest_date"] is None)
    live_on_day = on_day & ~F.col("deleted")
    latest = _by_run_date(
        plan.latest.groupBy(RUN_DATE).agg(
            *latest_stage_counts(F.col(RUN_DATE)),
            # As epoch microseconds: collect() would give a naive time in the driver's zone.
            F.unix_micros(F.max(F.when(live_on_day, F.col("updated_at")))).alias("newest"),
        )
    )
    unique = [s for s in specs if s.check == "unique"]
    sums = _by_run_date(
        plan.totals.groupBy(RUN_DATE).agg(
            *totals_stage_counts(F.col(RUN_DATE)),
            F.count(F.when(F.col("total_charge_usd").isNull(), True)).alias("overflows"),
            *rule_counts(totals_rules, plan.totals, on_day),
            *[_repeats(spec, on_day) for spec in unique],
        )
    )
    dimension_duplicates = plan.customers.filter(F.col("copies") > 1).count()
    published, history = published_now.result(), history_now.result()
    keys = landed_files.file_keys(spark, (f.path for f in files))

    measured: dict[dt.date, Measured] = {}
    for run_date in run_dates:
        window = set(ingest_dates(run_date, config))
        day_groups = [row for row in groups if row["ingest_date"] in window]
        per_file: Counter[str] = Counter()
        rejected: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        rule_failures: Counter[str] = Counter()
        for row in day_groups:
            per_file[row["source_file"]] += row["records"]
            if row["reason"] is not None:
                rejected[row["source_file"]] += row["records"]
                reasons[row["reason"]] += row["records"]
            for spec in record_rules:
                rule_failures[spec.name] += row[f"rule_{spec.name}"]
        day_keys = (keys[f.path] for f in files if f.ingest_date in window)
        audit.check_read({key: landed[key] for key in day_keys if key in landed}, dict(per_file), run_date)
        read, quarantined = sum(per_file.values()), sum(rejected.values())
        # A date with no valid record (or no live shipment) has no group: its counts are zero.
        day_latest = collections.defaultdict(int, latest.get(run_date, {}))
        day_sums = collections.defaultdict(int, sums.get(run_date, {}))
        counts = DailyCounts(
            read=read,
            kept=day_sums["kept"],
            other_dates=day_sums["other_dates"],
            duplicates=read - quarantined - day_latest["shipments"],
            quarantined=quarantined,
            deleted=day_latest["deleted"],
            unknown_customers=day_sums["unknown_customers"],
            unknown_customer_rows=day_sums["unknown_rows"],
            dimension_duplicates=dimension_duplicates,
            rows_written=day_sums["rows_written"],
            early=day_latest["early"],
            late=day_latest["late"],
        )
        _check_invariants(counts, day_sums["overflows"], run_date)
        for spec in totals_rules:
            rule_failures[spec.name] += day_sums[f"rule_{spec.name}"]
        samples = {
            spec.name: _rule_samples(spec, plan, window, run_date)
            for spec in (*record_rules, *totals_rules)
            if rule_failures[spec.name]
        }
        vanished = _vanished(day_groups, per_file, specs)
        drifted = {path for paths in vanished.values() for path in paths}
        seen = DayObservations(
            run_date=run_date,
            read=read,
            quarantined=quarantined,
            kept=counts.kept,
            unknown_rows=counts.unknown_customer_rows,
            reasons=dict(reasons),
            worst_files=tuple(fs.file_name(path) for path, _ in sorted(rejected.items(), key=_most)[:_SAMPLES]),
            drifted_records=sum(per_file[path] for path in drifted),
            drifted_files=len(drifted),
            vanished={field: tuple(fs.file_name(p) for p in paths) for field, paths in vanished.items()},
            new_fields=_new_fields(spark, config, files, run_date) if _has(specs, "schema") else {},
            rule_failures=dict(rule_failures),
            rule_rows={RECORDS: read - quarantined, TOTALS: counts.rows_written},
            rule_samples=samples,
            duplicate_keys={spec.name: day_sums[f"repeats_{spec.name}"] for spec in unique},
            published=published.get(run_date) if _has(specs, "shrink") else None,
            history=history.get(run_date, {}),
        )
        newest = day_latest.get("newest")
        newest_event = None if newest is None else _EPOCH + dt.timedelta(microseconds=newest)
        measured[run_date] = Measured(counts, seen, newest_event)
    return measured


def latest_stage_counts(run_date: Column) -> list[Column]:
    """Aggregates over the latest versions: ``shipments``, ``deleted``, and D's live shipments
    whose winning version landed in an earlier (``early``) or later (``late``) ingest folder.
    ``run_date``: D (a literal, or a pass's ``run_date`` column)."""
    live_on_day = (F.col("ship_date") == run_date) & ~F.col("deleted")
    return [
        F.count(F.lit(1)).alias("shipments"),
        F.count(F.when(F.col("deleted"), True)).alias("deleted"),
        F.count(F.when(live_on_day & (F.col("ingest_date") < run_date), True)).alias("early"),
        F.count(F.when(live_on_day & (F.col("ingest_date") > run_date), True)).alias("late"),
    ]


def totals_stage_counts(run_date: Column) -> list[Column]:
    """Aggregates over the totals of every ship date seen: D's shipments (``kept``), the other
    dates' (``other_dates``), D's rows (``rows_written``), its unknown customers and their
    shipments (``unknown_customers``, ``unknown_rows``). ``run_date`` as for
    ``latest_stage_counts``."""
    on_day = F.col("ship_date") == run_date
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


def _most(item: tuple[str, int]) -> tuple[int, str]:
    """Most first, then by name: the same order whatever order the rows were collected in."""
    return -item[1], item[0]


def _by_run_date(aggregates: DataFrame) -> dict[dt.date, dict[str, Any]]:
    return {row[RUN_DATE]: row.asDict() for row in aggregates.collect()}


def _rule_samples(spec: CheckSpec, plan: DailyPlan, window: set[dt.date], run_date: dt.date) -> tuple[str, ...]:
    """A few keys of rows breaking a rule in the run of ``run_date`` (which reads the folders
    of ``window``); only asked for rules that failed."""
    if spec.table == RECORDS:
        read = plan.validated.filter(F.col("ingest_date").isin(*window))
        rows = read.filter(F.col("reason").isNull() & broken(spec, read)).select("shipment_id")
    else:
        if plan.totals is None:
            raise ValueError("the daily plan was built without customers")
        day = (F.col(RUN_DATE) == F.lit(run_date)) & (F.col("ship_date") == F.lit(run_date))
        rows = plan.totals.filter(day & broken(spec, plan.totals)).select("customer_id")
    return tuple(str(r[0]) for r in rows.orderBy(rows.columns[0]).limit(_SAMPLES).collect())


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


def _published(spark: SparkSession, config: Config, run_dates: Sequence[dt.date]) -> dict[dt.date, int]:
    """The shipments each partition of ``run_dates`` of the totals holds now (absent when none)."""
    totals = delta.read_table(spark, config, DAILY_TOTALS)
    if totals is None:
        return {}
    rows = (
        totals.filter(F.col("ship_date").isin(*run_dates))
        .groupBy("ship_date")
        .agg(F.sum("shipment_count").alias("shipments"))
        .collect()
    )
    return {row["ship_date"]: int(row["shipments"]) for row in rows if row["shipments"] is not None}


def _history(
    spark: SparkSession, config: Config, run_dates: Sequence[dt.date], specs: Sequence[CheckSpec]
) -> dict[dt.date, dict[dt.date, int]]:
    """Per run date D, D's weekday in the trailing weeks: the shipments each date's latest
    successful daily run kept (what it published)."""
    volume = [s for s in specs if s.check == "volume"]
    runs = delta.read_table(spark, config, PIPELINE_RUNS) if volume else None
    if runs is None:
        return {}
    weeks = max(s.weeks for s in volume)
    trailing = {d: [d - dt.timedelta(weeks=w) for w in range(1, weeks + 1)] for d in run_dates}
    rows = (
        runs.filter((F.col("job") == F.lit("daily")) & (F.col("status") == F.lit("SUCCEEDED")))
        .filter(F.col("run_date").isin(*{d for dates in trailing.values() for d in dates}))
        .groupBy("run_date")
        .agg(F.max_by("rows_kept", F.struct("started_at", "ended_at")).alias("kept"))
        .collect()
    )
    kept = {row["run_date"]: int(row["kept"]) for row in rows if row["kept"] is not None}
    return {d: {past: kept[past] for past in dates if past in kept} for d, dates in trailing.items()}


def check_placed(unplaced: Iterable[str | None]) -> None:
    """Refuse records read without the ingest date of their file (the readers take it from the
    listing, by file name): such a record would belong to no run date and be counted by none.
    ``unplaced``: the files of such records (None entries are ignored).

    Raises:
        DataQualityError: naming one of the files.
    """
    files = sorted({path for path in unplaced if path is not None})
    if files:
        raise DataQualityError(
            f"{len(files)} file(s) read but not found in the listing, e.g. {files[0]}: "
            f"their records would be counted in no run; nothing was written"
        )


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
