"""Raw zones laid out the way DMS and Firehose really land them (contract 1.4, issue 12)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.devtools.generate import generate_raw_zone
from shipments.transforms.parse import split_json_records
from tests.helpers.lake import LOCAL_CONF, daily, totals

DAY = dt.date(2026, 11, 2)
LAYOUTS = ("default", "dms-csv", "dms-parquet", "firehose")
CUSTOMERS = "customer_id,customer_name,segment,region\nC1,Acme,SMB,EU\nC2,Beta,RETAIL,NA\n"


def _daily(raw: Path, lake: Path, layout: str, conf: Path = LOCAL_CONF, day: dt.date = DAY) -> int:
    return daily(day, raw, lake, conf, "--layout", layout)


def _table(spark: SparkSession, lake: Path, name: str) -> list[tuple]:
    return sorted((tuple(r) for r in spark.read.format("delta").load(str(lake / name)).collect()), key=repr)


def _run(spark: SparkSession, lake: Path):  # type: ignore[no-untyped-def]
    runs = spark.read.format("delta").load(str(lake / "pipeline_runs")).orderBy(F.col("started_at").desc())
    row = runs.first()
    assert row is not None and row.status == "SUCCEEDED", row
    conserved = row.rows_kept + row.rows_other_dates + row.rows_duplicates + row.rows_quarantined + row.rows_deleted
    assert row.rows_read == conserved, row
    return row


def _reasons(spark: SparkSession, lake: Path) -> Counter[tuple[str, str]]:
    rows = spark.read.format("delta").load(str(lake / "quarantine" / "shipments")).collect()
    return Counter((r.shipment_id or "", r.reason) for r in rows)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same generated days (same seed) landed in each layout."""
    base = tmp_path_factory.mktemp("layouts")
    for layout in LAYOUTS:
        generate_raw_zone(
            base / layout,
            DAY - dt.timedelta(days=1),
            3,
            shipments_per_day=60,
            customers=12,
            seed=5,
            events_per_day=0,
            layout=layout,
        )
    return {layout: base / layout for layout in LAYOUTS}


def test_the_same_days_in_every_layout_give_the_same_totals(
    spark: SparkSession, landed: dict[str, Path], tmp_path: Path
) -> None:
    for layout in LAYOUTS:
        assert _daily(landed[layout], tmp_path / layout, layout) == 0, layout
    reference = totals(spark, tmp_path / "default")
    assert sum(r[5] for r in reference) > 50
    for layout in LAYOUTS[1:]:
        assert totals(spark, tmp_path / layout) == reference, layout
        _run(spark, tmp_path / layout)

    # The same rules reject the same records wherever the format can carry them: a broken line is
    # malformed_json in JSON and malformed_csv in CSV; blank lines are no CSV or Firehose record;
    # typed Parquet columns cannot hold a bad timestamp or a weight that is no number.
    def comparable(reasons: Counter[tuple[str, str]], *left_out: str) -> Counter[tuple[str, str]]:
        return Counter({k: n for k, n in reasons.items() if not k[1].startswith(("malformed", *left_out))})

    expected = _reasons(spark, tmp_path / "default")
    assert comparable(_reasons(spark, tmp_path / "firehose")) == comparable(expected)
    assert comparable(_reasons(spark, tmp_path / "dms-csv")) == comparable(expected)
    assert comparable(_reasons(spark, tmp_path / "dms-parquet"), "bad_timestamp", "bad_number:weight_kg") == comparable(
        expected, "bad_timestamp", "bad_number:weight_kg"
    )
    assert sum(n for (_, reason), n in _reasons(spark, tmp_path / "dms-csv").items() if reason == "malformed_csv") > 0


def _dms_csv(folder: Path, name: str, rows: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(f"{row}\n" for row in rows))


