"""Each transform on a few rows built inline, compared with chispa."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.transforms.aggregate import to_daily_totals
from shipments.transforms.dedup import to_latest_versions
from shipments.transforms.enrich import to_customer_dimension, with_customer
from shipments.transforms.parse import parse_json_lines
from shipments.transforms.validate import filter_rejected_lines, to_valid_shipments, with_validation

GOOD = (
    '{"shipment_id":"S1","customer_id":"C1","created_at":"2026-11-02T23:30:00-05:00",'
    '"updated_at":"2026-11-03T04:40:00Z","status":"CREATED","weight_kg":12.5,"charge_usd":19.99}'
)
LINES_SCHEMA = "value string, source_file string, ingest_date date"


def _lines(spark: SparkSession, *lines: str) -> DataFrame:
    return spark.createDataFrame([(line, "f.jsonl", dt.date(2026, 11, 3)) for line in lines], LINES_SCHEMA)


def _validate(spark: SparkSession, *lines: str) -> DataFrame:
    return _lines(spark, *lines).transform(parse_json_lines).transform(with_validation)


def _with(**changes: object) -> str:
    import json

    record = json.loads(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            record.pop(key)
        else:
            record[key] = value
    return json.dumps(record)


_DROP = object()


INVALID_CASES = [
    ("not json", "malformed_json"),
    ("", "malformed_json"),
    ("   ", "malformed_json"),
    ("[1, 2]", "malformed_json"),
    ('{"shipment_id": "S1", "customer_id": ', "malformed_json"),
    (_with(shipment_id=_DROP), "missing_field:shipment_id"),
    (_with(shipment_id="  "), "missing_field:shipment_id"),
    (_with(customer_id=None), "missing_field:customer_id"),
    (_with(created_at=_DROP), "missing_field:created_at"),
    (_with(updated_at=""), "missing_field:updated_at"),
    (_with(weight_kg=_DROP), "missing_field:weight_kg"),
    (_with(charge_usd=None), "missing_field:charge_usd"),
    (_with(created_at="2026-13-45T10:00:00Z"), "bad_timestamp:created_at"),
    (_with(created_at="2026-11-02T10:00:00"), "bad_timestamp:created_at"),
    (_with(created_at="2026-11-02 10:00:00Z"), "bad_timestamp:created_at"),
    (_with(updated_at="yesterday"), "bad_timestamp:updated_at"),
    (_with(weight_kg="heavy"), "bad_number:weight_kg"),
    (_with(charge_usd="free"), "bad_number:charge_usd"),
    (_with(weight_kg=-0.1), "out_of_range:weight_kg"),
    (_with(weight_kg=100000.01), "out_of_range:weight_kg"),
    (_with(weight_kg="NaN"), "out_of_range:weight_kg"),
    (_with(charge_usd=-0.01), "out_of_range:charge_usd"),
    (_with(charge_usd=1e20), "out_of_range:charge_usd"),
    (_with(charge_usd=12.345), "bad_precision:charge_usd"),
    (_with(status="LOST"), "bad_value:status"),
    (_with(status="delivered"), "bad_value:status"),
]
VALID_CASES = [
    GOOD,
    _with(status=_DROP),  # status is optional
    _with(weight_kg=0, charge_usd=0),
    _with(weight_kg=100000, charge_usd="19.90"),  # bounds are inclusive; DMS sends decimals as strings
    _with(carrier="ACME", nested={"a": [1, 2]}),  # schema drift is tolerated
    _with(created_at="2026-11-02T23:30:00.123456+05:30"),
]


@pytest.fixture(scope="module")
def validated_cases(spark: SparkSession) -> dict[str, tuple]:
    """Every case below validated in one Spark job (one line per row), keyed by its line."""
    lines = [line for line, _ in INVALID_CASES] + VALID_CASES
    rows = _lines(spark, *lines).transform(parse_json_lines).transform(with_validation).collect()
    return {line: row for line, row in zip(lines, rows, strict=True)}


@pytest.mark.parametrize(("line", "reason"), INVALID_CASES)
def test_invalid_lines_get_their_reason(validated_cases: dict[str, tuple], line: str, reason: str) -> None:
    row = validated_cases[line]
    assert (row.reason, row.raw_text, row.source_file) == (reason, line, "f.jsonl")


@pytest.mark.parametrize("line", VALID_CASES)
def test_valid_lines_have_no_reason_and_no_raw_text(validated_cases: dict[str, tuple], line: str) -> None:
    row = validated_cases[line]
    assert row.reason is None and row.raw_text is None and row.shipment_id == "S1"


def test_ship_date_is_the_utc_date_of_created_at(spark: SparkSession) -> None:
    rows = (
        _validate(
            spark,
            GOOD,  # 23:30 at -05:00 is 04:30 UTC the next day
            _with(shipment_id="S2", created_at="2026-11-03T00:30:00+05:30"),  # 19:00 UTC the day before
            _with(shipment_id="S3", created_at="2026-11-02T23:59:59.999Z"),
        )
        # Formatted by Spark in the session zone (UTC): collected timestamps would be shifted
        # into the test process's own zone.
        .select("shipment_id", "ship_date", F.date_format("created_at", "yyyy-MM-dd HH:mm:ss.SSS").alias("created_utc"))
        .orderBy("shipment_id")
        .collect()
    )
    assert [tuple(r) for r in rows] == [
        ("S1", dt.date(2026, 11, 3), "2026-11-03 04:30:00.000"),
        ("S2", dt.date(2026, 11, 2), "2026-11-02 19:00:00.000"),
        ("S3", dt.date(2026, 11, 2), "2026-11-02 23:59:59.999"),
    ]


def test_charge_is_exact_decimal(spark: SparkSession) -> None:
    row = _validate(spark, _with(charge_usd=0.1)).transform(to_valid_shipments).collect()[0]
    assert row.charge_usd == Decimal("0.10")


def test_filters_split_valid_and_invalid(spark: SparkSession) -> None:
    validated = _validate(spark, GOOD, "oops")
    assert [r.shipment_id for r in validated.transform(to_valid_shipments).collect()] == ["S1"]
    assert [r.reason for r in validated.transform(filter_rejected_lines).collect()] == ["malformed_json"]
    assert "raw_text" not in validated.transform(to_valid_shipments).columns


VERSION_SCHEMA = T.StructType(
    [
        T.StructField("shipment_id", T.StringType()),
        T.StructField("customer_id", T.StringType()),
        T.StructField("created_at", T.TimestampType()),
        T.StructField("updated_at", T.TimestampType()),
        T.StructField("status", T.StringType()),
        T.StructField("origin_region", T.StringType()),
        T.StructField("destination_region", T.StringType()),
        T.StructField("weight_kg", T.DoubleType()),
        T.StructField("charge_usd", T.DecimalType(18, 2)),
        T.StructField("ship_date", T.DateType()),
        T.StructField("deleted", T.BooleanType()),
        T.StructField("ingest_date", T.DateType()),
    ]
)
T0 = dt.datetime(2026, 11, 2, 10, 0)


def _version(
    sid: str, minutes: int, status: str, charge: str = "10.00", customer: str = "C1", ingest_days: int = 0
) -> tuple:
    return (
        sid,
        customer,
        T0,
        T0 + dt.timedelta(minutes=minutes),
        status,
        "EU",
        "NA",
        1.0,
        Decimal(charge),
        T0.date(),
        False,
        T0.date() + dt.timedelta(days=ingest_days),
    )


def test_latest_version_wins_whatever_the_order(spark: SparkSession) -> None:
    versions = spark.createDataFrame(
        [
            _version("S1", 30, "DELIVERED"),
            _version("S1", 0, "CREATED"),
            _version("S1", 0, "CREATED"),  # exact re-send
            _version("S2", 5, "CANCELLED"),
            _version("S2", 5, "CANCELLED", ingest_days=1),  # re-sent in the next day's folder
        ],
        VERSION_SCHEMA,
    )
    # The same content landed twice collapses to one row that names the later folder.
    expected = spark.createDataFrame(
        [_version("S1", 30, "DELIVERED"), _version("S2", 5, "CANCELLED", ingest_days=1)], VERSION_SCHEMA
    )
    assert_df_equality(
        versions.transform(to_latest_versions),
        expected,
        ignore_row_order=True,
        ignore_column_order=True,
        ignore_nullable=True,
    )


def test_tied_versions_are_settled_the_same_way_every_time(spark: SparkSession) -> None:
    # The losing content landed a day later: the folder never decides between different contents.
    tied = [_version("S1", 0, "CREATED", "10.00", ingest_days=1), _version("S1", 0, "CREATED", "12.00")]
    for rows in (tied, tied[::-1]):
        latest = spark.createDataFrame(rows, VERSION_SCHEMA).transform(to_latest_versions).collect()
        assert [r.charge_usd for r in latest] == [Decimal("12.00")]


CUSTOMER_SCHEMA = "customer_id string, customer_name string, segment string, region string"


def test_customer_dimension_keeps_one_row_per_id_and_counts_copies(spark: SparkSession) -> None:
    customers = spark.createDataFrame(
        [
            ("C1", "Acme", "SMB", "EU"),
            ("C1", "Acme (old)", "SMB", "EU"),
            ("C2", "Beta", "RETAIL", "NA"),
            ("", "No id", "SMB", "EU"),
            (None, "No id", "SMB", "EU"),
        ],
        CUSTOMER_SCHEMA,
    )
    expected = spark.createDataFrame(
        [("C1", "Acme", "SMB", "EU", 2), ("C2", "Beta", "RETAIL", "NA", 1)],
        "customer_id string, customer_name string, segment string, region string, copies long",
    )
    assert_df_equality(
        customers.transform(to_customer_dimension), expected, ignore_row_order=True, ignore_nullable=True
    )


def test_with_customer_never_fans_out_and_keeps_unknown_customers(spark: SparkSession) -> None:
    customers = spark.createDataFrame(
        [("C1", "Acme", "SMB", "EU"), ("C1", "Acme (old)", "SMB", "EU")], CUSTOMER_SCHEMA
    ).transform(to_customer_dimension)
    shipments = spark.createDataFrame([("S1", "C1"), ("S2", "C9")], "shipment_id string, customer_id string")
    expected = spark.createDataFrame(
        [("S1", "C1", "Acme", "SMB", "EU", True), ("S2", "C9", "UNKNOWN", "UNKNOWN", "UNKNOWN", False)],
        "shipment_id string, customer_id string, customer_name string, segment string, region string, "
        "customer_known boolean",
    )
    assert_df_equality(
        shipments.transform(with_customer, customers),
        expected,
        ignore_row_order=True,
        ignore_column_order=True,
        ignore_nullable=True,
    )


def test_daily_totals_sum_exactly(spark: SparkSession) -> None:
    enriched_schema = (
        "ship_date date, customer_id string, customer_name string, segment string, region string, status string, "
        "weight_kg double, charge_usd decimal(18,2), customer_known boolean"
    )
    day = dt.date(2026, 11, 2)
    enriched = spark.createDataFrame(
        [
            (day, "C1", "Acme", "SMB", "EU", "DELIVERED", 0.1, Decimal("0.10"), True),
            (day, "C1", "Acme", "SMB", "EU", "CANCELLED", 0.2, Decimal("0.20"), True),
            (day, "C9", "UNKNOWN", "UNKNOWN", "UNKNOWN", None, 5.0, Decimal("99.99"), False),
        ],
        enriched_schema,
    )
    expected = spark.createDataFrame(
        [
            (day, "C1", "Acme", "SMB", "EU", 2, 1, 0.3, Decimal("0.30"), True),
            (day, "C9", "UNKNOWN", "UNKNOWN", "UNKNOWN", 1, 0, 5.0, Decimal("99.99"), False),
        ],
        "ship_date date, customer_id string, customer_name string, segment string, region string, "
        "shipment_count long, cancelled_count long, total_weight_kg double, total_charge_usd decimal(18,2), "
        "customer_known boolean",
    )
    # 0.1 + 0.2 is 0.30000000000000004 in floating point; the exact sum gives 0.3.
    assert_df_equality(enriched.transform(to_daily_totals), expected, ignore_row_order=True, ignore_nullable=True)
