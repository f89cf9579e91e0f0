"""The stream's tables MERGEd on the driver with delta-rs: what Spark and delta-rs read afterwards,
compaction and checkpoints, the size cap above which Spark's MERGE takes over, and the hand-over
to Spark when delta-rs fails."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable as RsTable
from deltalake.exceptions import DeltaError
from pyspark.sql import SparkSession

from shipments.config import Config, S3Config
from shipments.model.tables import SHIPMENT_STATUS, SHIPMENT_STATUS_SCHEMA, STREAM_TABLES
from shipments.storage import delta
from shipments.storage.delta import ensure_tables
from shipments.storage.driver_merge import DriverMerge, storage_options
from shipments.stream.sink import NEWER, StatusBatchSink, StatusTables
from shipments.stream.watermarks import WatermarkLog
from tests.helpers.lake import commit_infos
from tests.stream_fixtures import event_row as ev
from tests.stream_fixtures import nov20 as t
from tests.stream_fixtures import record_batch as batch
from tests.stream_fixtures import rejected_row as bad

UTC = dt.UTC
ARRIVED = dt.datetime(2026, 11, 20, 13, 0, tzinfo=UTC)


def status_rows(*events: tuple[str, str, int, str]) -> pa.Table:
    """Rows of shipment_status as the sink hands them to delta-rs: (shipment, status, minute, event_id)."""
    columns: dict[str, list[object]] = {field.name: [] for field in SHIPMENT_STATUS_SCHEMA}
    for shipment, status, minute, event_id in events:
        row = {
            "shipment_id": shipment,
            "status": status,
            "event_time": dt.datetime(2026, 11, 20, 12, minute, tzinfo=UTC),
            "event_id": event_id,
            "batch_id": 0,
            "updated_at": ARRIVED,
        }
        for name, values in columns.items():
            values.append(row.get(name))
    schema = pa.schema(
        [
            ("shipment_id", pa.string()),
            ("status", pa.string()),
            ("event_time", pa.timestamp("us", tz="UTC")),
            ("event_id", pa.string()),
            ("location", pa.string()),
            ("reported_event_time", pa.timestamp("us", tz="UTC")),
            ("source_topic", pa.string()),
            ("source_partition", pa.int32()),
            ("source_offset", pa.int64()),
            ("source_file", pa.string()),
            ("batch_id", pa.int64()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    return pa.table(columns, schema=schema)


def test_driver_merges_keep_the_protocol_and_read_the_same_in_spark_and_delta_rs(
    spark: SparkSession, config: Config
) -> None:
    ensure_tables(spark, config, [SHIPMENT_STATUS])
    path = SHIPMENT_STATUS.path(config)
    merge = DriverMerge(path, max_mb=512, options={})
    merge.merge_rows(status_rows(("S1", "CREATED", 1, "e1"), ("S2", "CREATED", 2, "e2")), key="shipment_id",
                      newer=NEWER, note="shipment_status batch 0")  # fmt: skip
    # S1 newer, S2 older (kept), S2 at the same instant with a smaller id (kept), S3 new
    merge.merge_rows(
        status_rows(("S1", "IN_TRANSIT", 5, "e5"), ("S2", "LOST", 1, "e0"), ("S3", "CREATED", 3, "e3")),
        key="shipment_id",
        newer=NEWER,
        note="shipment_status batch 1",
    )
    merge.merge_rows(status_rows(("S2", "PICKED_UP", 2, "e1")), key="shipment_id", newer=NEWER,
                      note="shipment_status batch 2")  # fmt: skip

    expected = spark.createDataFrame(
        [
            ("S1", "IN_TRANSIT", dt.datetime(2026, 11, 20, 12, 5, tzinfo=UTC), "e5"),
            ("S2", "CREATED", dt.datetime(2026, 11, 20, 12, 2, tzinfo=UTC), "e2"),
            ("S3", "CREATED", dt.datetime(2026, 11, 20, 12, 3, tzinfo=UTC), "e3"),
        ],
        "shipment_id string, status string, event_time timestamp, event_id string",
    )
    # Instants on both sides: this process runs in America/Los_Angeles, the session in UTC.
    read = spark.read.format("delta").load(path).select("shipment_id", "status", "event_time", "event_id")
    assert_df_equality(read, expected, ignore_row_order=True, ignore_nullable=True)
    rs = RsTable(path).to_pyarrow_table()
    assert sorted(zip(rs.column("shipment_id").to_pylist(), rs.column("event_id").to_pylist(), strict=True)) == [
        ("S1", "e5"),
        ("S2", "e2"),
        ("S3", "e3"),
    ]
    protocol = RsTable(path).protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert not protocol.reader_features and not protocol.writer_features
    merges = commit_infos(path, "MERGE")
    # batch 2 replaced nothing, so it committed nothing (as a replayed batch does)
    assert [info["userMetadata"] for info in merges] == ["shipment_status batch 0", "shipment_status batch 1"]
    assert all(str(info["engineInfo"]).startswith("delta-rs") for info in merges)


def test_many_small_batches_are_compacted_and_checkpointed(spark: SparkSession, config: Config) -> None:
    ensure_tables(spark, config, [SHIPMENT_STATUS])
    path = SHIPMENT_STATUS.path(config)
    merge = DriverMerge(path, max_mb=512, options={})
    for n in range(60):  # each batch a new shipment: one new file per MERGE
        merge.merge_rows(status_rows((f"S{n:02}", "CREATED", n % 60, f"e{n}")), key="shipment_id",
                          newer=NEWER, note=f"shipment_status batch {n}")  # fmt: skip

    table = RsTable(path)
    assert len(table.file_uris()) < 50
    operations = [info["operation"] for info in commit_infos(path)]
    assert operations.count("OPTIMIZE") == 1 and operations.count("MERGE") == 60
    checkpoints = sorted(int(p.name.split(".")[0]) for p in Path(path, "_delta_log").glob("*.checkpoint.parquet"))
    assert checkpoints == list(range(10, table.version() + 1, 10))
    read = spark.read.format("delta").load(path)
    assert read.count() == 60
    assert sorted(r["shipment_id"] for r in read.select("shipment_id").collect()) == [f"S{n:02}" for n in range(60)]
    # Spark's MERGE (a table that outgrew the cap) writes on top of delta-rs's checkpoints, and
    # delta-rs goes on after it
    when = dt.datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
    newer = spark.createDataFrame(
        [("S00", "DELIVERED", when, "z0", None, None, None, None, None, None, 60, ARRIVED)], SHIPMENT_STATUS_SCHEMA
    )
    delta.merge_newer(newer, path, key="shipment_id", newer=NEWER, note="shipment_status batch 60")
    merge.merge_rows(status_rows(("S01", "DELIVERED", 59, "z1")), key="shipment_id", newer=NEWER,
                     note="shipment_status batch 61")  # fmt: skip
    delivered = spark.read.format("delta").load(path).where("status = 'DELIVERED'").select("shipment_id", "event_id")
    assert sorted(map(tuple, delivered.collect())) == [("S00", "z0"), ("S01", "z1")]
    assert [info["userMetadata"] for info in commit_infos(path, "MERGE")][-2:] == [
        "shipment_status batch 60",
        "shipment_status batch 61",
    ]


def test_a_table_over_the_cap_is_merged_by_spark(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    ensure_tables(spark, config, STREAM_TABLES)
    tables = StatusTables.of(config)
    watermarks = WatermarkLog(spark, str(tmp_path / "checkpoint"), 3600)
    small = StatusBatchSink(
        tables, watermarks, driver_merges={tables.status: DriverMerge(tables.status, max_mb=1, options={})}
    )
    small(batch(spark, ev("e1", "S1", "CREATED", t(10), 0)), 0)
    # a cap of 0 MB fits nothing
    over = StatusBatchSink(
        tables, watermarks, driver_merges={tables.status: DriverMerge(tables.status, max_mb=0, options={})}
    )
    over(batch(spark, ev("e2", "S1", "IN_TRANSIT", t(11), 1)), 1)
    small(batch(spark, ev("e3", "S1", "DELIVERED", t(12), 2)), 2)

    engines = [str(info.get("engineInfo")) for info in commit_infos(tables.status, "MERGE")]
    assert [engine.split(":")[0].split("/")[0] for engine in engines] == ["delta-rs", "Apache-Spark", "delta-rs"]
    rows = spark.read.format("delta").load(tables.status).select("status", "event_id", "batch_id").collect()
    assert [tuple(r) for r in rows] == [("DELIVERED", "e3", 2)]


def test_an_empty_batch_commits_nothing(spark: SparkSession, config: Config) -> None:
    ensure_tables(spark, config, [SHIPMENT_STATUS])
    path = SHIPMENT_STATUS.path(config)
    before = RsTable(path).version()
    DriverMerge(path, max_mb=512, options={}).merge_newer(
        spark.createDataFrame([], SHIPMENT_STATUS_SCHEMA),
        key="shipment_id",
        newer=NEWER,
        note="shipment_status batch 0",
    )
    assert RsTable(path).version() == before


def test_a_failed_upkeep_keeps_the_batch_and_is_logged(
    spark: SparkSession, config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint that cannot be written must not fail the batch whose data is committed (the
    stream would replay it and fail again, forever)."""
    ensure_tables(spark, config, [SHIPMENT_STATUS])
    path = SHIPMENT_STATUS.path(config)
    merge = DriverMerge(path, max_mb=512, options={})

    def refuse(self: RsTable) -> None:
        raise DeltaError("checkpoint refused")

    monkeypatch.setattr(RsTable, "create_checkpoint", refuse)
    for n in range(12):  # the table reaches version 10, when a checkpoint is due
        merge.merge_rows(status_rows((f"S{n:02}", "CREATED", n, f"e{n}")), key="shipment_id", newer=NEWER,
                         note=f"shipment_status batch {n}")  # fmt: skip
    assert RsTable(path).version() >= 10 and not list(Path(path, "_delta_log").glob("*.checkpoint.parquet"))
    assert spark.read.format("delta").load(path).count() == 12
    assert [r.getMessage() for r in caplog.records if "upkeep" in r.getMessage()] == [
        f"shipment_status batch {n}: upkeep of {path} failed, tried again after the next batch: checkpoint refused"
        for n in range(12)
        if n + 1 == 10  # version n + 1 (version 0 is the table's creation)
    ]


