"""The daily job, a backfill and the stream (files source) through ``s3a://`` against moto's S3.

Raw zone in one bucket, lake in another; the endpoint and the (fake) credentials come from the
environment only, the rest from ``conf/local-s3.yaml`` (path-style). Each command runs as its own
process through the real command line and S3A (hadoop-aws 3.3.4 + aws-java-sdk-bundle 1.12.262
from jars/s3a). The same commands run on local disk in this process; every table written
through S3A, downloaded from the lake bucket as plain files, must equal its local-disk twin.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from shipments.cli import main
from shipments.devtools.generate import generate_raw_zone
from tests.cloud_fixtures import ROOT, Moto, moto_fixture, run_python  # noqa: F401
from tests.helpers.lake import commit_infos
from tests.stream_fixtures import utc

pytestmark = pytest.mark.slow

START = dt.date(2026, 11, 1)
DAILY_DAY = dt.date(2026, 11, 2)
RAW_BUCKET, LAKE_BUCKET = "shipments-test-raw", "shipments-test-lake"
RAW_URI, LAKE_URI = f"s3a://{RAW_BUCKET}/raw", f"s3a://{LAKE_BUCKET}/lake"
CHECKPOINT_URI = f"s3a://{LAKE_BUCKET}/checkpoints/shipment_status"
S3_CONF = str(ROOT / "conf" / "local-s3.yaml")

# Columns that name where or when a run happened, not what it computed.
VOLATILE = {"run_id", "quarantined_at", "started_at", "ended_at", "input_fingerprint", "updated_at", "arrived_at"}
# (table, columns that identify a row, for a stable order)
TABLES = [
    ("shipment_daily_totals", ("ship_date", "customer_id")),
    ("quarantine/shipments", ("ingest_date", "source_file", "raw_text")),
    ("pipeline_runs", ("job", "run_date", "status")),
    ("shipment_status", ("shipment_id",)),
    ("shipment_status_late", ("event_id",)),
    ("shipment_status_dlq", ("raw_value",)),
]


def _upload(client: Any, folder: Path, bucket: str, prefix: str) -> int:
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
        count += 1
    return count


def _download(client: Any, bucket: str, prefix: str, folder: Path) -> int:
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            target = folder / item["Key"][len(prefix) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, item["Key"], str(target))
            count += 1
    return count


def _commands(raw: str, lake: str, checkpoint: str) -> list[list[str]]:
    common = ["--raw", raw, "--lake", lake]
    events = ["--source", "files", "--input", f"{raw}/events", "--checkpoint", checkpoint]
    return [
        ["daily", *common, "--date", DAILY_DAY.isoformat()],
        ["backfill", *common, "--start", START.isoformat(), "--end", "2026-11-03", "--parallelism", "2"],
        ["stream", *common, *events, "--available-now"],
    ]


@pytest.fixture(scope="module")
def lakes(spark: SparkSession, moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same runs on local disk and through s3a; the s3a lake downloaded as files."""
    root = tmp_path_factory.mktemp("s3a")
    raw = root / "raw"
    generate_raw_zone(raw, START, 3, shipments_per_day=150, customers=20, seed=23, events_per_day=200)

    s3 = moto.client("s3")
    for bucket in (RAW_BUCKET, LAKE_BUCKET):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert _upload(s3, raw, RAW_BUCKET, "raw") > 5

    # One process (one JVM) runs the three commands through the command line's main(), as three
    # `shipments ...` invocations would, minus two JVM starts.
    commands = [[args[0], "--conf", S3_CONF, *args[1:]] for args in _commands(RAW_URI, LAKE_URI, CHECKPOINT_URI)]
    script = (
        "import sys; from shipments.cli import main\n"
        f"for args in {commands!r}:\n"
        "    code = main(args)\n"
        "    if code: sys.exit(f'{args[0]} exited {code}')\n"
    )
    done = run_python(script, moto.env)
    assert done.returncode == 0, f"the runs through s3a failed: {done.stderr[-3000:]}"

    local_lake = root / "local-lake"
    for args in _commands(str(raw), str(local_lake), str(root / "local-checkpoint")):
        assert main(args) == 0, args[0]

    s3_lake = root / "s3-lake"
    assert _download(s3, LAKE_BUCKET, "lake", s3_lake) > 10
    return {"local": local_lake, "s3": s3_lake, "raw": raw}


def _rows(spark: SparkSession, table: Path, key: tuple[str, ...], raw_root: str) -> list[dict[str, Any]]:
    frame = spark.read.format("delta").load(str(table))
    rows = []
    for row in frame.collect():
        values = {k: utc(v) for k, v in row.asDict().items() if k not in VOLATILE}
        for name in ("source_file", "source"):
            if isinstance(values.get(name), str):
                # The file's place under the raw zone, whichever file system it was read from.
                values[name] = values[name].split(raw_root, 1)[-1]
        rows.append(values)
    return sorted(rows, key=lambda r: (tuple(str(r.get(k)) for k in key), repr(sorted(r.items()))))


@pytest.mark.parametrize(("table", "key"), TABLES, ids=[t for t, _ in TABLES])
def test_s3a_tables_equal_the_local_disk_run(
    spark: SparkSession, lakes: dict[str, Path], table: str, key: tuple[str, ...]
) -> None:
    local = _rows(spark, lakes["local"] / table, key, "/raw/")
    through_s3a = _rows(spark, lakes["s3"] / table, key, "/raw/")
    if table == "pipeline_runs":
        # The backfill's two dates commit in either order: which run got which table version is
        # a race, the set of versions is not.
        assert sorted(r.pop("table_version") for r in through_s3a) == sorted(r.pop("table_version") for r in local)
    # One available-now batch has no earlier watermark, so nothing is late: that table may be empty.
    assert local or table == "shipment_status_late", f"{table} is empty: the comparison would prove nothing"
    assert through_s3a == local


@pytest.mark.parametrize("table", ["shipment_status", "shipment_status_dlq"])
def test_s3a_stream_merged_its_tables_with_delta_rs_on_the_driver(lakes: dict[str, Path], table: str) -> None:
    """The stream's MERGEs went through delta-rs's own S3 client (endpoint, path style and region
    from the same settings as S3A), not Spark's."""
    merges = commit_infos(lakes["s3"] / table, "MERGE")
    assert merges and all(str(info["engineInfo"]).startswith("delta-rs") for info in merges), merges


def test_s3a_run_wrote_only_under_the_lake_prefix_and_read_the_raw_bucket(moto: Moto, lakes: dict[str, Path]) -> None:
    s3 = moto.client("s3")
    lake_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LAKE_BUCKET).get("Contents", [])]
    assert lake_keys and all(k.startswith(("lake/", "checkpoints/")) for k in lake_keys)
    assert any(k.startswith("checkpoints/shipment_status/") for k in lake_keys)
    raw_keys = {o["Key"] for o in s3.list_objects_v2(Bucket=RAW_BUCKET, MaxKeys=1000).get("Contents", [])}
    uploaded = {f"raw/{p.relative_to(lakes['raw']).as_posix()}" for p in lakes["raw"].rglob("*") if p.is_file()}
    assert raw_keys == uploaded, "the jobs must never write into the raw bucket"
