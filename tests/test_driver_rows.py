"""Frames from rows the driver holds: one row (literals) and many (createDataFrame) give the same
values and types, instants included whatever the session's zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.storage import driver_rows

SCHEMA = T.StructType(
    [
        T.StructField("name", T.StringType()),
        T.StructField("day", T.DateType()),
        T.StructField("at", T.TimestampType()),
        T.StructField("value", T.DoubleType()),
        T.StructField("amount", T.DecimalType(18, 2)),
        T.StructField("count", T.LongType()),
        T.StructField("keys", T.ArrayType(T.StringType())),
    ]
)
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def _rows(n: int) -> list[tuple[object, ...]]:
    at = dt.datetime(2026, 11, 30, 23, 30, 0, 123456, tzinfo=BERLIN)  # 22:30:00.123456 UTC
    return [
        (f"r{i}", dt.date(2026, 11, 30), at, i, 19.99 if i % 2 else i, 2**40 + i, [f"k{i}", None] if i else None)
        for i in range(n)
    ]


def _collected(spark: SparkSession, rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    frame = driver_rows.to_frame(spark, rows, SCHEMA)
    assert [(f.name, f.dataType) for f in frame.schema] == [(f.name, f.dataType) for f in SCHEMA]
    out = frame.select(
        "name", "day", F.unix_micros("at").alias("at"), "value", F.col("amount").cast("string"), "count", "keys"
    )
    return [tuple(r) for r in out.orderBy("name").collect()]


@pytest.mark.parametrize("n", [1, 12])
def test_one_row_and_many_rows_hold_the_same_values(spark: SparkSession, n: int) -> None:
    micros = int(dt.datetime(2026, 11, 30, 22, 30, 0, 123456, tzinfo=dt.UTC).timestamp()) * 10**6 + 123456
    expected = [
        (f"r{i}", dt.date(2026, 11, 30), micros, float(i), "19.99" if i % 2 else f"{i}.00", 2**40 + i,
         [f"k{i}", None] if i else None)
        for i in range(n)
    ]  # fmt: skip
    assert _collected(spark, _rows(n)) == sorted(expected)
    # The many-row path gives, row for row, what the one-row path gives.
    assert sorted(_collected(spark, [row])[0] for row in _rows(n)) == _collected(spark, _rows(n))


def test_a_row_of_the_wrong_width_is_refused(spark: SparkSession) -> None:
    with pytest.raises(ValueError, match="has 2 value"):
        driver_rows.to_frame(spark, [("a", None), *_rows(1)], SCHEMA)