def test_a_dms_delete_removes_the_shipment_also_when_it_lands_a_day_late(spark: SparkSession, tmp_path: Path) -> None:
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "customers.csv").write_text(CUSTOMERS)
    day = raw / "shipments" / "2026" / "11" / "02"
    _dms_csv(
        day,
        "LOAD00000001.csv",
        [
            "S1,C1,2026-11-02 10:00:00,2026-11-02 10:00:00,CREATED,EU,NA,1.5,10.00",
            "S2,C1,2026-11-02 11:00:00,2026-11-02 11:00:00,CREATED,EU,NA,2.5,20.00",
            "S3,C2,2026-11-02 09:00:00,2026-11-02 09:00:00,CREATED,EU,NA,1,5.00",
        ],
    )
    _dms_csv(
        day,
        "20261102-120000123.csv",
        [
            "U,S1,C1,2026-11-02 10:00:00,2026-11-02 12:00:00.000000,IN_TRANSIT,EU,NA,1.5,10.00",
            # inserted, updated and deleted on the same day: never counted
            "I,S4,C2,2026-11-02 08:00:00,2026-11-02 08:00:00,CREATED,EU,NA,3,7.00",
            "U,S4,C2,2026-11-02 08:00:00,2026-11-02 09:00:00,CANCELLED,EU,NA,3,7.00",
            # a delete carries the row's last values: it wins over the update of the same instant
            "D,S4,C2,2026-11-02 08:00:00,2026-11-02 09:00:00,CANCELLED,EU,NA,3,7.00",
        ],
    )
    assert _daily(raw, lake, "dms-csv") == 0
    assert totals(spark, lake) == [
        (DAY, "C1", "Acme", "SMB", "EU", 2, 0, 4.0, Decimal("30.00")),
        (DAY, "C2", "Beta", "RETAIL", "NA", 1, 0, 1.0, Decimal("5.00")),
    ]
    first = _run(spark, lake)
    assert (first.rows_read, first.rows_kept, first.rows_duplicates, first.rows_deleted) == (7, 3, 3, 1)

    # S1's delete lands the next day: the rerun of its ship date (which reads D+1) removes it.
    _dms_csv(
        raw / "shipments" / "2026" / "11" / "03",
        "20261103-000500001.csv",
        ["D,S1,C1,2026-11-02 10:00:00,2026-11-02 12:00:00,IN_TRANSIT,EU,NA,1.5,10.00"],
    )
    assert _daily(raw, lake, "dms-csv") == 0
    assert totals(spark, lake) == [
        (DAY, "C1", "Acme", "SMB", "EU", 1, 0, 2.5, Decimal("20.00")),
        (DAY, "C2", "Beta", "RETAIL", "NA", 1, 0, 1.0, Decimal("5.00")),
    ]
    second = _run(spark, lake)
    assert (second.rows_read, second.rows_kept, second.rows_duplicates, second.rows_deleted) == (8, 2, 4, 2)


def test_headerless_csv_loses_no_row_and_quarantines_a_row_of_the_wrong_width(
    spark: SparkSession, tmp_path: Path
) -> None:
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "customers.csv").write_text(CUSTOMERS)
    _dms_csv(
        raw / "shipments" / "2026" / "11" / "02",
        "LOAD00000001.csv",
        [
            # the first row is data: DMS writes no header unless told to
            "S1,C1,2026-11-02 10:00:00,2026-11-02 10:00:00,CREATED,EU,NA,1.5,10.00",
            '"S2",C1,2026-11-02 11:00:00,2026-11-02 11:00:00,DELIVERED,"Rotterdam, NL",NA,2.5,20.00',
            "S3,C1,2026-11-02 11:00:00,2026-11-02 11:00:00,DELIVERED,EU,2.5,20.00",  # eight fields
            # Tokyo wall-clock time: 05:00 on 11-02 there is 20:00 on 11-01 in UTC
            "S4,C2,2026-11-02 05:00:00,2026-11-02 05:00:00,CREATED,EU,NA,1,1.00",
        ],
    )
    conf = tmp_path / "tokyo.yaml"
    conf.write_text(f"extends: {LOCAL_CONF}\ndaily:\n  source_timezone: Asia/Tokyo\n")
    assert _daily(raw, lake, "dms-csv", conf) == 0
    assert totals(spark, lake) == [(DAY, "C1", "Acme", "SMB", "EU", 2, 0, 4.0, Decimal("30.00"))]
    quarantine = spark.read.format("delta").load(str(lake / "quarantine" / "shipments")).collect()
    assert [(q.reason, q.raw_text) for q in quarantine] == [
        ("malformed_csv", "S3,C1,2026-11-02 11:00:00,2026-11-02 11:00:00,DELIVERED,EU,2.5,20.00")
    ]
    run = _run(spark, lake)
    assert (run.rows_read, run.rows_kept, run.rows_other_dates, run.rows_quarantined) == (4, 2, 1, 1)


def _record(sid: str, charge: str, **extra: object) -> str:
    return json.dumps(
        {
            "shipment_id": sid,
            "customer_id": "C1",
            "created_at": "2026-11-02T08:00:00+01:00",
            "updated_at": "2026-11-02T08:00:00Z",
            "status": "CREATED",
            "weight_kg": 1,
            "charge_usd": charge,
            **extra,
        },
        separators=(",", ":"),
    )


