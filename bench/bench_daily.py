"""The daily job against a bare Spark read+write and DuckDB, on the same generated raw zone.

For each rung of a volume ladder (250k, 500k, 1M shipments a day, times ``BENCH_SCALE``) the
raw zone of the benchmarked day D and its lookback day D+1 is generated once (and reused by
later runs), then, warm, in one long-lived SparkSession built from conf/local.yaml:

(a) ``daily``: ``shipments.batch.daily.run_daily`` for D on a fresh lake (table creation, listing,
    validation, dedup, join, totals, conservation check, two replaceWhere commits, the ledger);
(b) ``bare Spark``: the same files read with the same fixed schema, written as Parquet, nothing
    else: the floor for any Spark job over this input;
(c) ``DuckDB``: the same logical job on the same files with 2 threads: validate, quarantine,
    latest version per shipment_id, deduplicated customer join, day totals, Parquet out;
(d) the floor the job's guarantees set: its own reader (all-string fields, so that every
    quarantine reason and the exact charge come from the text) alone, and with the validation,
    into Spark's ``noop`` sink (no cache, nothing written). No daily run can take less than (d),
    so a goal below it cannot be met without giving up one of those guarantees.

Each timing is repeated ``BENCH_REPEATS`` times (default 3) and the median reported. At the
largest rung the DuckDB totals are compared with the Delta table the daily job wrote.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.common import config, load_average, median, repeats, scale, spark_session, table, timed
from shipments.batch import daily, ledger
from shipments.batch.daily import DailyRequest, DailyResult, run_daily
from shipments.batch.plan import ingest_dates, raw_layout, read_shipment_records, validated_records
from shipments.config import Config
from shipments.devtools.generate import generate_raw_zone
from shipments.model.fields import RAW_SHIPMENT_FIELDS
from shipments.model.shipments import MAX_WEIGHT_KG, RAW_SHIPMENT_SCHEMA, SHIPMENT_STATUSES
from shipments.storage import delta
from shipments.storage import raw as raw_zone

RUN_DATE = dt.date(2026, 11, 2)
LADDER = (250_000, 500_000, 1_000_000)
SEED = 11
# Issue 11, goal 1: the daily job at most this many times the bare Spark read+write, warm, by rung
# of the ladder (the long-term target is LONG_TERM_GOAL at every rung).
GOALS = {250_000: 2.5, 1_000_000: 2.0}
LONG_TERM_GOAL = 1.3


def run(workdir: Path) -> str:
    spark = spark_session()
    reps = repeats()
    rungs = [max(1_000, round(n * scale())) for n in LADDER]
    zones = {n: _raw_zone(workdir / f"raw-{n}", n) for n in rungs}

    # Warm-up (untimed): class loading, JIT and Delta's first-use costs are not part of any number.
    _daily(spark, zones[rungs[0]][0], workdir / "lake")
    _bare(spark, zones[rungs[0]][0], workdir / "bare")
    _duckdb(zones[rungs[0]][0], workdir / "duckdb")
    for floor in FLOORS:
        _floor(spark, zones[rungs[0]][0], floor)

    measured: dict[int, dict[str, Any]] = {}
    for n in rungs:
        raw = zones[n][0]
        times: dict[str, list[float]] = {name: [] for name in ("daily", "bare", "duckdb", *FLOORS)}
        phases: list[dict[str, float]] = []
        loads = [load_average()]
        for _ in range(reps):
            # Interleaved, so a burst of load from other work hits all three alike.
            seconds, _ = timed(lambda raw=raw: _bare(spark, raw, workdir / "bare"))
            times["bare"].append(seconds)
            seconds, (daily_result, spent) = timed(lambda raw=raw: _daily(spark, raw, workdir / "lake"))
            times["daily"].append(seconds)
            phases.append(spent)
            seconds, duck_result = timed(lambda raw=raw: _duckdb(raw, workdir / "duckdb"))
            times["duckdb"].append(seconds)
            for floor in FLOORS:
                seconds, _ = timed(lambda raw=raw, floor=floor: _floor(spark, raw, floor))
                times[floor].append(seconds)
        loads.append(load_average())
        measured[n] = {"times": times, "daily": daily_result, "duckdb": duck_result, "phases": phases, "load": loads}
        print(f"  {n} shipments/day: " + ", ".join(f"{k} {median(v):.1f}s" for k, v in times.items()), flush=True)

    top = rungs[-1]
    agreement = _compare(spark, workdir / "lake", measured[top]["daily"], measured[top]["duckdb"])
    return _report(rungs, zones, measured, reps, agreement)


# --- input -------------------------------------------------------------------------------------


def _raw_zone(folder: Path, shipments_per_day: int) -> tuple[Path, dict[str, Any]]:
    """Generate (or reuse: the generator is seeded) the raw zone for ingest dates D and D+1."""
    params = {"start": RUN_DATE.isoformat(), "days": 2, "shipments_per_day": shipments_per_day, "seed": SEED}
    marker = folder / "_bench.json"
    if marker.exists() and json.loads(marker.read_text()).get("params") == params:
        return folder, json.loads(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    seconds, summary = timed(
        lambda: generate_raw_zone(folder, RUN_DATE, 2, shipments_per_day=shipments_per_day, seed=SEED, events_per_day=0)
    )
    shutil.rmtree(folder / "events", ignore_errors=True)
    files = [p for p in (folder / "shipments").rglob("*") if p.is_file()]
    info = {
        "params": params,
        "summary": summary.summary(),
        "generate_seconds": round(seconds, 1),
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
    }
    marker.write_text(json.dumps(info))
    print(f"  generated {folder} in {seconds:.0f}s: {summary.summary()}", flush=True)
    return folder, info


def _files(spark: SparkSession, raw: Path) -> list[raw_zone.RawFile]:
    settings = config(raw, raw)
    return raw_zone.list_raw_files(
        spark, str(raw), ingest_dates(RUN_DATE, settings), raw_layout(settings), required=RUN_DATE
    ).files


# --- (a) the daily job ---------------------------------------------------------------------------

# Where a daily run spends its time: the stages of shipments.batch.daily, timed by wrapping them for the
# length of one run (behaviour unchanged). "compute" is everything up to the conservation check:
# parse + validate (cached), latest versions (cached), totals (cached), the counts.
PHASES = (
    ("ensure_tables", delta, "ensure_tables", "create the missing tables (a new lake: all 5, at once)"),
    ("compute", daily, "measure_day", "parse, validate, dedup, join, totals, counts, checks"),
    ("writes", delta, "replace_partitions", "2 replaceWhere writes + commits"),
    ("ledger", ledger, "record_run", "pipeline_runs append"),
)


@contextlib.contextmanager
def _phase_timer() -> Iterator[dict[str, float]]:
    spent = {name: 0.0 for name, *_ in PHASES}
    originals = []
    for name, module, attr, _ in PHASES:
        original = getattr(module, attr)
        originals.append((module, attr, original))

        def timed_call(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_name] += time.perf_counter() - started

        setattr(module, attr, functools.wraps(original)(timed_call))
    try:
        yield spent
    finally:
        for module, attr, original in originals:
            setattr(module, attr, original)


def _daily(spark: SparkSession, raw: Path, lake: Path) -> tuple[DailyResult, dict[str, float]]:
    shutil.rmtree(lake, ignore_errors=True)  # a fresh lake every time (tables created by the run)
    with _phase_timer() as spent:
        started = time.perf_counter()
        result = run_daily(spark, config(raw, lake), DailyRequest(RUN_DATE))
        spent["other"] = time.perf_counter() - started - sum(spent.values())
    return result, spent


# --- (b) bare Spark: read with the fixed schema, write Parquet -----------------------------------


def _bare(spark: SparkSession, raw: Path, out: Path) -> None:
    paths = [f.path for f in _files(spark, raw)]
    spark.read.schema(RAW_SHIPMENT_SCHEMA).json(paths).write.mode("overwrite").parquet(str(out))


# --- (d) the floor: the job's own parse and validation, nothing written --------------------------

# Each floor variant: what it runs (bench_daily's "floor" table), and the job's own function for it.
FLOORS: dict[str, tuple[str, Callable[[SparkSession, Config, Sequence[raw_zone.RawFile]], DataFrame]]] = {
    "parse": (
        "the job's reader: text lines, `from_json` with all-string fields, the charge's exact text",
        read_shipment_records,
    ),
    "validate": (
        "the reader + the validation (every built-in rule and the configured row rules)",
        validated_records,
    ),
}


def _floor(spark: SparkSession, raw: Path, variant: str) -> None:
    """Run floor ``variant`` over the benchmarked day's files into the ``noop`` sink."""
    _, records = FLOORS[variant]
    records(spark, config(raw, raw), _files(spark, raw)).write.format("noop").mode("overwrite").save()


