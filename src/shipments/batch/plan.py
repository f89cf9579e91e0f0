"""The daily plan: raw files -> parsed records -> validated -> latest versions -> (with
customers) totals.

One function builds it, with its caching policy, for the daily job and for reconcile alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shipments.config import Config
from shipments.model.layouts import (
    CSV_NO_HEADER,
    CSV_WITH_HEADER,
    DMS_CSV,
    DMS_PARQUET,
    JSON_LINES,
    JSON_RECORDS,
    PARQUET,
    Layout,
    layout,
)
from shipments.quality.rules import with_quarantine_rules
from shipments.storage import raw
from shipments.storage.raw import RawFile
from shipments.transforms.aggregate import to_daily_totals
from shipments.transforms.dedup import filter_live, to_latest_versions
from shipments.transforms.enrich import to_customer_dimension, with_customer
from shipments.transforms.parse import (
    PARSED_COLUMNS,
    parse_csv_rows,
    parse_json_lines,
    parse_parquet_rows,
    to_json_records,
    with_source_zone,
)
from shipments.transforms.validate import to_valid_shipments, with_validation


def ingest_dates(run_date: dt.date, config: Config) -> list[dt.date]:
    """The ingest partitions the job for ``run_date`` reads: D-lookbehind .. D+lookback.

    D+lookback catches shipments that land late; D-lookbehind the early ones (a producer clock a
    little ahead, or folders cut by a local date, put some of D's shipments in D-1's folder).
    """
    first = -config.daily.lookbehind_days
    return [run_date + dt.timedelta(days=i) for i in range(first, config.daily.lookback_days + 1)]


def raw_layout(config: Config) -> Layout:
    """The layout of ``<raw>/shipments/`` the config (or ``--layout``) names."""
    daily = config.daily
    return layout(daily.layout, raw_format=daily.raw_format, dms_date_folder=daily.dms_date_folder)


_PARSERS: dict[str, Callable[[DataFrame], DataFrame]] = {
    JSON_LINES: parse_json_lines,
    JSON_RECORDS: lambda files: files.transform(to_json_records).transform(parse_json_lines),
    CSV_WITH_HEADER: parse_csv_rows,
    CSV_NO_HEADER: parse_csv_rows,
    PARQUET: parse_parquet_rows,
}


def read_shipment_records(spark: SparkSession, config: Config, files: Sequence[RawFile]) -> DataFrame:
    """The raw files as parsed records (``PARSED_COLUMNS``), whatever their layout and format."""
    chosen = raw_layout(config)
    frames = []
    for kind in chosen.kinds:
        of_kind = [f for f in files if f.kind == kind.name]
        if of_kind:
            frames.append(raw.read_raw_files(spark, of_kind, kind).transform(_PARSERS[kind.format]))
    parsed = functools.reduce(DataFrame.unionByName, frames).select(*PARSED_COLUMNS)
    if chosen.name in (DMS_CSV, DMS_PARQUET):
        parsed = parsed.transform(with_source_zone, config.daily.source_timezone)
    return parsed


def validated_records(spark: SparkSession, config: Config, files: Sequence[RawFile]) -> DataFrame:
    """Every line of ``files`` parsed and judged (``VALIDATED_COLUMNS``: ``reason`` null when
    valid), by the built-in rules and the configured row rules; not cached (see ``daily_plan``)."""
    rules = functools.partial(with_quarantine_rules, specs=config.quality.daily)
    return read_shipment_records(spark, config, files).transform(with_validation, rules)


@dataclasses.dataclass(frozen=True)
class DailyPlan:
    """The cached stages of one day's computation.

    ``validated``: every line read, with its ``reason`` (``VALIDATED_COLUMNS``);
    ``latest``: the latest valid version of each shipment (a DMS delete included, ``deleted``
    true; totals leave it out); ``customers``: the deduplicated
    dimension with ``copies``, and ``totals``: daily totals for every ship date seen (with
    ``customer_known``) — both None when the plan was built without customers.

    Built for run dates (``run_dates``), ``latest`` and ``totals`` hold them apart in a
    ``run_date`` column: what the run of each date would compute alone, from the folders its
    window reads (``validated`` stays one row per line read).
    """

    validated: DataFrame
    latest: DataFrame
    customers: DataFrame | None
    totals: DataFrame | None


RUN_DATE = "run_date"


def for_run_dates(shipments: DataFrame, config: Config, run_dates: Sequence[dt.date]) -> DataFrame:
    """Each record once per run date of ``run_dates`` whose window reads its folder, in
    ``run_date``: the run for D reads folders D-lookbehind .. D+lookback, so a record landed in
    folder I belongs to the runs of I-lookback .. I+lookbehind. Requires ``ingest_date``."""
    first = F.date_sub("ingest_date", config.daily.lookback_days)
    windows = F.sequence(first, F.date_add("ingest_date", config.daily.lookbehind_days))
    return shipments.withColumn(RUN_DATE, F.explode(windows)).filter(F.col(RUN_DATE).isin(*run_dates))


@contextlib.contextmanager
def daily_plan(
    spark: SparkSession,
    config: Config,
    files: Sequence[RawFile],
    customers: DataFrame | None = None,
    *,
    run_dates: Sequence[dt.date] | None = None,
) -> Iterator[DailyPlan]:
    """Build the plan over ``files`` (and the raw customer dimension, when given), for
    ``run_dates`` when given (see ``DailyPlan``); its caches are released when the block ends.

    JSON parsing is most of the cost: parse once, then serve counts, totals and quarantine from
    the cached result. The cache must stay: on an uncached frame the optimizer pushes the
    ``reason`` filters below the projection and re-evaluates from_json once per reference (about
    30 times a line). ``MEMORY_AND_DISK_DESER`` (what ``DataFrame.cache()`` uses) keeps the cached
    column batches as objects; PySpark's plain MEMORY_AND_DISK also serializes them, which cost
    ~15% of the caching pass (bench/README.md, "daily job" notes).
    """
    cached: list[DataFrame] = []

    def keep(frame: DataFrame, level: StorageLevel = StorageLevel.MEMORY_AND_DISK_DESER) -> DataFrame:
        cached.append(frame.persist(level))
        return frame

    try:
        validated = keep(validated_records(spark, config, files))
        valid = validated.transform(to_valid_shipments)
        by: tuple[str, ...] = ()
        if run_dates is not None and len(run_dates) > 1:
            # A pass: one shuffle, by shipment, before the rows are copied to their run dates:
            # the latest per (run date, shipment) then groups in the task that made the copies. A
            # folder serves up to lookbehind + lookback + 1 dates of a pass: each folder's
            # latest version per shipment is kept first, and only it is copied (bench/README.md,
            # "Backfill: the latest versions of a pass"). The shuffle comes before any partial
            # aggregate, so re-sends are not combined before it. One date copies nothing: its
            # latest versions keep the partial aggregate before their shuffle, which on a feed of
            # five versions a shipment took 0.92x the time (bench/README.md, "One date: no
            # shuffle before the copies").
            valid = to_latest_versions(valid.repartition("shipment_id"), ("ingest_date",))
        if run_dates is not None:
            valid, by = for_run_dates(valid, config, run_dates), (RUN_DATE,)
        latest = keep(to_latest_versions(valid, by))
        dimension = totals = None
        if customers is not None:
            dimension = keep(customers.transform(to_customer_dimension))
            live = latest.transform(filter_live).transform(with_customer, dimension)
            totals = keep(to_daily_totals(live, by))
        yield DailyPlan(validated, latest, dimension, totals)
    finally:
        for frame in reversed(cached):
            frame.unpersist()
