"""The daily plan: raw files -> validated lines -> latest versions -> (with customers) totals.

One function builds it, with its caching policy, for the daily job and for reconcile alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from shipments.config import Config
from shipments.storage import raw
from shipments.storage.raw import RawFile
from shipments.transforms.aggregate import to_daily_totals
from shipments.transforms.dedup import to_latest_versions
from shipments.transforms.enrich import to_customer_dimension, with_customer
from shipments.transforms.validate import parse_csv_rows, parse_json_lines, to_valid_shipments, with_validation


def ingest_dates(run_date: dt.date, lookback_days: int) -> list[dt.date]:
    """The ingest partitions the job for ``run_date`` reads: D .. D+lookback."""
    return [run_date + dt.timedelta(days=i) for i in range(lookback_days + 1)]


def read_shipment_lines(spark: SparkSession, config: Config, files: Sequence[RawFile]) -> DataFrame:
    """The raw files as parsed lines (``parse_json_lines``'s columns), JSON or CSV per config."""
    if config.daily.raw_format == "csv":
        return raw.read_raw_csv(spark, files).transform(parse_csv_rows)
    return raw.read_raw_lines(spark, files).transform(parse_json_lines)


@dataclasses.dataclass(frozen=True)
class DailyPlan:
    """The cached stages of one day's computation.

    ``validated``: every line read, with its ``reason`` (``VALIDATED_COLUMNS``);
    ``latest``: the latest valid version of each shipment; ``customers``: the deduplicated
    dimension with ``copies``, and ``totals``: daily totals for every ship date seen (with
    ``customer_known``) — both None when the plan was built without customers.
    """

    validated: DataFrame
    latest: DataFrame
    customers: DataFrame | None
    totals: DataFrame | None


@contextlib.contextmanager
def daily_plan(
    spark: SparkSession, config: Config, files: Sequence[RawFile], customers: DataFrame | None = None
) -> Iterator[DailyPlan]:
    """Build the plan over ``files`` (and the raw customer dimension, when given); its caches are
    released when the block ends.

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
        validated = keep(read_shipment_lines(spark, config, files).transform(with_validation))
        latest = keep(validated.transform(to_valid_shipments).transform(to_latest_versions))
        dimension = totals = None
        if customers is not None:
            dimension = keep(customers.transform(to_customer_dimension))
            totals = keep(latest.transform(with_customer, dimension).transform(to_daily_totals))
        yield DailyPlan(validated, latest, dimension, totals)
    finally:
        for frame in reversed(cached):
            frame.unpersist()
