"""The DynamoDB serving sink against moto's server on 127.0.0.1: an older event never
overwrites a newer one, a replay changes nothing, and the served item equals the Delta row."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pyspark.sql import Row, SparkSession

from shipments.config import Config, DynamoDBConfig
from shipments.model.tables import STREAM_TABLES
from shipments.storage.delta import ensure_tables
from shipments.storage.dynamodb import put_status_items
from shipments.stream.sink import StatusBatchSink, StatusTables
from shipments.stream.watermarks import WatermarkLog
from tests.stream_fixtures import (  # noqa: F401
    dynamodb_workers,
    event_row,
    moto_dynamodb,
    nov20,
    record_batch,
    utc,
)

pytestmark = pytest.mark.slow

T0 = dt.datetime(2026, 11, 20, 10, 0)
ARRIVED = dt.datetime(2026, 11, 26, 9, 0)


def row(shipment: str, status: str, minutes: int, event_id: str, location: str | None = "Leipzig") -> Row:
    return Row(
        shipment_id=shipment,
        status=status,
        event_time=(T0 + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        event_id=event_id,
        location=location,
        arrived_at=ARRIVED.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )


@pytest.fixture
def table(moto_dynamodb: Any, request: pytest.FixtureRequest) -> tuple[Any, str]:  # noqa: F811
    client = moto_dynamodb.client()
    name = f"status-{request.node.name[-40:].replace('[', '-').replace(']', '')}"[:200]
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "shipment_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "shipment_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client, name


def items(client: Any, name: str) -> dict[str, tuple[str, str, str]]:
    found = client.scan(TableName=name, ConsistentRead=True)["Items"]
    return {i["shipment_id"]["S"]: (i["status"]["S"], i["event_time"]["S"], i["event_id"]["S"]) for i in found}


def test_conditional_updates_keep_the_newest_event(table: tuple[Any, str]) -> None:
    client, name = table
    assert put_status_items(
        client, name, [row("S1", "IN_TRANSIT", 30, "e3"), row("S2", "CREATED", 0, "e5", None)], 0
    ) == (2, 0)
    written, skipped = put_status_items(
        client,
        name,
        [
            row("S1", "PICKED_UP", 20, "e2"),  # older: skipped
            row("S2", "CANCELLED", 0, "e9"),  # same time, greater event_id: written
            row("S3", "CREATED", 5, "e7"),  # new shipment
        ],
        1,
    )
    assert (written, skipped) == (2, 1)
    assert items(client, name) == {
        "S1": ("IN_TRANSIT", "2026-11-20T10:30:00.000000Z", "e3"),
        "S2": ("CANCELLED", "2026-11-20T10:00:00.000000Z", "e9"),
        "S3": ("CREATED", "2026-11-20T10:05:00.000000Z", "e7"),
    }


def test_writers_in_parallel_keep_each_shipments_rows_in_order(table: tuple[Any, str]) -> None:
    """Eight writers: every shipment's rows still apply in their order (one lane per shipment),
    so an older row after a newer one is skipped and a newer one after an older is written."""
    client, name = table
    rows = []
    for n in range(60):
        rows += [row(f"S{n:02d}", "IN_TRANSIT", 30, f"e{n:02d}b"), row(f"S{n:02d}", "PICKED_UP", 20, f"e{n:02d}a")]
        rows += [row(f"T{n:02d}", "CREATED", 0, f"f{n:02d}a"), row(f"T{n:02d}", "DELIVERED", 40, f"f{n:02d}b")]
    assert put_status_items(client, name, rows, 0, writers=8) == (180, 60)
    expected = {f"S{n:02d}": ("IN_TRANSIT", "2026-11-20T10:30:00.000000Z", f"e{n:02d}b") for n in range(60)}
    expected |= {f"T{n:02d}": ("DELIVERED", "2026-11-20T10:40:00.000000Z", f"f{n:02d}b") for n in range(60)}
    assert items(client, name) == expected


def test_a_failed_update_in_one_lane_fails_the_write(table: tuple[Any, str]) -> None:
    """DynamoDB refuses an item over 400 KB: that lane's error reaches the caller (the Spark task
    fails and the batch is replayed), whatever the other lanes wrote."""
    client, name = table
    rows = [row(f"S{n:02d}", "CREATED", 0, f"e{n:02d}") for n in range(40)]
    rows.insert(17, row("S99", "CREATED", 0, "e99", location="x" * 500_000))
    with pytest.raises(ClientError, match="ValidationException"):
        put_status_items(client, name, rows, 0, writers=8)


def test_a_replayed_batch_is_skipped(table: tuple[Any, str]) -> None:
    client, name = table
    batch = [row("S1", "IN_TRANSIT", 30, "e3")]
    put_status_items(client, name, batch, 0)
    before = client.get_item(TableName=name, Key={"shipment_id": {"S": "S1"}})["Item"]
    assert put_status_items(client, name, batch, 0) == (0, 1)
    assert client.get_item(TableName=name, Key={"shipment_id": {"S": "S1"}})["Item"] == before


def _served_text(value: dt.datetime) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_the_served_item_equals_the_delta_row_and_a_newer_event_without_location_clears_it(
    spark: SparkSession,
    config: Config,
    tmp_path: Any,
    moto_dynamodb: Any,  # noqa: F811
    dynamodb_workers: None,  # noqa: F811
    table: tuple[Any, str],
) -> None:
    client, name = table
    ensure_tables(spark, config, STREAM_TABLES)
    sink = StatusBatchSink(
        StatusTables.of(config),
        WatermarkLog(spark, str(tmp_path / "checkpoint"), 3600),
        dynamodb_config=DynamoDBConfig(name, moto_dynamodb.region, moto_dynamodb.endpoint_url),
    )
    sink(
        record_batch(
            spark,
            event_row("e1", "S1", "PICKED_UP", nov20(10), 0, "Leipzig"),
            event_row("e2", "S2", "CREATED", nov20(10), 1, "Dresden"),
            event_row("e3", "S3", "CREATED", nov20(10), 2),
        ),
        0,
    )
    sink(
        record_batch(
            spark,
            event_row("e4", "S1", "IN_TRANSIT", nov20(11), 3),  # newer, without a location
            event_row("e5", "S2", "IN_TRANSIT", nov20(11), 4, "Berlin"),  # newer, another location
            event_row("e0", "S3", "CANCELLED", nov20(9), 5, "Hof"),  # older: changes nothing
        ),
        1,
    )

    served = {i["shipment_id"]["S"]: i for i in client.scan(TableName=name, ConsistentRead=True)["Items"]}
    assert "location" not in served["S1"], served["S1"]
    rows = {r["shipment_id"]: r for r in spark.read.format("delta").load(sink.tables.status).collect()}
    assert (rows["S1"]["status"], rows["S1"]["location"]) == ("IN_TRANSIT", None)
    # Every attribute of every item is the Delta row's (an absent attribute is a null column).
    assert served == {
        sid: {
            "shipment_id": {"S": sid},
            "status": {"S": r["status"]},
            "event_time": {"S": _served_text(r["event_time"])},
            "event_id": {"S": r["event_id"]},
            **({} if r["location"] is None else {"location": {"S": r["location"]}}),
            "batch_id": {"N": str(r["batch_id"])},
            "updated_at": {"S": _served_text(r["updated_at"])},
        }
        for sid, r in rows.items()
    }
    assert {sid: (r["status"], r["location"], r["batch_id"]) for sid, r in rows.items()} == {
        "S1": ("IN_TRANSIT", None, 1),
        "S2": ("IN_TRANSIT", "Berlin", 1),
        "S3": ("CREATED", None, 0),
    }