def test_firehose_objects_are_read_whole_and_a_stranger_is_quarantined_by_name(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "customers.csv").write_text(CUSTOMERS)
    hour = raw / "shipments" / "2026" / "11" / "02" / "07"
    hour.mkdir(parents=True)
    uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    # no delimiter between records; a string holding "}{" and a nested object must not split one
    concatenated = (
        _record("S1", "1.00") + _record("S2", "2.00", note='a}{b \\" }') + _record("S3", "3.00", dims={"cm": {"l": 1}})
    )
    (hour / f"shipments-stream-1-2026-11-02-07-00-00-{uuid}").write_text(concatenated)
    with gzip.open(hour / f"shipments-stream-1-2026-11-02-07-15-00-{uuid}.gz", "wt") as handle:
        handle.write(_record("S4", "4.00") + "\n" + '{"shipment_id":"S5",' + "\n" + _record("S6", "6.001") + "\n")
    (hour / "notes.txt").write_text("not a record\n")
    capsys.readouterr()

    assert _daily(raw, lake, "firehose") == 0
    out = capsys.readouterr().out
    assert "notes.txt" in out and "1 not data" in out
    assert totals(spark, lake) == [(DAY, "C1", "Acme", "SMB", "EU", 4, 0, 4.0, Decimal("10.00"))]
    rows = spark.read.format("delta").load(str(lake / "quarantine" / "shipments")).collect()
    quarantine = sorted((q.reason, q.raw_text) for q in rows)
    assert quarantine == [
        ("bad_precision:charge_usd", _record("S6", "6.001")),
        ("malformed_json", '{"shipment_id":"S5",'),
        ("unrecognized_file:not a firehose data file", "notes.txt"),
    ]
    run = _run(spark, lake)
    assert (run.rows_read, run.rows_kept, run.rows_quarantined) == (6, 4, 2)


@pytest.mark.parametrize(
    ("text", "records"),
    [
        ('{"a":1}{"b":2}', ['{"a":1}', '{"b":2}']),
        ('{"a":1}\n{"b":2}\n', ['{"a":1}', '{"b":2}']),
        ('{"s":"}{"}{"n":{"m":{}}}', ['{"s":"}{"}', '{"n":{"m":{}}}']),
        ('{"s":"a\\"}{"}{"b":2}', ['{"s":"a\\"}{"}', '{"b":2}']),
        ('{"a":1}\n{"cut":\n{"b":2}', ['{"a":1}', '{"cut":', '{"b":2}']),
        ('stray\n{"a":1}', ["stray", '{"a":1}']),
        ('{\n  "a": {\n    "b": 1\n  }\n}{"c":3}', ['{\n  "a": {\n    "b": 1\n  }\n}', '{"c":3}']),
        ("", []),
        ('{"a":1', ['{"a":1']),
    ],
)
def test_firehose_records_are_split_exactly(text: str, records: list[str]) -> None:
    assert split_json_records(text) == records


def test_parquet_as_other_writers_land_it_zone_less_times_and_decimal_charges(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Parquet not written by our generator: naive timestamps (pandas writes datetime64 without a
    zone so; Spark reads them as timestamp_ntz) are wall-clock times in daily.source_timezone,
    like DMS's CSV text, and a decimal(18,2) charge is taken exactly."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw, lake = tmp_path / "raw", tmp_path / "lake"
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "customers.csv").write_text(CUSTOMERS)
    folder = raw / "shipments" / "2026" / "11" / "02"
    folder.mkdir(parents=True)
    tokyo = [dt.datetime(2026, 11, 2, 10, 0), dt.datetime(2026, 11, 2, 5, 0), dt.datetime(2026, 11, 3, 8, 0)]
    table = pa.table(
        {
            "Op": ["I", "I", "I"],
            "shipment_id": ["S1", "S2", "S3"],
            "customer_id": ["C1", "C1", "C2"],
            "created_at": pa.array(tokyo, pa.timestamp("us")),
            "updated_at": pa.array(tokyo, pa.timestamp("us")),
            "status": ["CREATED", "CREATED", "CREATED"],
            "origin_region": ["EU", None, "NA"],
            "destination_region": ["NA", "NA", None],
            "weight_kg": [1.5, 2.0, 3.0],
            "charge_usd": pa.array(
                [Decimal("9999999999999999.99"), Decimal("0.01"), Decimal("5.00")], pa.decimal128(18, 2)
            ),
        }
    )
    pq.write_table(table, folder / "20261102-101500123.parquet")
    conf = tmp_path / "tokyo.yaml"
    conf.write_text(f"extends: {LOCAL_CONF}\ndaily:\n  source_timezone: Asia/Tokyo\n")

    assert _daily(raw, lake, "dms-parquet", conf) == 0
    # 10:00 in Tokyo is 01:00 UTC on 11-02 (S1); 05:00 on 11-02 is 20:00 UTC on 11-01 (S2);
    # 08:00 on 11-03 is 23:00 UTC on 11-02 (S3).
    assert totals(spark, lake) == [
        (DAY, "C1", "Acme", "SMB", "EU", 1, 0, 1.5, Decimal("9999999999999999.99")),
        (DAY, "C2", "Beta", "RETAIL", "NA", 1, 0, 3.0, Decimal("5.00")),
    ]
    run = _run(spark, lake)
    assert (run.rows_read, run.rows_kept, run.rows_other_dates, run.rows_quarantined) == (3, 2, 1, 0)