# --- (c) DuckDB: the same logical job ------------------------------------------------------------

_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
_STATUSES = ", ".join(f"'{s}'" for s in SHIPMENT_STATUSES)
# (column in the DuckDB query, contract field name), in the order the daily job checks them.
_REQUIRED = (
    ("shipment_id", "shipment_id"),
    ("customer_id", "customer_id"),
    ("created_raw", "created_at"),
    ("updated_raw", "updated_at"),
    ("weight_raw", "weight_kg"),
    ("charge_raw", "charge_usd"),
)


def _duckdb(raw: Path, out: Path) -> dict[str, int]:
    """Validate, quarantine, keep the latest version, join customers, total D; write Parquet."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    files = sorted(
        str(p)
        for d in ingest_dates(RUN_DATE, config(raw, raw))
        for p in (raw / "shipments" / f"ingest_date={d}").glob("*.json*")
    )
    con = duckdb.connect()
    try:
        con.execute("SET threads = 2")
        con.execute("SET TimeZone = 'UTC'")
        paths = "[" + ", ".join(f"'{p}'" for p in files) + "]"
        json_paths = "[" + ", ".join(f"'$.{name}'" for name in RAW_SHIPMENT_FIELDS) + "]"
        missing = "\n".join(f"WHEN {c} IS NULL OR {c} = '' THEN 'missing_field:{name}'" for c, name in _REQUIRED)
        con.execute(f"""
            CREATE TEMP TABLE validated AS
            WITH lines AS (
                SELECT line AS raw_text, filename AS source_file,
                       CAST(regexp_extract(filename, 'ingest_date=(\\d{{4}}-\\d{{2}}-\\d{{2}})', 1) AS DATE)
                           AS ingest_date
                FROM read_csv({paths}, columns = {{'line': 'VARCHAR'}}, delim = '\\x1f', quote = '', escape = '',
                              header = false, filename = true)
            ), parsed AS (
                SELECT *, CASE WHEN raw_text IS NOT NULL AND json_valid(raw_text) AND json_type(raw_text) = 'OBJECT'
                               THEN json_extract_string(raw_text, {json_paths}) END AS v
                FROM lines
            ), fields AS (
                SELECT ingest_date, source_file, raw_text, v IS NOT NULL AS is_object,
                       trim(v[1]) AS shipment_id, trim(v[2]) AS customer_id, trim(v[3]) AS created_raw,
                       trim(v[4]) AS updated_raw, v[5] AS status, v[6] AS origin_region, v[7] AS destination_region,
                       trim(v[8]) AS weight_raw, trim(v[9]) AS charge_raw
                FROM parsed
            ), typed AS (
                SELECT *,
                       CASE WHEN regexp_full_match(created_raw, '{_ISO}')
                            THEN try_cast(created_raw AS TIMESTAMPTZ) END AS created_at,
                       CASE WHEN regexp_full_match(updated_raw, '{_ISO}')
                            THEN try_cast(updated_raw AS TIMESTAMPTZ) END AS updated_at,
                       try_cast(weight_raw AS DOUBLE) AS weight_kg,
                       try_cast(charge_raw AS DECIMAL(38, 10)) AS charge_exact
                FROM fields
            )
            SELECT ingest_date, source_file, raw_text, shipment_id, customer_id, created_at, updated_at, status,
                   origin_region, destination_region, weight_kg, charge_exact, CAST(created_at AS DATE) AS ship_date,
                   CASE
                       WHEN NOT is_object THEN 'malformed_json'
                       {missing}
                       WHEN created_at IS NULL THEN 'bad_timestamp:created_at'
                       WHEN updated_at IS NULL THEN 'bad_timestamp:updated_at'
                       WHEN weight_kg IS NULL THEN 'bad_number:weight_kg'
                       WHEN charge_exact IS NULL THEN 'bad_number:charge_usd'
                       WHEN weight_kg < 0 OR weight_kg > {MAX_WEIGHT_KG} OR isnan(weight_kg)
                            THEN 'out_of_range:weight_kg'
                       WHEN charge_exact < 0 OR charge_exact >= 1e16 THEN 'out_of_range:charge_usd'
                       WHEN charge_exact <> round(charge_exact, 2) THEN 'bad_precision:charge_usd'
                       WHEN status IS NOT NULL AND status NOT IN ({_STATUSES}) THEN 'bad_value:status'
                   END AS reason
            FROM typed
        """)
        con.execute("""
            CREATE TEMP TABLE latest AS
            SELECT shipment_id, customer_id, updated_at, status, weight_kg,
                   CAST(charge_exact AS DECIMAL(18, 2)) AS charge_usd, ship_date
            FROM validated
            WHERE reason IS NULL
            QUALIFY row_number() OVER (
                PARTITION BY shipment_id
                ORDER BY updated_at DESC, created_at DESC, status DESC NULLS LAST, customer_id DESC,
                         origin_region DESC NULLS LAST, destination_region DESC NULLS LAST, weight_kg DESC,
                         charge_exact DESC
            ) = 1
        """)
        con.execute(f"""
            CREATE TEMP TABLE customers AS
            SELECT trim(customer_id) AS customer_id, coalesce(trim(customer_name), '') AS customer_name,
                   coalesce(trim(segment), '') AS segment, coalesce(trim(region), '') AS region,
                   count(*) OVER (PARTITION BY trim(customer_id)) AS copies
            FROM read_csv('{raw}/customers/*.csv', header = true, all_varchar = true)
            WHERE trim(customer_id) <> ''
            QUALIFY row_number() OVER (
                PARTITION BY trim(customer_id)
                ORDER BY coalesce(trim(customer_name), ''), coalesce(trim(segment), ''), coalesce(trim(region), '')
            ) = 1
        """)
        con.execute("""
            CREATE TEMP TABLE totals AS
            SELECT l.ship_date, l.customer_id,
                   coalesce(c.customer_name, 'UNKNOWN') AS customer_name, coalesce(c.segment, 'UNKNOWN') AS segment,
                   coalesce(c.region, 'UNKNOWN') AS region,
                   count(*) AS shipment_count, count(*) FILTER (WHERE l.status = 'CANCELLED') AS cancelled_count,
                   CAST(sum(CAST(l.weight_kg AS DECIMAL(38, 9))) AS DOUBLE) AS total_weight_kg,
                   CAST(sum(l.charge_usd) AS DECIMAL(18, 2)) AS total_charge_usd,
                   bool_or(c.customer_id IS NOT NULL) AS customer_known
            FROM latest AS l LEFT JOIN customers AS c ON l.customer_id = c.customer_id
            GROUP BY ALL
        """)
        day = f"DATE '{RUN_DATE.isoformat()}'"
        con.execute(f"""
            COPY (SELECT * EXCLUDE (customer_known) FROM totals WHERE ship_date = {day})
            TO '{out}/shipment_daily_totals.parquet' (FORMAT parquet)
        """)
        con.execute(f"""
            COPY (SELECT ingest_date, ship_date, shipment_id, reason, raw_text, source_file
                  FROM validated WHERE reason IS NOT NULL AND ingest_date = {day})
            TO '{out}/quarantine.parquet' (FORMAT parquet)
        """)
        row = con.execute(f"""
            SELECT (SELECT count(*) FROM validated),
                   (SELECT count(*) FROM validated WHERE reason IS NOT NULL),
                   (SELECT count(*) FROM validated WHERE reason IS NULL) - (SELECT count(*) FROM latest),
                   (SELECT coalesce(sum(shipment_count), 0) FROM totals WHERE ship_date = {day}),
                   (SELECT coalesce(sum(shipment_count), 0) FROM totals WHERE ship_date <> {day}),
                   (SELECT count(*) FROM totals WHERE ship_date = {day})
        """).fetchone()
    finally:
        con.close()
    counts = dict(
        zip(("read", "quarantined", "duplicates", "kept", "other_dates", "rows_written"), row or (), strict=True)
    )
    if counts["read"] != counts["kept"] + counts["other_dates"] + counts["duplicates"] + counts["quarantined"]:
        raise RuntimeError(f"DuckDB counts do not conserve: {counts}")
    return counts


# --- sanity check and report ---------------------------------------------------------------------


def _compare(spark: SparkSession, lake: Path, daily: DailyResult, duck: dict[str, int]) -> str:
    """Do DuckDB and the daily job agree, row for row, on D's totals and on the counts?"""
    spark_rows = {
        r["customer_id"]: r.asDict()
        for r in spark.read.format("delta")
        .load(str(lake / "shipment_daily_totals"))
        .filter(F.col("ship_date") == RUN_DATE)
        .collect()
    }
    con = duckdb.connect()
    try:
        result = con.execute(f"SELECT * FROM '{lake.parent / 'duckdb' / 'shipment_daily_totals.parquet'}'")
        names = [d[0] for d in result.description]
        duck_rows = {r[1]: dict(zip(names, r, strict=True)) for r in result.fetchall()}
    finally:
        con.close()
    problems = []
    for key in sorted(set(spark_rows) | set(duck_rows)):
        a, b = spark_rows.get(key), duck_rows.get(key)
        if a is None or b is None:
            problems.append(f"customer {key} only in {'DuckDB' if a is None else 'Spark'}")
            continue
        for col in ("customer_name", "segment", "region", "shipment_count", "cancelled_count", "total_charge_usd"):
            if (Decimal(a[col]) if col == "total_charge_usd" else a[col]) != (
                Decimal(b[col]) if col == "total_charge_usd" else b[col]
            ):
                problems.append(f"{key}.{col}: Spark {a[col]} vs DuckDB {b[col]}")
        if abs(a["total_weight_kg"] - b["total_weight_kg"]) > 1e-6 * max(1.0, abs(a["total_weight_kg"])):
            problems.append(f"{key}.total_weight_kg: Spark {a['total_weight_kg']} vs DuckDB {b['total_weight_kg']}")
    c = daily.counts
    spark_counts = {
        "read": c.read,
        "quarantined": c.quarantined,
        "duplicates": c.duplicates,
        "kept": c.kept,
        "other_dates": c.other_dates,
        "rows_written": c.rows_written,
    }
    for name, value in spark_counts.items():
        if duck[name] != value:
            problems.append(f"count {name}: Spark {value} vs DuckDB {duck[name]}")
    verdict = (
        f"**AGREE**: {len(spark_rows)} (ship_date, customer_id) rows identical (counts and decimal charge exact, "
        f"weight within 1e-6), and the line counts match ({', '.join(f'{k} {v}' for k, v in spark_counts.items())})."
        if not problems
        else f"**DISAGREE** ({len(problems)} differences): " + "; ".join(problems[:10])
    )
    print(f"  DuckDB vs daily job: {verdict}", flush=True)
    return verdict