def test_a_delta_rs_error_hands_the_table_to_spark_for_the_run(
    spark: SparkSession,
    config: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A table delta-rs cannot write (e.g. a file it cannot read) must not stop the stream: the
    write is repeatable, so Spark's MERGE does it, and keeps the table for the rest of the run."""
    ensure_tables(spark, config, STREAM_TABLES)
    tables = StatusTables.of(config)
    drivers = {path: DriverMerge(path, max_mb=512, options={}) for path in (tables.status, tables.dlq)}
    sink = StatusBatchSink(tables, WatermarkLog(spark, str(tmp_path / "checkpoint"), 3600), driver_merges=drivers)

    def refuse(self: DriverMerge, source: object, *, keys: object, note: str) -> bool:
        raise DeltaError("Parquet error: encountered non UTF-8 data")

    monkeypatch.setattr(DriverMerge, "insert_new", refuse)
    sink(batch(spark, ev("e1", "S1", "CREATED", t(10), 0), bad("{nope", "malformed_json", 1)), 0)
    sink(batch(spark, bad("{again", "malformed_json", 2)), 1)

    dlq = spark.read.format("delta").load(tables.dlq).select("raw_value", "batch_id").collect()
    assert sorted(map(tuple, dlq)) == [("{again", 1), ("{nope", 0)]
    engines = [str(info["engineInfo"]).split("/")[0] for info in commit_infos(tables.dlq, "MERGE")]
    assert engines == ["Apache-Spark", "Apache-Spark"]
    assert set(sink.driver_merges) == {tables.status}  # the status table stays with delta-rs
    warnings = [r.getMessage() for r in caplog.records if "delta-rs failed" in r.getMessage()]
    error = "Parquet error: encountered non UTF-8 data"
    assert warnings == [f"delta-rs failed on {tables.dlq}, Spark's MERGE writes it from now on: {error}"]


@pytest.mark.parametrize(
    ("path", "s3", "environ", "expected"),
    [
        ("/lake/shipment_status", S3Config(endpoint="http://127.0.0.1:5000"), {}, {}),
        (
            "s3a://lake/shipment_status",
            S3Config(endpoint="http://127.0.0.1:5000", path_style=True, region="eu-west-1"),
            {"AWS_REGION": "us-east-2"},
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
                "AWS_ALLOW_HTTP": "true",
                "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
                "AWS_REGION": "eu-west-1",
            },
        ),
        (
            "s3://lake/s",
            S3Config(),
            {"AWS_ENDPOINT_URL_S3": "https://s3.example", "AWS_DEFAULT_REGION": "us-east-2"},
            {
                "AWS_ENDPOINT_URL": "https://s3.example",
                "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true",
                "AWS_REGION": "us-east-2",
            },
        ),
        # EMR: no spark.s3 settings, credentials from the role, the region from deploy.region
        (
            "s3://lake/s",
            S3Config(),
            {"AWS_SECRET_ACCESS_KEY": "x", "AWS_ACCESS_KEY_ID": "y"},
            {"AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true", "AWS_REGION": "eu-central-1"},
        ),
    ],
)
def test_storage_options_follow_the_s3a_settings_and_never_carry_credentials(
    path: str, s3: S3Config, environ: dict[str, str], expected: dict[str, str]
) -> None:
    assert storage_options(path, s3, environ, default_region="eu-central-1") == expected
