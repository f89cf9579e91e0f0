"""The DynamoDB serving sink against moto's server on 127.0.0.1: an older event never
overwrites a newer one, and a replay changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import Row

from shipments.storage.dynamodb import put_status_items
from tests.stream_fixtures import moto_dynamodb  # noqa: F401

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


def test_a_replayed_batch_is_skipped(table: tuple[Any, str]) -> None:
    client, name = table
    batch = [row("S1", "IN_TRANSIT", 30, "e3")]
    put_status_items(client, name, batch, 0)
    before = client.get_item(TableName=name, Key={"shipment_id": {"S": "S1"}})["Item"]
    assert put_status_items(client, name, batch, 0) == (0, 1)
    assert client.get_item(TableName=name, Key={"shipment_id": {"S": "S1"}})["Item"] == before
