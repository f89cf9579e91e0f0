"""The optional DynamoDB serving table of the status stream: conditional writes and lookups."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from shipments.config import DynamoDBConfig

# Fixed-width UTC text, so DynamoDB's string comparison orders it as time. Formatted by Spark
# in the session zone (UTC): a collected timestamp would be in the worker's local zone.
DDB_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"
# Conditional updates a task keeps in flight. Each waits a round trip to DynamoDB, and a batch's
# rows are written by as many tasks as the stream has state partitions (4 by default): one after
# another, 1,500 rows at ~5 ms of round trip plus ~2 ms of boto3's own CPU each would take
# ~2.6 s a batch; in flight together, about the CPU's ~0.75 s (it holds Python's lock). Both
# with 4 task slots free for them; fewer slots run the tasks in turn.
WRITERS = 16


def dynamodb_client(config: DynamoDBConfig) -> Any:
    """A boto3 DynamoDB client for the configured region (and local endpoint, if any), with a
    connection for each of ``WRITERS`` threads (boto3's clients are thread-safe)."""
    import boto3
    from botocore.config import Config as ClientConfig

    return boto3.client(
        "dynamodb",
        region_name=config.region,
        endpoint_url=config.endpoint_url or None,
        config=ClientConfig(max_pool_connections=WRITERS),
    )


def get_status_item(config: DynamoDBConfig, shipment_id: str) -> dict[str, Any] | None:
    """The shipment's item in the serving table as plain values, or None."""
    item = (
        dynamodb_client(config)
        .get_item(TableName=config.table, Key={"shipment_id": {"S": shipment_id}}, ConsistentRead=True)
        .get("Item")
    )
    if item is None:
        return None
    record: dict[str, Any] = {}
    for name, value in item.items():
        ((kind, raw),) = value.items()
        record[name] = int(raw) if kind == "N" else raw
    return record


def put_status_items(
    client: Any, table: str, rows: Iterable[Row], batch_id: int, *, writers: int = 1
) -> tuple[int, int]:
    """Conditionally write each row, ``writers`` at a time; returns (written, skipped because
    older or equal). The rows of one shipment are written by one writer, in their order.

    Rows hold ``shipment_id, status, event_id, location`` and ``event_time``, ``arrived_at`` as
    ``DDB_TIME_FORMAT`` text.
    """
    # Looked up before the threads start: botocore builds a client's exception classes on first
    # use, without a lock.
    older = client.exceptions.ConditionalCheckFailedException
    if writers <= 1:
        return _put_in_order(client, table, rows, batch_id, older)
    lanes: list[list[Row]] = [[] for _ in range(writers)]
    for row in rows:
        lanes[hash(row["shipment_id"]) % writers].append(row)
    with ThreadPoolExecutor(writers, thread_name_prefix="dynamodb") as pool:
        # A lane's error reaches the caller: the task fails and the batch is replayed.
        done = list(pool.map(lambda lane: _put_in_order(client, table, lane, batch_id, older), [x for x in lanes if x]))
    return sum(written for written, _ in done), sum(skipped for _, skipped in done)


def _put_in_order(
    client: Any, table: str, rows: Iterable[Row], batch_id: int, older: type[Exception]
) -> tuple[int, int]:
    written = skipped = 0
    for row in rows:
        values: dict[str, Any] = {
            ":status": {"S": row["status"]},
            ":t": {"S": row["event_time"]},
            ":e": {"S": row["event_id"]},
            ":batch": {"N": str(batch_id)},
            ":updated": {"S": row["arrived_at"]},
        }
        assignments = [
            "#status = :status",
            "event_time = :t",
            "event_id = :e",
            "batch_id = :batch",
            "updated_at = :updated",
        ]
        # The item mirrors the Delta row: a newer event without a location clears the old one.
        if row["location"] is not None:
            values[":location"] = {"S": row["location"]}
            update = "SET " + ", ".join([*assignments, "#location = :location"])
        else:
            update = "SET " + ", ".join(assignments) + " REMOVE #location"
        try:
            client.update_item(
                TableName=table,
                Key={"shipment_id": {"S": row["shipment_id"]}},
                UpdateExpression=update,
                # The same rule as the MERGE: only a strictly newer event replaces the item.
                ConditionExpression=(
                    "attribute_not_exists(shipment_id) OR event_time < :t OR (event_time = :t AND event_id < :e)"
                ),
                ExpressionAttributeNames={"#status": "status", "#location": "location"},
                ExpressionAttributeValues=values,
            )
            written += 1
        except older:
            skipped += 1
    return written, skipped


def write_dynamodb(latest: DataFrame, config: DynamoDBConfig, batch_id: int) -> None:
    """Write the newest event per shipment to the DynamoDB table, from the executors."""
    table = config.table

    def write_partition(rows: Iterable[Row]) -> None:
        put_status_items(dynamodb_client(config), table, rows, batch_id, writers=WRITERS)

    latest.select(
        "shipment_id",
        "status",
        F.date_format("event_time", DDB_TIME_FORMAT).alias("event_time"),
        "event_id",
        "location",
        F.date_format("arrived_at", DDB_TIME_FORMAT).alias("arrived_at"),
    ).foreachPartition(write_partition)
