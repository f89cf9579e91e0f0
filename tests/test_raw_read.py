"""Reading landed files for a run or a backfill pass: every record keeps the ingest date of the
folder it landed in, small files are read in few tasks, and a replaced partition gets one file."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import types
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.batch.daily import DailyRequest, run_daily
from shipments.batch.plan import raw_layout, read_shipment_records
from shipments.batch.reconcile import ReconcileRequest, run_reconcile
from shipments.config import Config
from shipments.errors import DataQualityError
from shipments.model.fields import RAW_SHIPMENT_FIELDS
from shipments.storage import delta, fs
from shipments.storage import raw as raw_files
from tests.helpers.lake import data_commits, land, shipment_line

DAY = dt.date(2026, 11, 2)
# Names as people and tools make them: blanks, brackets (glob characters), a percent sign, a
# hash, an accent; each name in all three folders.
ODD_NAMES = ("export [copy] 100% #1 é.jsonl", "part 0001 (2).jsonl", "{a,b}*.json")


def _listing(spark: SparkSession, config: Config, dates: list[dt.date]) -> list[raw_files.RawFile]:
    return raw_files.list_raw_files(spark, config.raw, dates, raw_layout(config), required=None, checksums=False).files


def test_every_record_has_the_ingest_date_of_its_folder_whatever_the_file_name(
    spark: SparkSession, config: Config, raw: Path
) -> None:
    dates = [DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)]
    landed: Counter[tuple[str, dt.date]] = Counter()
    for position, ingest in enumerate(dates):
        for size, name in enumerate(ODD_NAMES, start=position + 1):
            land(raw, ingest, name, [shipment_line(f"S-{ingest}-{name}-{i}") for i in range(size)])
            landed[name, ingest] = size

    records = read_shipment_records(spark, config, _listing(spark, config, dates))

    rows = records.groupBy("source_file", "ingest_date").count().collect()
    read = Counter({(fs.file_name(r["source_file"]), r["ingest_date"]): r["count"] for r in rows})
    assert read == landed
    # ... and each record is the one landed in that folder.
    ids = records.select("shipment_id", "ingest_date").collect()
    assert all(r.shipment_id.startswith(f"S-{r.ingest_date}-") for r in ids)
    assert len(ids) == sum(landed.values())


def _csv(header: list[str], rows: list[dict[str, str]]) -> bytes:
    """RFC 4180 as Excel and pandas write it: CRLF, fields quoted only when they must be."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *[[row.get(h, "") for h in header] for row in rows]])
    return buffer.getvalue().encode("utf-8")


def test_csv_files_with_headers_in_other_orders_keep_the_ingest_date_of_their_folder(
    spark: SparkSession, config: Config, raw: Path
) -> None:
    """Files with a header share a scan per distinct header, across folders: each folder's file
    of one header is read with another folder's file of the other header. pandas writes its
    index as a first column with a blank name; a quoted field holds a comma, a quote and a line
    break."""
    config = dataclasses.replace(config, daily=dataclasses.replace(config.daily, raw_format="csv"))
    excel = list(RAW_SHIPMENT_FIELDS)  # the contract's order
    pandas = [
        "",
        "updated_at",
        "charge_usd",
        "shipment_id",
        "origin_region",
        "customer_id",
        "created_at",
        "weight_kg",
        "status",
        "destination_region",
    ]
    dates = [DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)]
    tricky = 'EU, "north"\nzone'  # Spark's CSV reader gives a CRLF inside quotes as LF: a line break here
    for position, ingest in enumerate(dates):
        folder = raw / "shipments" / f"ingest_date={ingest.isoformat()}"
        folder.mkdir(parents=True)
        for name, header, size in (("Export (1) [Excel].csv", excel, position + 1), ("pandas export.csv", pandas, 2)):
            rows = [
                {
                    "": str(i),
                    "shipment_id": f"S-{ingest}-{name}-{i}",
                    "customer_id": "C1",
                    "created_at": "2026-11-02T08:00:00Z",
                    "updated_at": "2026-11-02T08:00:00Z",
                    "status": "CREATED",
                    "origin_region": tricky,
                    "destination_region": "NA",
                    "weight_kg": "1.5",
                    "charge_usd": "10.00",
                }
                for i in range(size)
            ]
            (folder / name).write_bytes(_csv(header, rows))

    records = read_shipment_records(spark, config, _listing(spark, config, dates))

    got = sorted((r.shipment_id, r.ingest_date, r.origin_region) for r in records.collect())
    assert got == sorted(
        (f"S-{ingest}-{name}-{i}", ingest, tricky)
        for position, ingest in enumerate(dates)
        for name, size in (("Export (1) [Excel].csv", position + 1), ("pandas export.csv", 2))
        for i in range(size)
    )


def test_the_small_files_of_a_pass_are_read_in_few_tasks_and_none_is_lost(
    spark: SparkSession, config: Config, raw: Path
) -> None:
    """A scan per folder made a task per file: here 60 tasks for every job over the pass's records."""
    dates = [DAY + dt.timedelta(days=i) for i in range(30)]
    for ingest in dates:
        for part in range(2):
            land(raw, ingest, f"part-{part}.jsonl", [shipment_line(f"S-{ingest}-{part}-{i}") for i in range(3)])
    files = _listing(spark, config, dates)
    assert len(files) == 60

    records = read_shipment_records(spark, config, files)

    assert records.rdd.getNumPartitions() <= spark.sparkContext.defaultParallelism
    per_date = {r["ingest_date"]: r["count"] for r in records.groupBy("ingest_date").count().collect()}
    assert per_date == dict.fromkeys(dates, 6)