def _report(
    rungs: list[int],
    zones: dict[int, tuple[Path, dict[str, Any]]],
    measured: dict[int, dict[str, Any]],
    reps: int,
    agreement: str,
) -> str:
    rows = []
    for n in rungs:
        t = {k: median(v) for k, v in measured[n]["times"].items()}
        info, c = zones[n][1], measured[n]["daily"].counts
        rows.append(
            (
                f"{n:,}",
                f"{c.read:,}",
                f"{info['bytes'] / 1e6:.0f}",
                f"{t['daily']:.1f}",
                f"{t['bare']:.1f}",
                f"{t['duckdb']:.1f}",
                f"{t['daily'] / t['bare']:.2f}x",
                f"{t['daily'] / t['duckdb']:.1f}x",
                " / ".join(measured[n]["load"]),
            )
        )
    first, last = rungs[0], rungs[-1]
    growth = []
    for key, label in (("daily", "daily job"), ("bare", "bare Spark"), ("duckdb", "DuckDB")):
        lo, hi = median(measured[first]["times"][key]), median(measured[last]["times"][key])
        growth.append(f"{label} {hi / lo:.2f}x")
    verdicts = []
    for ladder_n, n in zip(LADDER, rungs, strict=True):
        if ladder_n in GOALS:
            t = {k: median(v) for k, v in measured[n]["times"].items()}
            ratio, goal, floor = t["daily"] / t["bare"], GOALS[ladder_n], t["validate"] / t["bare"]
            below = "; the goal is below it" if floor > goal else ""
            verdicts.append(
                f"- {n:,} shipments/day: daily / bare Spark **{ratio:.2f}x**, goal <= {goal}x: "
                f"**{'PASS' if ratio <= goal else 'MISS'}** (long-term target {LONG_TERM_GOAL}x: "
                f"{'met' if ratio <= LONG_TERM_GOAL else 'not yet'}; the floor, parse + validation with "
                f"nothing written: {floor:.2f}x{below}; load average {' / '.join(measured[n]['load'])})"
            )
    floor_rows = [
        (
            f"`{variant}`",
            description,
            *[
                f"{median(measured[n]['times'][variant]):.1f} s, "
                f"{median(measured[n]['times'][variant]) / median(measured[n]['times']['bare']):.2f}x"
                for n in rungs
            ],
        )
        for variant, (description, _) in FLOORS.items()
    ]
    phase_rows = [
        (
            f"`{name}`",
            description,
            *[f"{median([p[name] for p in measured[n]['phases']]):.1f}" for n in rungs],
        )
        for name, _, _, description in (*PHASES, ("other", None, None, "listing, reading the dimension, planning"))
    ]
    spread = "; ".join(
        f"{n:,}: " + ", ".join(f"{k} " + "/".join(f"{s:.1f}" for s in v) for k, v in measured[n]["times"].items())
        for n in rungs
    )
    return "\n".join(
        [
            "## Daily job",
            "",
            f"Raw zone: `shipments generate` (seed {SEED}) for ingest dates {RUN_DATE} and "
            f"{RUN_DATE + dt.timedelta(days=1)} "
            f"(the job's lookback), N shipments created per day, half of the lines in plain .jsonl, half in .jsonl.gz "
            f"(one unsplittable task each); the job for {RUN_DATE} reads both days. Warm: one long-lived SparkSession "
            f"(conf/local.yaml, local[2]), a warm-up pass of each before any timing; each number is the median of "
            f"{reps} interleaved runs. (a) `run_daily` on a fresh lake, (b) bare Spark: read the same files with "
            f"the same fixed schema and write Parquet, (c) DuckDB, 2 threads, the same logical job (validate, "
            f"quarantine, latest "
            f"version per shipment_id, deduplicated customer join, day totals, Parquet), (d) the floor: the job's "
            f"own parse and validation with nothing written (its table below).",
            "",
            table(
                [
                    "shipments/day",
                    "lines read",
                    "input MB",
                    "daily s",
                    "bare Spark s",
                    "DuckDB s",
                    "daily / bare",
                    "daily / DuckDB",
                    "load avg before / after",
                ],
                rows,
            ),
            "",
            "Goals (issue 11, warm, ratios of medians measured side by side):",
            "",
            *verdicts,
            "",
            "The floor the job's guarantees set (each variant into Spark's `noop` sink: no cache, nothing "
            "written; seconds, and the ratio to bare Spark's read+write of the same rung, medians of the same "
            "interleaved runs). Every quarantine reason and the exact charge are decided from the line's text, so "
            "the reader keeps every field a string; bare Spark reads numbers as numbers and judges nothing. A "
            "daily run does all of this and then dedups, joins, totals and writes two tables and the ledger: a "
            'goal below this floor needs one of those guarantees given up (bench/README.md, "The floor").',
            "",
            table(["variant", "what", *[f"{n:,}/day" for n in rungs]], floor_rows),
            "",
            "Where the daily job's time goes (median seconds per stage of `shipments.daily`; bare Spark's "
            "whole read+write for comparison is in the table above):",
            "",
            table(["stage", "what", *[f"{n:,}/day" for n in rungs]], phase_rows),
            "",
            f"Growth from {first:,} to {last:,} shipments/day ({last / first:.0f}x the volume): {', '.join(growth)} "
            "(only meaningful when the load average stayed about the same across the rungs; the ratios "
            "within a rung are measured side by side and hold up better).",
            "",
            f"DuckDB vs the daily job at {last:,} shipments/day: {agreement}",
            "",
            f"All runs (seconds): {spread}.",
        ]
    )
