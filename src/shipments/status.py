"""``shipments status SHIPMENT_ID``: a shipment's current status, from the configured store.

With ``stream.dynamodb.table`` set, the serving table answers (no Spark needed); otherwise the
``shipment_status`` Delta table does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.config import Config, DynamoDBConfig
from shipments.errors import ConfigError
from shipments.stream_schemas import SHIPMENT_STATUS, SHIPMENT_STATUS_SCHEMA

EXIT_UNKNOWN = 4
ISO_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"


def lookup_delta(spark: SparkSession, config: Config, shipment_id: str) -> dict[str, Any] | None:
    """The shipment's row of ``shipment_status``, or None (also when the table does not exist yet)."""
    from delta.tables import DeltaTable

    path = SHIPMENT_STATUS.path(config)
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    # Timestamps are formatted by Spark in the session zone (UTC); collected datetimes would be
    # in this process's local zone.
    columns = [
        F.date_format(f.name, ISO_FORMAT).alias(f.name) if isinstance(f.dataType, T.TimestampType) else F.col(f.name)
        for f in SHIPMENT_STATUS_SCHEMA
    ]
    row = spark.read.format("delta").load(path).filter(F.col("shipment_id") == F.lit(shipment_id)).select(*columns).first()
    return None if row is None else row.asDict()


def lookup_dynamodb(config: DynamoDBConfig, shipment_id: str) -> dict[str, Any] | None:
    """The shipment's item in the DynamoDB serving table, or None."""
    from shipments.stream_io import dynamodb_client

    item = dynamodb_client(config).get_item(
        TableName=config.table, Key={"shipment_id": {"S": shipment_id}}, ConsistentRead=True
    ).get("Item")
    if item is None:
        return None
    record: dict[str, Any] = {}
    for name, value in item.items():
        (kind, raw), = value.items()
        record[name] = int(raw) if kind == "N" else raw
    return record


def run_status_command(spark_factory: Callable[[], SparkSession], config: Config, shipment_id: str) -> int:
    """Print the shipment's status as one JSON object; exit 4 when it is unknown."""
    shipment_id = shipment_id.strip()
    if not shipment_id:
        raise ConfigError("SHIPMENT_ID must not be empty")
    if config.stream.dynamodb.enabled:
        record = lookup_dynamodb(config.stream.dynamodb, shipment_id)
        store = f"dynamodb:{config.stream.dynamodb.table}"
    else:
        record = lookup_delta(spark_factory(), config, shipment_id)
        store = SHIPMENT_STATUS.path(config)
    if record is None:
        print(json.dumps({"shipment_id": shipment_id, "found": False, "store": store}))
        return EXIT_UNKNOWN
    print(json.dumps({**record, "found": True, "store": store}, sort_keys=False, default=str))
    return 0
