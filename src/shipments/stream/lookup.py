"""``shipments status SHIPMENT_ID``: a shipment's current status, from the configured store.

With ``stream.dynamodb.table`` set, the serving table answers (no Spark needed); otherwise the
``shipment_status`` Delta table does.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.config import Config
from shipments.errors import EXIT_OK, EXIT_UNKNOWN, ConfigError
from shipments.model.tables import SHIPMENT_STATUS, SHIPMENT_STATUS_SCHEMA
from shipments.storage import delta, dynamodb


@dataclasses.dataclass(frozen=True)
class StatusRequest:
    """``shipments status SHIPMENT_ID``."""

    shipment_id: str

    def __post_init__(self) -> None:
        if not self.shipment_id.strip():
            raise ConfigError("SHIPMENT_ID must not be empty")


@dataclasses.dataclass(frozen=True)
class StatusResult:
    shipment_id: str
    store: str
    record: dict[str, Any] | None

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.record is not None else EXIT_UNKNOWN

    def summary(self) -> str:
        """One JSON object: the stored row, or ``found: false``."""
        if self.record is None:
            return json.dumps({"shipment_id": self.shipment_id, "found": False, "store": self.store})
        return json.dumps({**self.record, "found": True, "store": self.store}, default=str)


def needs_spark(config: Config) -> bool:
    """Only the Delta lookup needs a SparkSession."""
    return not config.stream.dynamodb.enabled


def lookup_delta(spark: SparkSession, config: Config, shipment_id: str) -> dict[str, Any] | None:
    """The shipment's row of ``shipment_status``, or None (also when the table does not exist yet)."""
    table = delta.read_table(spark, config, SHIPMENT_STATUS)
    if table is None:
        return None
    # Timestamps are formatted by Spark in the session zone (UTC), as the DynamoDB items hold
    # them, so both stores answer alike; collected datetimes would be in this process's local zone.
    columns = [
        F.date_format(f.name, dynamodb.DDB_TIME_FORMAT).alias(f.name)
        if isinstance(f.dataType, T.TimestampType)
        else F.col(f.name)
        for f in SHIPMENT_STATUS_SCHEMA
    ]
    row = table.filter(F.col("shipment_id") == F.lit(shipment_id)).select(*columns).first()
    return None if row is None else row.asDict()


def run_status(spark: SparkSession | None, config: Config, request: StatusRequest) -> StatusResult:
    """Look the shipment up (``spark`` may be None when DynamoDB serves, see ``needs_spark``)."""
    shipment_id = request.shipment_id.strip()
    if config.stream.dynamodb.enabled:
        return StatusResult(
            shipment_id,
            f"dynamodb:{config.stream.dynamodb.table}",
            dynamodb.get_status_item(config.stream.dynamodb, shipment_id),
        )
    if spark is None:
        raise ValueError("the Delta lookup needs a SparkSession")
    return StatusResult(shipment_id, SHIPMENT_STATUS.path(config), lookup_delta(spark, config, shipment_id))