FIREHOSE_NAME = "shipments-stream-1-2026-11-02-07-00-00-0f8fad5b-d9cb-469f-a165-70867728950e"
# File keys that match no name Spark gives a file: a path spelt another way.
ELSEWHERE = types.SimpleNamespace(file_keys=lambda _, paths: {path: f"elsewhere:{path}" for path in paths})
UNPLACED = r"^1 file\(s\) read but not found in the listing, e\.g\. file:/"


def _land_two_records(raw: Path, config: Config, layout: str) -> Config:
    """Two shipments of D in one file of ``layout`` (jsonl or firehose), and a dimension."""
    records = [shipment_line("S1"), shipment_line("S2")]
    if layout == "firehose":
        hour = raw / "shipments" / "2026" / "11" / "02" / "07"
        hour.mkdir(parents=True)
        (hour / FIREHOSE_NAME).write_text("".join(records))
        config = dataclasses.replace(config, daily=dataclasses.replace(config.daily, layout="firehose"))
    else:
        land(raw, DAY, "part-0.jsonl", records)
    (raw / "customers").mkdir()
    (raw / "customers" / "customers.csv").write_text("customer_id,customer_name,segment,region\nC1,Acme,SMB,EU\n")
    return config


@pytest.mark.parametrize("layout", ["jsonl", "firehose"])
def test_a_record_whose_file_the_listing_does_not_name_fails_the_run_before_any_write(
    spark: SparkSession, config: Config, raw: Path, lake: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    """The readers join each record to its file's listing by name: a name that matched nothing
    (a path spelt another way) would leave its records in no run's counts. For Firehose objects
    nothing else would notice: their records have no count apart from the parse."""
    config = _land_two_records(raw, config, layout)
    monkeypatch.setattr(raw_files, "landed", ELSEWHERE)

    with pytest.raises(DataQualityError, match=UNPLACED):
        run_daily(spark, config, DailyRequest(DAY))

    for table in ("shipment_daily_totals", "shipment_quarantine"):
        assert "WRITE" not in data_commits(lake / table), table
    (run,) = spark.read.format("delta").load(str(lake / "pipeline_runs")).collect()
    assert run.status == "FAILED" and "not found in the listing" in run.error


def test_reconcile_refuses_a_record_whose_file_the_listing_does_not_name(
    spark: SparkSession, config: Config, raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reconcile recounts a run from the same plan: it must not count such records as read."""
    config = _land_two_records(raw, config, "jsonl")
    monkeypatch.setattr(raw_files, "landed", ELSEWHERE)

    with pytest.raises(DataQualityError, match=UNPLACED):
        run_reconcile(spark, config, ReconcileRequest(DAY))


def test_replacing_partitions_writes_one_file_per_partition_whatever_the_tasks(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A frame of 8 tasks over 3 dates gave up to 24 files; rebalanced by the partition column,
    each date gets one. The date not replaced keeps its file and rows."""
    table = str(tmp_path / "table")
    dates = [DAY + dt.timedelta(days=i) for i in range(4)]
    rows = spark.range(0, 800, numPartitions=8).select(
        F.col("id"), F.date_add(F.lit(DAY), (F.col("id") % 4).cast("int")).alias("ship_date")
    )
    rows.write.format("delta").partitionBy("ship_date").save(table)
    replacement = rows.filter(F.col("ship_date") != F.lit(dates[3])).withColumn("id", F.col("id") + 1_000)
    assert replacement.rdd.getNumPartitions() == 8

    delta.replace_partitions(replacement, table, "ship_date", dates[:3], run_id="run-1")

    commit = Path(table, "_delta_log", f"{1:020d}.json").read_text().splitlines()
    actions = [json.loads(line) for line in commit if line.strip()]
    added = Counter(action["add"]["partitionValues"]["ship_date"] for action in actions if "add" in action)
    assert added == {d.isoformat(): 1 for d in dates[:3]}
    got = sorted((r.id, r.ship_date) for r in spark.read.format("delta").load(table).collect())
    kept = [(i, DAY + dt.timedelta(days=i % 4)) for i in range(800) if i % 4 == 3]
    assert got == sorted(kept + [(i + 1_000, DAY + dt.timedelta(days=i % 4)) for i in range(800) if i % 4 != 3])


def test_replacing_partitions_leaves_a_cached_frame_cached(spark: SparkSession, tmp_path: Path) -> None:
    """The rebalance reads the frame through a temporary view, which PySpark drops after the
    query; dropping a view of a cached plan would uncache it."""
    table = str(tmp_path / "table")
    rows = spark.range(0, 40).select(F.col("id"), F.lit(DAY).alias("ship_date")).persist()
    rows.count()
    cache = spark._jsparkSession.sharedState().cacheManager()
    assert cache.lookupCachedData(rows._jdf).isDefined()

    delta.replace_partitions(rows, table, "ship_date", [DAY], run_id="run-1")

    assert cache.lookupCachedData(rows._jdf).isDefined()
    assert spark.read.format("delta").load(table).count() == 40
    rows.unpersist()
