"""``shipments catalog sync``: every Delta table of the lake in the Glue Data Catalog, as a
native Delta table (``table_type=DELTA`` and its location), so Athena, Redshift Spectrum and
Glue read the Delta log itself. No symlink manifests: they go stale on every write.

The columns come from the tables' declared schemas (``model.tables``), for tools that show a
schema; Athena reads the Delta log for the truth, partitions included, so no partition keys
are registered. Idempotent: a table already registered as wanted is left alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shipments.cloud.aws import Aws, Call, Recorded, s3_uri
from shipments.config import Config
from shipments.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class CatalogRequest:
    """``shipments catalog sync [--database NAME] [--dry-run]``."""

    database: str = ""
    dry_run: bool = False


@dataclasses.dataclass
class CatalogResult(Recorded):
    database: str
    tables: list[str]
    dry_run: bool
    calls: list[Call]

    def summary(self) -> str:
        verb = "would make" if self.dry_run else "made"
        head = f"catalog {self.database}: {len(self.tables)} Delta table(s), {verb} {len(self.changes)} change(s)"
        return "\n".join([head, *self.call_lines()])


def glue_name(table_path: str) -> str:
    """The catalog name of a lake table: ``quarantine/shipments`` -> ``quarantine_shipments``."""
    return table_path.replace("/", "_")


def table_input(config: Config, name: str, columns: list[tuple[str, str]]) -> dict[str, Any]:
    """The Glue ``TableInput`` of a native Delta table at ``<lake>/<name>``."""
    return {
        "Name": glue_name(name),
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"table_type": "DELTA", "classification": "delta", "EXTERNAL": "TRUE"},
        "StorageDescriptor": {
            "Location": s3_uri(config.table(name)),
            "Columns": [{"Name": column, "Type": kind} for column, kind in columns],
        },
    }


def lake_tables() -> list[tuple[str, list[tuple[str, str]]]]:
    """(path under the lake, [(column, Hive type)]) for every table the project writes."""
    from shipments.model.tables import LAKE_TABLES  # declarations (PySpark types)

    return [(spec.name, [(f.name, f.dataType.simpleString()) for f in spec.schema.fields]) for spec in LAKE_TABLES]


def run_catalog_sync(spark: object, config: Config, request: CatalogRequest) -> CatalogResult:
    """Create the database and every table, or update those that differ (no Spark: ``spark`` is None).

    Raises:
        ConfigError: the lake is not on S3 (Athena reads S3 only) or no region is set.
        CloudError: an AWS call failed.
    """
    if not config.lake.startswith(("s3://", "s3a://")):
        raise ConfigError(f"paths.lake must be on S3 to register its tables, got {config.lake!r}")
    database = request.database or config.deploy.catalog_database
    aws = Aws(config.deploy.region, dry_run=request.dry_run)
    if aws.find("glue", "get_database", Name=database) is None:
        aws.change(
            "glue",
            "create_database",
            DatabaseInput={"Name": database, "Description": "shipments lake: Delta tables (shipments catalog sync)"},
        )
    names = []
    for name, columns in lake_tables():
        wanted = table_input(config, name, columns)
        names.append(wanted["Name"])
        found = aws.find("glue", "get_table", DatabaseName=database, Name=wanted["Name"])
        if found is None:
            aws.change("glue", "create_table", DatabaseName=database, TableInput=wanted)
        elif not _same(found["Table"], wanted):
            aws.change("glue", "update_table", DatabaseName=database, TableInput=wanted)
    return CatalogResult(database, names, request.dry_run, aws.calls)


def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    storage, wanted_storage = current.get("StorageDescriptor", {}), wanted["StorageDescriptor"]
    columns = [{"Name": c["Name"], "Type": c["Type"]} for c in storage.get("Columns", [])]
    parameters = {k: v for k, v in current.get("Parameters", {}).items() if k in wanted["Parameters"]}
    return bool(
        current.get("TableType") == wanted["TableType"]
        and parameters == wanted["Parameters"]
        and storage.get("Location") == wanted_storage["Location"]
        and columns == wanted_storage["Columns"]
    )
